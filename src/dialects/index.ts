// The dialects by name: the only place outside src/dialects that needs to know which ones exist.
import type { DialectName } from '../exchange/record.ts';
import { anthropic } from './anthropic.ts';
import { ollama } from './ollama.ts';
import { openai } from './openai.ts';
import { requestStreamUsage } from './openai-stream-usage.ts';
import type { Dialect } from './types.ts';

export type { Dialect, Observation, ResponseObserver, ResponseTransform, RequestInfo, ReportedUsage } from './types.ts';

export const DIALECTS: ReadonlyMap<DialectName, Dialect> = new Map<DialectName, Dialect>([
  ['openai', { ...openai, rewriteRequest: (path, body, raw, opts) => (opts.streamUsage ? requestStreamUsage(path, body, raw) : null) }],
  ['anthropic', anthropic],
  ['ollama', ollama],
]);

export function dialect(name: DialectName): Dialect {
  return DIALECTS.get(name)!;
}
