// Unit: who may read the admin endpoints (loopback, or the bearer token), and the strict query parameter readers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Context } from 'koa';
import { checkAccess, isLoopback, sameToken } from '../../src/usage/access.ts';
import { BadParameter, readInt, readQuery, readTime } from '../../src/usage/query.ts';
import { publicUrl } from '../../src/proxy/route.ts';

const ctxFrom = (remoteAddress: string, authorization = ''): Context =>
  ({ req: { socket: { remoteAddress } }, get: (h: string) => (h.toLowerCase() === 'authorization' ? authorization : '') }) as unknown as Context;

describe('admin access', () => {
  it('knows loopback addresses, IPv4-mapped included', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(a), true, a);
    for (const a of ['10.0.0.1', '192.168.1.5', '::ffff:10.0.0.1', 'fe80::1', '', undefined]) assert.equal(isLoopback(a), false, String(a));
  });

  it('without a token: loopback in, anyone else 403 with a body saying how to let them in', () => {
    assert.deepEqual(checkAccess(ctxFrom('127.0.0.1'), ''), { ok: true });
    const denied = checkAccess(ctxFrom('192.168.1.5'), '');
    assert.equal(denied.ok, false);
    if (!denied.ok) {
      assert.equal(denied.status, 403);
      assert.match(denied.message, /LLMTAP_ADMIN_TOKEN/);
    }
  });

  it('with a token: the right bearer token from anywhere; missing or wrong is 401, loopback included', () => {
    assert.deepEqual(checkAccess(ctxFrom('192.168.1.5', 'Bearer s3cret'), 's3cret'), { ok: true });
    assert.deepEqual(checkAccess(ctxFrom('127.0.0.1', 'bearer  s3cret '), 's3cret'), { ok: true });
    for (const [addr, auth] of [['127.0.0.1', ''], ['127.0.0.1', 'Bearer wrong'], ['192.168.1.5', 'Bearer s3cre'], ['127.0.0.1', 'Basic czNjcmV0']]) {
      const r = checkAccess(ctxFrom(addr!, auth), 's3cret');
      assert.equal(r.ok, false, `${addr} ${auth}`);
      if (!r.ok) assert.equal(r.status, 401);
    }
  });

  it('compares tokens of any length without throwing', () => {
    assert.equal(sameToken('a', 'a'), true);
    assert.equal(sameToken('a', 'a'.repeat(1000)), false);
    assert.equal(sameToken('', 'x'), false);
  });
});

describe('query parameters', () => {
  it('refuses unknown and repeated parameters, naming them; _-prefixed cache busters pass', () => {
    assert.deepEqual([...readQuery('model=a&_=123', ['model'])], [['model', 'a']]);
    assert.throws(() => readQuery('modle=a', ['model']), (e: Error) => e instanceof BadParameter && e.parameter === 'modle');
    assert.throws(() => readQuery('model=a&model=b', ['model']), (e: Error) => e instanceof BadParameter && e.parameter === 'model');
  });

  it('reads times as ISO dates, epoch ms and durations ago; a bare date as an upper bound is the end of that day', () => {
    const now = Date.parse('2025-06-10T12:00:00.000Z');
    assert.equal(readTime('since', '2025-06-01', { now }), '2025-06-01T00:00:00.000Z');
    assert.equal(readTime('until', '2025-06-01', { now, endOfDay: true }), '2025-06-01T23:59:59.999Z');
    assert.equal(readTime('since', '2025-06-01T10:30:00+02:00', { now }), '2025-06-01T08:30:00.000Z');
    assert.equal(readTime('since', String(now), { now }), '2025-06-10T12:00:00.000Z');
    assert.equal(readTime('since', '90m', { now }), '2025-06-10T10:30:00.000Z');
    assert.equal(readTime('since', '7d', { now }), '2025-06-03T12:00:00.000Z');
    for (const bad of ['yesterday', '2025-13-45', '12', '-1h', '']) {
      assert.throws(() => readTime('since', bad, { now }), (e: Error) => e instanceof BadParameter && e.parameter === 'since' && e.message.includes('since'), bad);
    }
  });

  it('reads bounded integers', () => {
    assert.equal(readInt('limit', undefined, 1, 10, 5), 5);
    assert.equal(readInt('limit', '10', 1, 10, 5), 10);
    for (const bad of ['0', '11', '2.5', 'ten', '-3']) assert.throws(() => readInt('limit', bad, 1, 10, 5), BadParameter, bad);
  });
});

describe('publicUrl', () => {
  it('keeps credentials in a configured upstream URL out of records and endpoints', () => {
    assert.equal(publicUrl('https://user:sk-secret@llm.example.com/v1'), 'https://llm.example.com/v1');
    assert.equal(publicUrl('http://:tok@127.0.0.1:8000/'), 'http://127.0.0.1:8000/');
    assert.equal(publicUrl('https://api.openai.com'), 'https://api.openai.com');
  });
});
