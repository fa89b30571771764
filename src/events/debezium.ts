import type { ChangeEvent, OutputRecord } from './event.js';

const VERSION = '0.1.0';

export interface EnvelopeOptions {
  /** Connector name: the topic prefix and `source.name`. */
  name: string;
  /** Emit a tombstone (value null) after each delete, for log compaction. */
  tombstones: boolean;
}

/**
 * Debezium's JSON envelope (ARCHITECTURE §5), so Flink's `debezium-json` format, Kafka Connect
 * sinks and existing Debezium consumers read tidemark's output unchanged.
 */
export class DebeziumEncoder {
  constructor(private readonly opts: EnvelopeOptions) {}

  topic(db: string, table: string): string {
    return `${this.opts.name}.${db}.${table}`;
  }

  encode(e: ChangeEvent, out: OutputRecord[]): void {
    const topic = this.topic(e.db, e.table);
    out.push({
      topic,
      key: e.key,
      value: {
        before: e.before,
        after: e.after,
        source: {
          version: VERSION,
          connector: 'mysql',
          name: this.opts.name,
          ts_ms: e.source.tsMs,
          snapshot: e.source.snapshot,
          db: e.db,
          table: e.table,
          server_id: e.source.serverId,
          gtid: e.source.gtid,
          file: e.source.file,
          pos: e.source.pos,
          row: e.source.row,
        },
        op: e.op,
        ts_ms: Date.now(),
      },
    });
    if (e.op === 'd' && this.opts.tombstones) out.push({ topic, key: e.key, value: null });
  }
}
