// The hook tracing plugs into: a handle per request that names its trace and carries it upstream.
import type { IncomingHttpHeaders } from 'node:http';
import type { DialectName, ExchangeRecord, Operation, RequestParams } from './record.ts';

/** Every response names its trace. */
export const TRACE_HEADER = 'x-llmtap-trace-id';

/** What is known when the upstream call starts, for the CLIENT span's name and attributes. */
export interface UpstreamCall {
  id: string;
  dialect: DialectName;
  operation: Operation;
  model: string;
  stream: boolean;
  params: RequestParams;
  method: string;
  /** the upstream URL as configured, and the origin the request goes to */
  upstream: { name: string; url: string; origin: string };
  path: string;
}

export interface TraceHandle {
  /** 32 hex digits; sent to the client as x-llmtap-trace-id */
  readonly traceId: string;
  /** the upstream call starts now: returns the headers that carry the trace to it (traceparent, tracestate) */
  upstream(call: UpstreamCall): ReadonlyArray<readonly [string, string]>;
  /** the exchange ended (called once, after the client has its last byte) */
  end(record: ExchangeRecord): void;
  /** a request llmtap answered itself (its own endpoints, 404s): ends the SERVER span */
  endRequest(status: number): void;
}

export interface RequestTracer {
  /** a request arrived (method and path as received); incoming holds any traceparent to continue */
  begin(method: string, path: string, incoming: IncomingHttpHeaders): TraceHandle;
}
