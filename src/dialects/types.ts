// The shape every dialect adapter fills: what to read from a request, how to observe a response, how to say an error.
import type { DialectName, Operation, RequestParams } from '../exchange/record.ts';

export interface RequestInfo {
  model: string;
  stream: boolean;
  operation: Operation;
  params: RequestParams;
}

/** Token counts as a provider reported them; fields it did not report stay undefined. */
export interface ReportedUsage {
  input?: number;
  output?: number;
  total?: number;
  cacheRead?: number;
  cacheWrite?: number;
  reasoning?: number;
}

export interface Observation {
  responseModel: string | null;
  responseId: string | null;
  finishReasons: string[];
  usage: ReportedUsage | null;
  /** monotonic ms (performance.now()) of the first chunk that carried generated content */
  firstContentAt: number | null;
  /** the stream carried its end marker ([DONE], message_stop, done:true); true for complete non-stream bodies */
  complete: boolean;
  /** an error the upstream reported inside a 2xx stream (Anthropic `event: error`, OpenAI `{"error":...}`) */
  streamError: string | null;
  /** the generated text's token count by estimate, for upstreams that report no usage */
  estimateOutputTokens(): Promise<number>;
  notes: string[];
}

/** Fed the response body bytes as they pass; never holds more than its caps. */
export interface ResponseObserver {
  write(chunk: Uint8Array, now: number): void;
  end(): Observation;
}

export interface ObserverInit {
  path: string;
  contentType: string;
  status: number;
  stream: boolean;
}

export interface DialectErrorInit {
  status: number;
  code: string;
  message: string;
}

export interface Dialect {
  name: DialectName;
  /** body is the parsed JSON of the request, or undefined when there was none or it did not parse */
  inspectRequest(path: string, body: unknown): RequestInfo;
  createObserver(init: ObserverInit): ResponseObserver;
  errorBody(init: DialectErrorInit): unknown;
  /** a body to send instead of the client's (OpenAI stream usage), or null to forward it unchanged */
  rewriteRequest?(path: string, body: unknown, raw: Buffer, opts: { streamUsage: boolean }): BodyRewrite | null;
}

/** Rewrites a response body on its way to the client; returns what to send now (possibly empty). */
export interface ResponseTransform {
  push(chunk: Buffer): Buffer;
  end(): Buffer;
}

/** A changed request body, and the transform that hides the change from the client. */
export interface BodyRewrite {
  body: Buffer;
  createResponseTransform: () => ResponseTransform;
}
