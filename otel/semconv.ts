// Names, units and bucket boundaries from the OpenTelemetry GenAI and HTTP semantic conventions, plus llmtap's own.

/** Span and metric attribute keys. */
export const ATTR = {
  operationName: 'gen_ai.operation.name',
  providerName: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  requestStream: 'gen_ai.request.stream',
  requestMaxTokens: 'gen_ai.request.max_tokens',
  requestTemperature: 'gen_ai.request.temperature',
  requestTopP: 'gen_ai.request.top_p',
  requestTopK: 'gen_ai.request.top_k',
  requestFrequencyPenalty: 'gen_ai.request.frequency_penalty',
  requestPresencePenalty: 'gen_ai.request.presence_penalty',
  requestSeed: 'gen_ai.request.seed',
  requestStopSequences: 'gen_ai.request.stop_sequences',
  requestChoiceCount: 'gen_ai.request.choice.count',
  responseId: 'gen_ai.response.id',
  responseModel: 'gen_ai.response.model',
  responseFinishReasons: 'gen_ai.response.finish_reasons',
  responseTimeToFirstChunk: 'gen_ai.response.time_to_first_chunk',
  usageInputTokens: 'gen_ai.usage.input_tokens',
  usageOutputTokens: 'gen_ai.usage.output_tokens',
  usageCacheReadInputTokens: 'gen_ai.usage.cache_read.input_tokens',
  usageCacheCreationInputTokens: 'gen_ai.usage.cache_creation.input_tokens',
  usageReasoningOutputTokens: 'gen_ai.usage.reasoning.output_tokens',
  tokenType: 'gen_ai.token.type',
  inputMessages: 'gen_ai.input.messages',
  outputMessages: 'gen_ai.output.messages',
  serverAddress: 'server.address',
  serverPort: 'server.port',
  errorType: 'error.type',
  httpRequestMethod: 'http.request.method',
  httpResponseStatusCode: 'http.response.status_code',
  httpRequestBodySize: 'http.request.body.size',
  httpResponseBodySize: 'http.response.body.size',
  urlPath: 'url.path',
  urlFull: 'url.full',
  llmtapUpstream: 'llmtap.upstream',
  llmtapOutcome: 'llmtap.outcome',
  llmtapFailoverFrom: 'llmtap.failover.from',
  errorMessage: 'error.message',
  llmtapExchangeId: 'llmtap.exchange.id',
  llmtapUsageSource: 'llmtap.usage.source',
  llmtapDirection: 'llmtap.direction',
  llmtapSignal: 'llmtap.telemetry.signal',
  llmtapExporter: 'llmtap.telemetry.exporter',
} as const;

/** Event names on spans. */
export const EVENT = {
  /** the first chunk carrying generated content reached llmtap */
  firstChunk: 'llmtap.first_chunk',
  /** with several upstreams: an upstream failed before answering and llmtap tried another */
  failover: 'llmtap.failover',
  /** message content, when OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT asks for events */
  operationDetails: 'gen_ai.client.inference.operation.details',
} as const;

/** Metric names, units and descriptions. */
export const METRIC = {
  operationDuration: { name: 'gen_ai.client.operation.duration', unit: 's', description: 'GenAI operation duration, as seen by llmtap calling the upstream.' },
  tokenUsage: { name: 'gen_ai.client.token.usage', unit: '{token}', description: 'Number of input and output tokens used.' },
  timeToFirstChunk: { name: 'gen_ai.client.operation.time_to_first_chunk', unit: 's', description: 'Time from forwarding a streamed request to its first content chunk.' },
  timePerOutputChunk: { name: 'gen_ai.client.operation.time_per_output_chunk', unit: 's', description: 'Time per output chunk after the first, averaged over one stream.' },
  serverTimeToFirstToken: { name: 'gen_ai.server.time_to_first_token', unit: 's', description: "Time from receiving a streamed request to its first content token, from the point of view of llmtap's clients." },
  serverTimePerOutputToken: { name: 'gen_ai.server.time_per_output_token', unit: 's', description: "Time per output token after the first, from the point of view of llmtap's clients." },
  requests: { name: 'llmtap.requests', unit: '{request}', description: 'Exchanges proxied, by status code and outcome.' },
  bytes: { name: 'llmtap.bytes', unit: 'By', description: 'Body bytes proxied, by direction.' },
  activeRequests: { name: 'llmtap.active_requests', unit: '{request}', description: 'Exchanges in flight.' },
  proxyOverhead: { name: 'llmtap.proxy.overhead', unit: 's', description: "Time spent inside llmtap's own code per exchange, excluding the upstream's and the client's time." },
  exportFailures: { name: 'llmtap.telemetry.export_failures', unit: '{failure}', description: 'Telemetry exports that failed, by signal and exporter.' },
} as const;

// Explicit bucket boundaries as the GenAI metrics conventions specify them (docs/gen-ai/gen-ai-metrics.md).
const POWERS_OF_TWO_SECONDS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];

export const BUCKETS: Readonly<Record<keyof typeof METRIC, readonly number[] | null>> = {
  operationDuration: POWERS_OF_TWO_SECONDS,
  tokenUsage: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
  timeToFirstChunk: POWERS_OF_TWO_SECONDS,
  timePerOutputChunk: POWERS_OF_TWO_SECONDS,
  serverTimeToFirstToken: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0],
  serverTimePerOutputToken: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5],
  // llmtap's own: its overhead is tens of microseconds to a few milliseconds.
  proxyOverhead: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
  requests: null,
  bytes: null,
  activeRequests: null,
  exportFailures: null,
};

/** The value a capped model attribute takes once the cap of distinct values is reached. */
export const OTHER_MODEL = 'other';

export const INSTRUMENTATION_SCOPE = 'llmtap';
