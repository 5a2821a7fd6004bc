// The built-in simulated LLM server (OpenAI, Anthropic and Ollama dialects) used by the demo and tests.
export { startSimulator, type RunningSimulator, type SimulatorOptions } from './server.ts';
export { OPENAI_MODELS } from './openai.ts';
export { OLLAMA_MODELS } from './ollama.ts';
export { answerFor, tokenCount } from './text.ts';
export type { PacingOptions } from './pacing.ts';
