/**
 * One error model for tidemark. An error the user can act on is a TidemarkError: its message says what is
 * wrong and how to fix it, it carries the process exit code, and it says whether trying the same thing again
 * can succeed. Anything else is a bug or an unexpected failure of a library, and is treated as not retriable:
 * an error that will happen again on the same bytes must stop the run, not loop (ARCHITECTURE §5, dead letters).
 */

/** What a row tidemark cannot encode, or a record a sink refuses, does (config `errors.mode`). */
export type ErrorMode = 'fail' | 'dead-letter';

/** Exit codes of the CLI: a supervisor restarts on 1 (runtime), not on 2 (the config or the command line is wrong). */
export const EXIT = { ok: 0, runtime: 1, config: 2 } as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface TidemarkErrorOptions {
  retriable?: boolean;
  cause?: unknown;
}

export class TidemarkError extends Error {
  readonly exitCode: ExitCode = EXIT.runtime;
  /** Whether the same step can succeed when tried again (a lost connection), or will fail the same way. */
  readonly retriable: boolean;

  constructor(message: string, options: TidemarkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retriable = options.retriable ?? false;
  }
}

/** A config file that cannot be used. `problems` are each printed on a line of their own under `summary`. */
export class ConfigError extends TidemarkError {
  override readonly exitCode = EXIT.config;

  constructor(
    summary: string,
    readonly problems: readonly string[] = [],
  ) {
    super([summary, ...problems.map((p) => `  ${p}`)].join('\n'));
  }
}

/** Command-line arguments that cannot be used (a table name the config does not capture, say). */
export class UsageError extends TidemarkError {
  override readonly exitCode = EXIT.config;
}

/** The source server refuses, lacks something tidemark needs, or was lost. */
export class SourceError extends TidemarkError {}

/**
 * The server went silent on a connection that waits for it (no event, no heartbeat, no answer) for longer than
 * source.heartbeatTimeoutMs: a partition or a hung server, which TCP alone would wait out for many minutes.
 */
export class ConnectionSilent extends SourceError {
  constructor(what: string, ms: number) {
    super(`${what} for ${ms} ms (source.heartbeatTimeoutMs): the connection is taken for dead`, { retriable: true });
  }
}

/** A sink could not be used, or not safely. */
export class SinkError extends TidemarkError {}

/** The checkpoint cannot be used as it is (written by a newer tidemark, or inconsistent with the sink). */
export class CheckpointError extends TidemarkError {}

/** mysql2 and zongji codes of a connection that was lost or refused and may come back. */
const CONNECTION_LOSS_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
]);

/**
 * A TLS handshake that failed on the certificate, or a server that offers no TLS where it is required: mysql2 marks
 * both fatal, but unlike a lost connection no new attempt gets past them. Network failures during the handshake share
 * mysql2's code and stay connection losses.
 */
export function isTlsRefusal(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (e?.code === 'HANDSHAKE_NO_SSL_SUPPORT') return true;
  return e?.code === 'HANDSHAKE_SSL_ERROR' && !/ECONNRESET|EPIPE|ETIMEDOUT|socket hang up|socket disconnected/i.test(e.message ?? '');
}

/**
 * mysql2 marks errors that leave the connection unusable (lost, reset, killed) as fatal. A TidemarkError that
 * explains a refused reconnect keeps the network error as its cause.
 */
export function isConnectionLoss(err: unknown): boolean {
  if (err instanceof ConnectionSilent) return true;
  if (isTlsRefusal(err)) return false;
  const e = err as { fatal?: boolean; code?: string; cause?: unknown } | null;
  if (e?.fatal === true || CONNECTION_LOSS_CODES.has(e?.code ?? '')) return true;
  return err instanceof TidemarkError && err.retriable && e?.cause !== undefined && isConnectionLoss(e.cause);
}

/**
 * Server errors that a new attempt of the same read gets past: MariaDB refuses a consistent snapshot's read of a
 * table that a TRUNCATE or ALTER re-created since the snapshot began.
 */
const TRANSIENT_CODES = new Set(['ER_TABLE_DEF_CHANGED']);

/** Whether trying again can help: a TidemarkError says so itself; otherwise a lost connection or a transient refusal. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof TidemarkError) return err.retriable;
  return isConnectionLoss(err) || TRANSIENT_CODES.has((err as { code?: string } | null)?.code ?? '');
}

/** Codes of a write refused for want of space: the file system's (a quota's too) and SQLite's. */
const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);

/**
 * The message for a failed operation on one of tidemark's own files (`what` names it: "writing the output
 * /data/out.jsonl"). A full disk is said plainly, with its cure: nothing past the last checkpoint counts as
 * written, so once there is space again a restart resumes from there.
 */
export function fileFailure(what: string, err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return `${what} failed: ${errorOf(err).message}`;
  if (NO_SPACE_CODES.has(code)) {
    return `${what} failed: no space left on its file system (${code}). Free space there and start tidemark again: it resumes from its last checkpoint.`;
  }
  // Node's messages start with the code (EIO: i/o error, write); SQLite's do not (disk I/O error).
  const message = errorOf(err).message;
  return `${what} failed: ${message.includes(code) ? message : `${message} (${code})`}`;
}

export function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
