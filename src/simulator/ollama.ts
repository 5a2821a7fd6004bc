// The simulated Ollama API: chat and generate (NDJSON streams by default), embed, tags, ps, show, version.
import { pause, planPacing, type Plan } from './pacing.ts';
import { answerFor, chatPromptTokens, contextTokens, DEFAULT_EMBEDDING_DIMENSIONS, embeddingFor, MAX_EMBEDDING_DIMENSIONS, MAX_EMBEDDING_VALUES, tokenCount, type Answer } from './text.ts';
import {
  asArray,
  asNumber,
  asRecord,
  asString,
  openStream,
  readMessages,
  sendJson,
  simError,
  streamPieces,
  write,
  type Dialect,
  type Handler,
  type Json,
  type SimExchange,
} from './wire.ts';

export const OLLAMA_MODELS = ['sim-llama:latest', 'sim-embed:latest'] as const;
const VERSION = '0.12.6';
const JSON_TYPE = 'application/json; charset=utf-8';
const MS_NS = 1_000_000;

function requireOllamaModel(body: Json): string {
  const model = asString(body.model);
  if (!model) throw simError(400, 'invalid_request', 'model is required', 'model');
  return model;
}

/** options.num_predict, where -1 and -2 mean "no limit" as in Ollama. */
function numPredict(body: Json): number | null {
  const n = asNumber(asRecord(body.options)?.num_predict);
  return n !== undefined && n > 0 ? Math.floor(n) : null;
}

const now = (): string => new Date().toISOString();
const elapsedNs = (since: bigint): number => Number(process.hrtime.bigint() - since);

/**
 * Ollama's closing counters, in nanoseconds. The prompt phase runs until the first token, the eval phase
 * from there to the end; a small part of the prompt phase is reported as model loading.
 */
function finalStats(x: SimExchange, firstTokenAt: bigint, promptTokens: number, evalCount: number): Json {
  const total = elapsedNs(x.receivedAt);
  const beforeFirst = Number(firstTokenAt - x.receivedAt);
  const load = Math.round(beforeFirst * 0.1);
  return {
    total_duration: total,
    load_duration: load,
    prompt_eval_count: promptTokens,
    prompt_eval_duration: beforeFirst - load,
    eval_count: evalCount,
    eval_duration: Math.max(0, total - beforeFirst),
  };
}

interface Generation {
  model: string;
  answer: Answer;
  promptTokens: number;
  plan: Plan;
  /** the field that carries the text of one line: {message: {...}} for chat, {response} for generate */
  piece(text: string): Json;
  /** extra fields of the closing line (generate's context) */
  closing: Json;
}

/** Streams the answer as NDJSON lines, or waits and sends it whole when `stream` is false. */
async function generateAnswer(x: SimExchange, g: Generation): Promise<void> {
  const doneReason = g.answer.truncated ? 'length' : 'stop';
  if (x.body.stream === false) {
    if (!(await pause(g.plan.total, x.signal))) return;
    const firstTokenAt = x.receivedAt + BigInt(g.plan.first * MS_NS);
    sendJson(x.res, 200, {
      model: g.model, created_at: now(), ...g.piece(g.answer.text), done_reason: doneReason, done: true,
      ...g.closing, ...finalStats(x, firstTokenAt, g.promptTokens, g.answer.pieces.length),
    }, {}, JSON_TYPE);
    return;
  }
  openStream(x.res, 'application/x-ndjson');
  if (!(await pause(g.plan.first, x.signal))) return;
  const firstTokenAt = process.hrtime.bigint();
  const line = (payload: Json): string => `${JSON.stringify(payload)}\n`;
  const ok = await streamPieces(x, g.answer.pieces, g.plan, (text) => line({ model: g.model, created_at: now(), ...g.piece(text), done: false }));
  if (!ok) return;
  const last = line({
    model: g.model, created_at: now(), ...g.piece(''), done_reason: doneReason, done: true,
    ...g.closing, ...finalStats(x, firstTokenAt, g.promptTokens, g.answer.pieces.length),
  });
  if (await write(x, last)) x.res.end();
}

/** What Ollama answers to an empty prompt: it only loads the model. */
function loadOnly(x: SimExchange, model: string, piece: Json): void {
  sendJson(x.res, 200, { model, created_at: now(), ...piece, done_reason: 'load', done: true }, {}, JSON_TYPE);
}

const chat: Handler = async (x) => {
  const model = requireOllamaModel(x.body);
  const messages = asArray(x.body.messages) ?? [];
  const piece = (content: string): Json => ({ message: { role: 'assistant', content } });
  if (messages.length === 0) return loadOnly(x, model, piece(''));
  const { texts, lastUser } = readMessages(messages);
  const answer = answerFor(lastUser, numPredict(x.body));
  await generateAnswer(x, { model, answer, promptTokens: chatPromptTokens(texts), plan: planPacing(answer.pieces.length, x.pacing), piece, closing: {} });
};

const generate: Handler = async (x) => {
  const model = requireOllamaModel(x.body);
  const prompt = asString(x.body.prompt) ?? '';
  const piece = (response: string): Json => ({ response });
  if (prompt === '') return loadOnly(x, model, piece(''));
  const system = asString(x.body.system);
  const promptTokens = chatPromptTokens(system ? [system, prompt] : [prompt]);
  const answer = answerFor(prompt, numPredict(x.body));
  // The real server returns the conversation's token ids so a client can continue it; raw mode has none.
  const closing = x.body.raw === true ? {} : { context: contextTokens(`${prompt}\n${answer.text}`) };
  await generateAnswer(x, { model, answer, promptTokens, plan: planPacing(answer.pieces.length, x.pacing), piece, closing });
};

function embedInputs(input: unknown): string[] {
  if (typeof input === 'string') return [input];
  const items = asArray(input);
  if (!items || items.length === 0 || items.length > 2048 || !items.every((i) => typeof i === 'string')) {
    throw simError(400, 'invalid_request', 'input must be a string or an array of 1 to 2048 strings', 'input');
  }
  return items as string[];
}

function embedDimensions(body: Json): number {
  const d = body.dimensions ?? DEFAULT_EMBEDDING_DIMENSIONS;
  if (typeof d !== 'number' || !Number.isInteger(d) || d < 1 || d > MAX_EMBEDDING_DIMENSIONS) {
    throw simError(400, 'invalid_request', `dimensions must be an integer from 1 to ${MAX_EMBEDDING_DIMENSIONS}`, 'dimensions');
  }
  return d;
}

const embed: Handler = async (x) => {
  const model = requireOllamaModel(x.body);
  const inputs = embedInputs(x.body.input);
  const dims = embedDimensions(x.body);
  if (inputs.length * dims > MAX_EMBEDDING_VALUES) throw simError(400, 'invalid_request', `too many values: ${inputs.length} inputs × ${dims} dimensions is over ${MAX_EMBEDDING_VALUES}`, 'input');
  if (!(await pause(Math.round(planPacing(0, x.pacing).first * 0.3), x.signal))) return;
  const total = elapsedNs(x.receivedAt);
  sendJson(x.res, 200, {
    model,
    embeddings: inputs.map((t) => embeddingFor(t, dims)),
    total_duration: total,
    load_duration: Math.round(total * 0.1),
    prompt_eval_count: inputs.reduce((n, t) => n + tokenCount(t), 0),
  }, {}, JSON_TYPE);
};

/** The older single-prompt endpoint, still served by Ollama. */
const embeddingsLegacy: Handler = async (x) => {
  requireOllamaModel(x.body);
  const prompt = asString(x.body.prompt) ?? '';
  if (!(await pause(Math.round(planPacing(0, x.pacing).first * 0.3), x.signal))) return;
  sendJson(x.res, 200, { embedding: prompt === '' ? [] : embeddingFor(prompt, embedDimensions(x.body)) }, {}, JSON_TYPE);
};

const MODIFIED_AT = '2025-01-01T00:00:00.000000000Z';
const modelDetails = (name: string): Json => ({
  parent_model: '', format: 'gguf', family: name.startsWith('sim-embed') ? 'bert' : 'llama',
  families: [name.startsWith('sim-embed') ? 'bert' : 'llama'],
  parameter_size: name.startsWith('sim-embed') ? '23M' : '1B', quantization_level: 'Q4_K_M',
});

const tags: Handler = async (x) => {
  sendJson(x.res, 200, {
    models: OLLAMA_MODELS.map((name, i) => ({
      name, model: name, modified_at: MODIFIED_AT, size: i === 0 ? 807_694_464 : 45_960_996,
      digest: `${'0'.repeat(63)}${i}`, details: modelDetails(name),
    })),
  }, {}, JSON_TYPE);
};

const ps: Handler = async (x) => {
  sendJson(x.res, 200, { models: [] }, {}, JSON_TYPE);
};

const show: Handler = async (x) => {
  const model = asString(x.body.model) ?? asString(x.body.name);
  if (!model) throw simError(400, 'invalid_request', 'model is required', 'model');
  sendJson(x.res, 200, {
    modelfile: `# simulated by llmtap\nFROM ${model}\n`, parameters: '', template: '{{ .Prompt }}',
    details: modelDetails(model), model_info: {}, capabilities: model.startsWith('sim-embed') ? ['embedding'] : ['completion'],
    modified_at: MODIFIED_AT,
  }, {}, JSON_TYPE);
};

const version: Handler = async (x) => {
  sendJson(x.res, 200, { version: VERSION }, {}, JSON_TYPE);
};

const ROUTES = new Map<string, Handler>([
  ['POST /api/chat', chat],
  ['POST /api/generate', generate],
  ['POST /api/embed', embed],
  ['POST /api/embeddings', embeddingsLegacy],
  ['POST /api/show', show],
  ['GET /api/tags', tags],
  ['GET /api/ps', ps],
  ['GET /api/version', version],
]);

export const ollama: Dialect = {
  name: 'ollama',
  // Ollama answers HEAD like GET for its read-only endpoints; clients probe with it.
  route: (method, path) => ROUTES.get(`${method === 'HEAD' ? 'GET' : method} ${path}`) ?? null,
  errorBody: (err) => ({ contentType: JSON_TYPE, body: JSON.stringify({ error: err.message }) }),
  notFoundMessage: () => '404 page not found',
  badJsonMessage: (detail) => detail,
};
