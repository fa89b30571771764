import type { TableSchema } from '../source/schema.js';

/**
 * A captured change (ARCHITECTURE §5). Key and row images are already canonical JSON text: every
 * sink writes JSON, and writing it straight from the reader's row (RowWriter) is what keeps the
 * snapshot fast.
 */
export type ChangeEvent = RowEvent | DeadLetter | SchemaChange;

/**
 * A DDL statement that changed a captured table, with the table's columns after it (null: dropped, or renamed
 * away), in the same sink commit as the changes around it (ARCHITECTURE §5, schema history).
 */
export interface SchemaChange {
  op: 'schema';
  db: string;
  table: string;
  kind: 'create' | 'alter' | 'drop';
  ddl: string;
  schema: TableSchema | null;
  row: number;
  source: EventSource;
}

export interface RowEvent {
  op: 'c' | 'u' | 'd' | 'r' | 't';
  db: string;
  table: string;
  /** Primary-key columns and values as a JSON object; `{}` for a truncate. */
  key: string;
  before: string | null;
  after: string | null;
  /** Index of the row within its source transaction (or within its snapshot chunk). */
  row: number;
  /** Shared by every event of one transaction or chunk. */
  source: EventSource;
}

/** `refused`: a database sink's target refused the row, or could not follow the DDL statement. */
export type DeadLetterReason = 'decode' | 'too-large' | 'refused';

/**
 * A row tidemark could not encode, or a record a sink refuses for itself alone, written to the dead-letter
 * output in the same sink commit as the changes around it (errors.mode: dead-letter; ARCHITECTURE §5).
 */
export interface DeadLetter {
  op: 'dead';
  db: string;
  table: string;
  /** The key as JSON, when it could be encoded. */
  key: string | null;
  reason: DeadLetterReason;
  error: string;
  /** The row as read (binary values as base64), as JSON, when there is one. */
  raw: string | null;
  row: number;
  source: EventSource;
}

export interface EventSource {
  file: string;
  pos: number;
  gtid: string | null;
  serverId: number;
  /** Commit time of the source transaction, or the read time for a snapshot row. */
  tsMs: number;
  snapshot: boolean;
}

/**
 * What a sink receives, already serialised (every sink writes JSON, and building the text once,
 * from cached pieces, is the snapshot's hottest path): the key as JSON, the value as JSON or null
 * for a tombstone.
 */
export interface OutputRecord {
  topic: string;
  key: string;
  value: string | null;
  /** A dead letter: sinks write it to their dead-letter output. */
  dead?: true;
}
