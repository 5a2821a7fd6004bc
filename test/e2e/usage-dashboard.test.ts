// End to end: the /dashboard page in headless Chromium loads without console errors, and its numbers move as requests flow.
import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type BrowserContext } from 'playwright-core';
import { configWith } from '../../src/config.ts';
import { startLlmtap, type RunningLlmtap } from '../../src/start.ts';
import { createUsageFeature } from '../../src/usage/feature.ts';
import { startMockUpstream, type MockUpstream } from '../helpers/mock-upstream.ts';
import { postJson } from '../helpers/http-client.ts';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const present = existsSync(CHROMIUM);
if (!present) {
  if (process.env.CI) throw new Error(`${CHROMIUM} is missing: CI must install chromium (apt-get install chromium)`);
  console.log(`# skipping the dashboard test: ${CHROMIUM} is not installed (apt-get install chromium)`);
}

let dir: string;
let mock: MockUpstream;
let proxy: RunningLlmtap;
let browser: BrowserContext | null = null;

before(async () => {
  if (!present) return;
  dir = mkdtempSync(join(tmpdir(), 'llmtap-dashboard-'));
  mock = await startMockUpstream();
  proxy = await startLlmtap(
    configWith({ port: 0, openaiUrl: mock.url, anthropicUrl: mock.url, ollamaUrl: mock.url, logLevel: 'silent', usageFile: join(dir, 'usage.json') }),
    { features: [createUsageFeature({ streamIntervalMs: 100 })] },
  );
  // A new, empty profile for every run.
  browser = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, args: ARGS, headless: true, viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await mock?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

it('the dashboard loads without console errors and its numbers change when requests flow', { skip: !present && `${CHROMIUM} not installed`, timeout: 60_000 }, async () => {
  const page = await browser!.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // The usage stream is cut when the page closes; anything else failing is a defect.
    if (!r.url().endsWith('/api/usage-stream')) problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
  });

  const res = await page.goto(`${proxy.url}/dashboard`);
  assert.equal(res?.status(), 200);
  const text = (id: string): Promise<string> => page.locator(`#${id}`).innerText();
  // Polled from here through locators: the page's own CSP (no eval) stays in force during the test.
  const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    const deadline = Date.now() + 10_000;
    for (let i = 0; i < 400 && Date.now() < deadline; i++) {
      if (await check()) return;
      await sleep(50);
    }
    assert.fail(`the page did not show ${what} within 10 s`);
  };
  const textIs = (id: string, value: string): Promise<void> => until(`#${id} = ${value} (now "${id}")`, async () => (await text(id)) === value);
  await textIs('conn', 'live');
  assert.equal(await text('c-requests'), '0');
  assert.equal(await text('c-active'), '0');

  // A long stream shows among the active exchanges while it runs.
  mock.handle((req) =>
    (req.json as { model?: string }).model === 'slow-model'
      ? { kind: 'chat', pieces: Array.from({ length: 20 }, (_, i) => ` w${i}`), gapMs: 100, usage: { input: 40, output: 20 } }
      : { kind: 'chat', pieces: ['a', 'b', 'c', 'd'], gapMs: 5, firstChunkDelayMs: 20, usage: { input: 1000, output: 500 } },
  );
  const slow = postJson(`${proxy.url}/v1/chat/completions`, { model: 'slow-model', stream: true, messages: [{ role: 'user', content: 'hi' }] });
  await until('slow-model among the active exchanges', async () => (await text('active')).includes('slow-model'));
  assert.equal(await text('c-active'), '1');

  const fast = [];
  for (let i = 0; i < 6; i++) fast.push(postJson(`${proxy.url}/v1/chat/completions`, { model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: `q${i}` }] }));
  await Promise.all(fast);
  await slow;
  await textIs('c-requests', '7');
  await textIs('c-active', '0');
  assert.equal(await text('c-output'), '3,020');
  assert.equal(await text('c-input'), '6,040');
  // gpt-4o at $2.50/$10 per million: 6 x (1000 x 2.5 + 500 x 10) / 1e6
  assert.equal(await text('c-cost'), '0.0450');
  const models = await text('models');
  assert.match(models, /gpt-4o\s+openai\s+6/);
  assert.match(models, /slow-model\s+openai\s+1/);
  assert.equal(await page.locator('#recent tr').count(), 7);
  assert.equal(Number(await text('ttft-n')), 7);
  assert.equal(await page.locator('#ttft-spark polyline').count(), 1);
  assert.ok(Number((await text('tps-peak')).replace(/,/g, '')) >= 500, 'tokens per second reached the chart');

  const shot = join(tmpdir(), `llmtap-dashboard-${process.pid}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`# dashboard screenshot: ${shot}`);
  await page.close();
  assert.deepEqual(problems, []);
});
