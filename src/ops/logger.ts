import pino from 'pino';
import pretty from 'pino-pretty';

export type Log = (msg: string, fields?: Record<string, unknown>) => void;

/** Anything under these keys is a secret, wherever it appears in a log line. */
const REDACT = ['password', '*.password', '*.*.password', 'url', '*.url', 'sasl', '*.sasl'];

/**
 * Structured logs on stderr (stdout stays free for the stdout sink): JSON lines, or readable lines
 * when stderr is a terminal. Config values never reach a log line unredacted. TIDEMARK_LOG_LEVEL=debug adds
 * details such as the stack of an error the user was shown only the message of.
 */
export function createLogger(): pino.Logger {
  const options: pino.LoggerOptions = {
    level: process.env.TIDEMARK_LOG_LEVEL ?? 'info',
    base: null,
    redact: { paths: REDACT, censor: '***' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (process.stderr.isTTY) return pino(options, pretty({ destination: 2, sync: true, colorize: true, ignore: 'pid,hostname' }));
  return pino(options, pino.destination({ dest: 2, sync: true }));
}

export function logFunction(logger: pino.Logger): Log {
  return (msg, fields) => logger.info(fields ?? {}, msg);
}
