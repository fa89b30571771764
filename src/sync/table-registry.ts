/**
 * The one owner of the captured tables' state: which tables, on which key, with which columns, and the
 * compiled encoders and key order that go with those columns. The initial snapshot, snapshots while
 * streaming and the stream all ask it; DDL changes it here and nowhere else.
 */
import type { Connection } from 'mysql2/promise';
import { type Config, matchTables } from '../config/load.js';
import { SourceError } from '../errors.js';
import { keyColumnsOf } from '../source/chunker.js';
import { KeyOrder } from '../source/key-order.js';
import { chunkKeyProblem, loadTableSchemas, type TableSchema, uniqueIndexes } from '../source/schema.js';
import { listTables } from '../source/server.js';
import { type SnapshotTable, snapshotTable } from '../source/snapshot.js';

export const tableName = (s: { db: string; table: string }) => `${s.db}.${s.table}`;

export interface CapturedTable {
  name: string;
  /** Replaced when DDL changes the table. */
  schema: TableSchema;
  chunkKey: string[];
}

/** A captured table with its encoders, ready for rows of either reader. */
export interface ResolvedTable {
  table: CapturedTable;
  codec: SnapshotTable;
}

export class TableRegistry {
  private readonly byName: Map<string, CapturedTable>;
  private readonly codecs = new Map<string, SnapshotTable>();

  /** `conn` answers the schema and sort-weight queries of a long run: a pool, so a lost connection is replaced. */
  constructor(
    private readonly conn: Connection,
    tables: CapturedTable[],
  ) {
    this.byName = new Map(tables.map((t) => [t.name, t]));
  }

  /** Finds the tables `source.tables` matches, with their columns and chunk keys; refuses what cannot be captured. */
  static async load(conn: Connection, config: Config): Promise<CapturedTable[]> {
    const matched = matchTables(config.source.tables, await listTables(conn));
    if (matched.length === 0) {
      throw new SourceError(`source.tables (${config.source.tables.join(', ')}) matches no table on the source. Check the database and table names.`);
    }
    const byDb = new Map<string, string[]>();
    for (const t of matched) byDb.set(t.db, [...(byDb.get(t.db) ?? []), t.table]);
    const out: CapturedTable[] = [];
    for (const [db, names] of byDb) {
      const schemas = await loadTableSchemas(conn, db, names);
      for (const schema of schemas.values()) {
        const name = tableName(schema);
        const chunkKey = config.snapshot.chunkKey[name] ?? schema.primaryKey;
        if (chunkKey.length === 0) {
          throw new SourceError(
            `table ${name} has no primary key, so tidemark cannot chunk it or identify its rows. ` +
              `Add a primary key, or set snapshot.chunkKey: { ${name}: [<unique NOT NULL columns>] }, or leave it out of source.tables.`,
          );
        }
        if (config.snapshot.chunkKey[name]) await checkChunkKey(conn, schema, chunkKey);
        out.push({ name, schema, chunkKey });
      }
    }
    return out;
  }

  get tables(): CapturedTable[] {
    return [...this.byName.values()];
  }

  get(name: string): CapturedTable | undefined {
    return this.byName.get(name);
  }

  /** The table and its encoders; built once per table and column list, not per row. */
  async resolve(name: string): Promise<ResolvedTable | undefined> {
    const table = this.byName.get(name);
    if (!table) return undefined;
    return { table, codec: await this.codec(table) };
  }

  async codec(t: CapturedTable): Promise<SnapshotTable> {
    let codec = this.codecs.get(t.name);
    if (!codec) {
      const keyColumns = keyColumnsOf(t.schema, t.chunkKey);
      codec = snapshotTable(t.schema, keyColumns, await KeyOrder.create(this.conn, keyColumns));
      this.codecs.set(t.name, codec);
    }
    return codec;
  }

  /** Captured tables a DDL statement may have changed: named in it, in its default database or qualified. */
  touchedBy(ddl: { db: string; sql: string }): CapturedTable[] {
    return this.tables.filter((t) => {
      if (t.schema.db !== ddl.db && !ddl.sql.includes(t.schema.db)) return false;
      return new RegExp(`\\b${t.schema.table.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(ddl.sql);
    });
  }

  /**
   * Re-reads a table's columns after DDL on it, so later row images are encoded with the new column list.
   * This reads the schema as it is now, which matches the binlog only while the stream is close to the head
   * (no schema history yet).
   */
  async reloadSchema(t: CapturedTable): Promise<void> {
    const schema = (await loadTableSchemas(this.conn, t.schema.db, [t.schema.table])).get(t.schema.table);
    if (!schema) return;
    t.schema = schema;
    this.codecs.delete(t.name);
  }
}

export async function checkChunkKey(conn: Connection, schema: TableSchema, key: string[]): Promise<void> {
  const name = tableName(schema);
  const problem = chunkKeyProblem(schema, key, (await uniqueIndexes(conn, schema.db, [schema.table])).get(schema.table) ?? []);
  if (problem) throw new SourceError(`snapshot.chunkKey.${name}: ${name} ${problem}; choose NOT NULL columns that form a unique index, or create one`);
}
