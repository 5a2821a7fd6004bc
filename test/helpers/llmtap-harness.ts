// Child-process harness: runs llmtap in its own heap (started with --expose-gc) and reports heap samples over IPC.
import { configWith } from '../../src/config.ts';
import { startLlmtap } from '../../src/start.ts';
import type { RunningLlmtap } from '../../src/start.ts';
import { HARNESS_SETTINGS_ENV } from './harness-protocol.ts';
import type { HarnessReply, HarnessRequest, HeapSample, HarnessSettings } from './harness-protocol.ts';

const gc = (globalThis as { gc?: () => void }).gc;

function reply(msg: HarnessReply): void {
  process.send?.(msg);
}

function sample(): HeapSample {
  gc?.();
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss };
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('llmtap-harness must be started with an IPC channel (child_process.fork)');
  if (!gc) throw new Error('llmtap-harness needs node --expose-gc');
  const settings = JSON.parse(process.env[HARNESS_SETTINGS_ENV] ?? '{}') as HarnessSettings;
  let proxy: RunningLlmtap;
  try {
    proxy = await startLlmtap(configWith({ logLevel: 'silent', ...settings, port: 0 }));
  } catch (err) {
    reply({ type: 'failed', message: String((err as Error).stack ?? err) });
    process.exit(1);
  }
  let timer: NodeJS.Timeout | null = null;
  let peak: HeapSample | null = null;
  let count = 0;
  process.on('message', (raw: unknown) => {
    const msg = raw as HarnessRequest;
    switch (msg.type) {
      case 'heap':
        reply({ type: 'heap', sample: sample() });
        break;
      case 'watch':
        peak = sample();
        count = 1;
        if (timer) clearInterval(timer);
        timer = setInterval(() => {
          const s = sample();
          count++;
          if (peak === null || s.heapUsed + s.external > peak.heapUsed + peak.external) peak = s;
        }, msg.intervalMs);
        break;
      case 'unwatch':
        if (timer) clearInterval(timer);
        timer = null;
        reply({ type: 'watched', samples: count, peak: peak ?? sample() });
        break;
      case 'close':
        if (timer) clearInterval(timer);
        void proxy.close().then(() => {
          reply({ type: 'closed' });
          process.disconnect();
        });
        break;
    }
  });
  // The test going away must not leave this process behind.
  process.on('disconnect', () => process.exit(0));
  reply({ type: 'ready', url: proxy.url });
}

main().catch((err: unknown) => {
  reply({ type: 'failed', message: String((err as Error).stack ?? err) });
  process.exit(1);
});
