/** A captured change (ARCHITECTURE §5), values already in canonical JSON form. */
export interface ChangeEvent {
  op: 'c' | 'u' | 'd' | 'r' | 't';
  db: string;
  table: string;
  /** Primary-key columns and values; empty for a truncate. */
  key: Record<string, unknown>;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  source: EventSource;
}

export interface EventSource {
  file: string;
  pos: number;
  /** Index of the row within its binlog event (or within its snapshot chunk). */
  row: number;
  gtid: string | null;
  serverId: number;
  /** Commit time of the source transaction, or the read time for a snapshot row. */
  tsMs: number;
  snapshot: boolean;
  txId: string | null;
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
}
