// The llmtap command: read settings, start the proxy, stop gracefully on SIGINT/SIGTERM.
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { ALL_FEATURES } from './feature-list.ts';
import { createLogger } from './log.ts';
import { startLlmtap } from './start.ts';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function fatal(message: string): never {
  process.stderr.write(message.split('\n')[0] + '\n');
  process.exit(1);
}

let config: Config;
try {
  const action = loadConfig({ argv: process.argv.slice(2), env: process.env });
  if (action.kind === 'help') {
    process.stdout.write(action.text);
    process.exit(0);
  }
  if (action.kind === 'version') {
    process.stdout.write(`llmtap ${version()}\n`);
    process.exit(0);
  }
  config = action.config;
} catch (err) {
  if (err instanceof ConfigError) fatal(err.message);
  throw err;
}

const { logger, jsonLine, flush } = createLogger(config);
let proxy;
try {
  proxy = await startLlmtap(config, { logger, jsonLine, features: ALL_FEATURES, env: process.env });
} catch (err) {
  fatal(err instanceof ConfigError ? err.message : `llmtap: failed to start: ${(err as Error).message}`);
}

if (proxy.upstreams) {
  logger.info({ url: proxy.url, upstreams: proxy.upstreams.status().map((u) => u.name), version: version() }, `llmtap ${version()} listening on ${proxy.url} (routing by model over ${proxy.upstreams.status().length} upstreams; SIGHUP reloads ${config.configFile})`);
} else {
  logger.info(
    { url: proxy.url, openai: config.openaiUrl, anthropic: config.anthropicUrl, ollama: config.ollamaUrl, version: version() },
    `llmtap ${version()} listening on ${proxy.url} (openai → ${config.openaiUrl}, anthropic → ${config.anthropicUrl}, ollama → ${config.ollamaUrl})`,
  );
}
// SIGHUP: the upstream list is read again; in-flight requests keep the upstream they have.
process.on('SIGHUP', () => void proxy.reloadUpstreams());

let stopping = false;
const stop = (signal: NodeJS.Signals): void => {
  if (stopping) {
    logger.warn(`${signal} again: exiting now`);
    flush();
    process.exit(130);
  }
  stopping = true;
  logger.info(`${signal}: no longer accepting; waiting up to ${config.shutdownGraceMs} ms for ${proxy.inFlight()} exchange(s) in flight`);
  proxy
    .close()
    .then(() => {
      logger.info('llmtap stopped');
      flush();
      process.exit(0);
    })
    .catch((err: unknown) => {
      logger.error({ err }, `shutdown failed: ${(err as Error).message}`);
      flush();
      process.exit(1);
    });
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
