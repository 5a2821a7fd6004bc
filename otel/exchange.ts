// What telemetry reads from an exchange: structural subsets of the proxy's records, so otel/ needs nothing from src/.

/** gen_ai.request.* parameters as the client sent them. */
export interface TelemetryParams {
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  seed?: number;
  stopSequences?: readonly string[];
  choiceCount?: number;
}

/** The upstream call as it starts: names the CLIENT span and gives its first attributes. */
export interface TelemetryCall {
  id: string;
  /** the provider's wire format; doubles as gen_ai.provider.name (openai, anthropic, ollama) */
  dialect: string;
  /** chat, text_completion, embeddings; null for calls that generate nothing (model lists) */
  operation: string | null;
  model: string;
  stream: boolean;
  params: TelemetryParams;
  method: string;
  upstream: { name: string; url: string; origin: string };
  path: string;
}

/** A finished exchange; times in milliseconds (monotonic), null when the exchange never got there. */
export interface TelemetryExchange {
  id: string;
  method: string;
  url: string;
  dialect: string;
  upstream: { name: string; url: string };
  operation: string | null;
  model: string;
  responseModel: string | null;
  responseId: string | null;
  stream: boolean;
  params: TelemetryParams;
  status: number | null;
  outcome: string;
  errorType: string | null;
  errorMessage: string | null;
  finishReasons: readonly string[];
  timings: {
    /** request forwarded → response head */
    ttfb: number | null;
    /** request forwarded → first content chunk (streams) */
    ttft: number | null;
    /** request received → last byte relayed */
    duration: number;
    timePerOutputToken: number | null;
    overhead: number;
  };
  usage: {
    input: number | null;
    output: number | null;
    cacheRead: number | null;
    cacheWrite: number | null;
    reasoning: number | null;
    source: string;
  };
  bytes: { requestIn: number; requestOut: number; responseIn: number; responseOut: number };
  /** with several upstreams: the ones that failed before the one that answered */
  failover?: ReadonlyArray<{ upstream: string; status: number | null; outcome: string; error: string }>;
}

/** The exchange's start as seen by subscribers: the forwarded body, for message content capture. */
export interface TelemetryStart {
  id: string;
  requestBody: Uint8Array | null;
}
