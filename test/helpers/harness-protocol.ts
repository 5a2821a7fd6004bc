// Messages between the memory test and the llmtap harness child process (types only; both sides import them).
import type { RawSettings } from '../../src/config.ts';

export interface HeapSample {
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}

export type HarnessRequest =
  /** force a GC and report the heap */
  | { type: 'heap' }
  /** start sampling the heap every intervalMs (forcing a GC first, so samples show what is retained) */
  | { type: 'watch'; intervalMs: number }
  /** stop sampling and report the peak */
  | { type: 'unwatch' }
  | { type: 'close' };

export type HarnessReply =
  | { type: 'ready'; url: string }
  | { type: 'failed'; message: string }
  | { type: 'heap'; sample: HeapSample }
  | { type: 'watched'; samples: number; peak: HeapSample }
  | { type: 'closed' };

/** The settings the harness starts llmtap with, passed as JSON in this environment variable. */
export const HARNESS_SETTINGS_ENV = 'LLMTAP_HARNESS_SETTINGS';
export type HarnessSettings = RawSettings;
