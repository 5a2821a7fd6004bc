// The process logger: pretty on a terminal, JSON lines otherwise.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { Config } from './config.ts';

export type { Logger };

export interface LoggerHandle {
  logger: Logger;
  /** writes out anything buffered; call before exit */
  flush(): void;
}

export function createLogger(config: Pick<Config, 'logLevel'>, opts: { pretty?: boolean } = {}): LoggerHandle {
  const usePretty = opts.pretty ?? Boolean(process.stdout.isTTY);
  if (usePretty) {
    const stream = pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true });
    return { logger: pino({ level: config.logLevel, base: undefined }, stream), flush: () => {} };
  }
  // Asynchronous writes keep logging off the request path; flush() empties the buffer at shutdown.
  const dest = pino.destination({ dest: 1, sync: false, minLength: 0 });
  return {
    logger: pino({ level: config.logLevel, base: { pid: process.pid } }, dest),
    flush: () => {
      try {
        dest.flushSync();
      } catch {
        /* stdout already closed: nothing left to save */
      }
    },
  };
}
