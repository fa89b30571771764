/** Rows tidemark cannot encode: a dead letter (errors.mode: dead-letter) or an error that stops the run (fail). */
import { type ErrorMode, TidemarkError } from '../errors.js';
import type { DeadLetter, DeadLetterReason, EventSource } from './event.js';

/** A row that cannot be encoded, with errors.mode fail: the run stops and names it. */
export class RowError extends TidemarkError {}

export interface FailedRow {
  db: string;
  table: string;
  /** The key as JSON, when it could be encoded. */
  key: string | null;
  /** The row as read. */
  raw: unknown;
  error: unknown;
  /** Where the row was read: a binlog position, or a snapshot chunk. */
  where: string;
}

/** A row's dead letter, or the error that stops the run, as `mode` says. */
export function failedRow(mode: ErrorMode, f: FailedRow, source: EventSource, row: number): DeadLetter {
  const error = f.error instanceof Error ? f.error.message : String(f.error);
  if (mode === 'fail') {
    throw new RowError(
      `cannot encode a row of ${f.db}.${f.table}${f.key === null ? '' : ` with key ${f.key}`} ${f.where}: ${error}. ` +
        'Set errors.mode: dead-letter to write such rows to the dead letters and go on, or correct the row on the source.',
      { cause: f.error },
    );
  }
  return { op: 'dead', db: f.db, table: f.table, key: f.key, reason: 'decode', error, raw: rawRowJson(f.raw), row, source };
}

/** The key of a raw row as JSON, or null when it cannot be encoded either. */
export function keyOrNull(writeKey: (raw: Record<string, unknown>) => string, raw: Record<string, unknown>): string | null {
  try {
    return writeKey(raw);
  } catch {
    return null;
  }
}

/** A raw row as JSON for a dead letter: Buffers as base64, big integers as text. */
export function rawRowJson(raw: unknown): string | null {
  if (raw === null || raw === undefined) return null;
  try {
    return JSON.stringify(raw, function (this: Record<string, unknown>, key: string, v: unknown) {
      const original = this[key];
      if (Buffer.isBuffer(original)) return original.toString('base64');
      if (typeof v === 'bigint') return v.toString();
      return v;
    });
  } catch {
    return null;
  }
}

/** What a dead letter holds, in every sink's dead-letter output (README, Dead letters). */
export interface DeadLetterValue {
  connector: string;
  db: string;
  table: string;
  /** The key as JSON text, when known. */
  key: string | null;
  position: { file: string; pos: number; gtid: string | null; row: number; snapshot: boolean };
  reason: DeadLetterReason;
  error: string;
  /** The row as JSON text, when there is one. */
  row: string | null;
  tsMs: number;
}

export function deadLetterJson(v: DeadLetterValue): string {
  return JSON.stringify({
    connector: v.connector,
    db: v.db,
    table: v.table,
    key: v.key === null ? null : JSON.parse(v.key),
    position: v.position,
    reason: v.reason,
    error: v.error,
    row: v.row === null ? null : JSON.parse(v.row),
    ts_ms: v.tsMs,
  });
}
