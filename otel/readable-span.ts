// SpanData dressed as the SDK's ReadableSpan, for exporters that take those (console, zipkin, module:, tests' in-memory).
import type { HrTime, SpanContext, Attributes } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { InstrumentationScope } from '@opentelemetry/core';
import { epochOf, type SpanAttrs, type SpanData } from './span-data.ts';

function clean(attrs: SpanAttrs): Attributes {
  const out: Attributes = {};
  for (let i = 0; i < attrs.length; i += 2) {
    const v = attrs[i + 1];
    if (v !== undefined && v !== null) out[attrs[i] as string] = Array.isArray(v) ? [...(v as unknown[] as string[])] : (v as string | number | boolean);
  }
  return out;
}

function duration(start: HrTime, end: HrTime): HrTime {
  let s = end[0] - start[0];
  let ns = end[1] - start[1];
  if (ns < 0) {
    s -= 1;
    ns += 1e9;
  }
  return [s, ns];
}

export function toReadableSpan(d: SpanData, resource: Resource, scope: InstrumentationScope): ReadableSpan {
  const ctx: SpanContext = { traceId: d.traceId, spanId: d.spanId, traceFlags: 1 };
  const startTime = epochOf(d.start);
  const endTime = epochOf(d.end);
  return {
    name: d.name,
    kind: d.kind,
    spanContext: () => ctx,
    parentSpanContext: d.parentSpanId ? { traceId: d.traceId, spanId: d.parentSpanId, traceFlags: 1, isRemote: d.parentRemote } : undefined,
    startTime,
    endTime,
    duration: duration(startTime, endTime),
    status: d.statusMessage ? { code: d.statusCode, message: d.statusMessage } : { code: d.statusCode },
    attributes: clean(d.attributes),
    links: [],
    events: d.events.map((e) => ({ name: e.name, time: epochOf(e.at), attributes: clean(e.attributes) })),
    ended: true,
    resource,
    instrumentationScope: scope,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
}
