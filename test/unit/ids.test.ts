// Exchange ids and the cached wall clock: unique, sortable by arrival, and the right time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exchangeId, isoNow } from '../../src/proxy/ids.ts';

describe('exchange ids', () => {
  it('are unique across many refills of the random pool, and shaped <ms base36>-<12 hex>', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) seen.add(exchangeId());
    assert.equal(seen.size, 5000);
    for (const id of [...seen].slice(0, 50)) assert.match(id, /^[0-9a-z]+-[0-9a-f]{12}$/);
  });

  it('sort by arrival: the time part of a later id is never smaller', async () => {
    const first = exchangeId();
    await new Promise((r) => setTimeout(r, 5));
    const later = exchangeId();
    const ms = (id: string) => parseInt(id.split('-')[0]!, 36);
    assert.ok(ms(later) > ms(first), `${later} after ${first}`);
    assert.ok(Math.abs(ms(later) - Date.now()) < 1000, 'the time part is the wall clock in ms');
  });

  it('isoNow is the current time as ISO 8601, updated as the clock moves', async () => {
    const a = isoNow();
    assert.ok(Math.abs(Date.parse(a) - Date.now()) < 50, a);
    await new Promise((r) => setTimeout(r, 5));
    assert.ok(Date.parse(isoNow()) > Date.parse(a));
  });
});
