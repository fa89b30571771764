import { deadLetterJson } from './dead-letter.js';
import type { ChangeEvent, DeadLetter, EventSource, OutputRecord, RowEvent, SchemaChange } from './event.js';

const VERSION = '0.1.0';

export interface EnvelopeOptions {
  /** Connector name: the topic prefix and `source.name`. */
  name: string;
  /** Emit a tombstone (value null) after each delete, for log compaction. */
  tombstones: boolean;
  /** Emit schema change events on the topic `<name>`. */
  schemaChanges: boolean;
}

/** Text shared by every record of one table, built once. */
interface TablePieces {
  db: string;
  table: string;
  topic: string;
  /** `,"db":…,"table":…` of the envelope's source block. */
  names: string;
}

const json = JSON.stringify;

/**
 * Debezium's JSON envelope (ARCHITECTURE §5), so Flink's `debezium-json` format, Kafka Connect
 * sinks and existing Debezium consumers read tidemark's output unchanged. The text is assembled
 * around the events' JSON row images from pieces built once per table and once per source
 * transaction or chunk: the same JSON as stringifying the envelope object (same fields, same
 * order) without building it.
 */
export class DebeziumEncoder {
  private readonly pieces = new Map<string, TablePieces>();
  private last: TablePieces | undefined;
  private readonly sourceHead: string;
  private lastSource: EventSource | undefined;
  private lastSourceTable: TablePieces | undefined;
  /** The source block of the last event's transaction or chunk, up to `"row":`. */
  private sourceText = '';

  constructor(private readonly opts: EnvelopeOptions) {
    this.sourceHead = `,"source":{"version":${json(VERSION)},"connector":"mysql","name":${json(opts.name)},"ts_ms":`;
  }

  topic(db: string, table: string): string {
    return `${this.opts.name}.${db}.${table}`;
  }

  /** Consecutive events nearly always share a table, so the last pieces are tried before the map. */
  private piecesFor(e: RowEvent): TablePieces {
    const last = this.last;
    if (last && last.db === e.db && last.table === e.table) return last;
    const id = `${e.db}\u0000${e.table}`;
    let p = this.pieces.get(id);
    if (!p) {
      p = { db: e.db, table: e.table, topic: this.topic(e.db, e.table), names: `,"db":${json(e.db)},"table":${json(e.table)}` };
      this.pieces.set(id, p);
    }
    this.last = p;
    return p;
  }

  /** `nowMs` is the envelope's `ts_ms`, the time tidemark processed the batch. */
  encode(e: ChangeEvent, out: OutputRecord[], nowMs: number): void {
    if (e.op === 'dead') {
      out.push(this.deadLetter(e, nowMs));
      return;
    }
    if (e.op === 'schema') {
      if (this.opts.schemaChanges) out.push(this.schemaChange(e, nowMs));
      return;
    }
    const p = this.piecesFor(e);
    const s = e.source;
    if (s !== this.lastSource || p !== this.lastSourceTable) {
      this.lastSource = s;
      this.lastSourceTable = p;
      this.sourceText =
        `${this.sourceHead}${s.tsMs},"snapshot":${s.snapshot}${p.names},"server_id":${s.serverId}` +
        `,"gtid":${s.gtid === null ? 'null' : json(s.gtid)},"file":${json(s.file)},"pos":${s.pos},"row":`;
    }
    const value = `{"before":${e.before ?? 'null'},"after":${e.after ?? 'null'}${this.sourceText}${e.row}},"op":"${e.op}","ts_ms":${nowMs}}`;
    out.push({ topic: p.topic, key: e.key, value });
    if (e.op === 'd' && this.opts.tombstones) out.push({ topic: p.topic, key: e.key, value: null });
  }

  /** Dead letters are rare: built as an object, keyed by the row's key (or its table when the key is unknown). */
  private deadLetter(e: DeadLetter, nowMs: number): OutputRecord {
    const s = e.source;
    const value = deadLetterJson({
      connector: this.opts.name,
      db: e.db,
      table: e.table,
      key: e.key,
      position: { file: s.file, pos: s.pos, gtid: s.gtid, row: e.row, snapshot: s.snapshot },
      reason: e.reason,
      error: e.error,
      row: e.raw,
      tsMs: nowMs,
    });
    return { topic: this.deadLetterTopic, key: e.key ?? json({ db: e.db, table: e.table }), value, dead: true };
  }

  /**
   * A schema change on the connector's own topic, keyed by database, in the shape of Debezium's schema change
   * events (`databaseName`, `ddl`, `tableChanges` with the table's columns after the statement).
   */
  private schemaChange(e: SchemaChange, nowMs: number): OutputRecord {
    const s = e.source;
    const table = e.schema && {
      primaryKeyColumnNames: e.schema.primaryKey,
      columns: e.schema.columns.map((c, i) => ({
        name: c.name,
        typeName: c.dataType.toUpperCase(),
        typeExpression: c.columnType,
        charsetName: c.charset,
        collationName: c.collation,
        length: c.dataType === 'decimal' || c.dataType === 'bit' ? c.numericPrecision : null,
        scale: c.dataType === 'decimal' ? c.numericScale : c.datetimePrecision,
        position: i + 1,
        optional: c.nullable,
        unsigned: c.unsigned,
      })),
    };
    const value = {
      source: {
        version: VERSION,
        connector: 'mysql',
        name: this.opts.name,
        ts_ms: s.tsMs,
        db: e.db,
        table: e.table,
        server_id: s.serverId,
        gtid: s.gtid,
        file: s.file,
        pos: s.pos,
      },
      ts_ms: nowMs,
      databaseName: e.db,
      ddl: e.ddl,
      tableChanges: [{ type: e.kind.toUpperCase(), id: `"${e.db}"."${e.table}"`, table }],
    };
    return { topic: this.opts.name, key: json({ databaseName: e.db }), value: json(value) };
  }

  /** Where dead letters go: `<name>.tidemark.dead`. */
  get deadLetterTopic(): string {
    return `${this.opts.name}.tidemark.dead`;
  }
}
