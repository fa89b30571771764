/**
 * The one owner of the captured tables' state: which tables, on which key, with which columns, and the
 * compiled encoders and key order that go with those columns. The initial snapshot, snapshots while
 * streaming and the stream all ask it; DDL changes it here and nowhere else.
 */
import type { Connection } from 'mysql2/promise';
import type { CheckpointStore, SchemaVersion } from '../checkpoint/store.js';
import { type Config, matchTables } from '../config/load.js';
import { SourceError } from '../errors.js';
import { keyColumnsOf } from '../source/chunker.js';
import type { DdlChange, TableRef } from '../source/ddl.js';
import { KeyOrder } from '../source/key-order.js';
import { comparePositions, type Position } from '../source/position.js';
import { chunkKeyProblem, loadTableSchemas, type TableSchema, uniqueIndexes } from '../source/schema.js';
import { applyAlter, createdSchema, type SchemaContext, UnappliedDdl } from '../source/schema-change.js';
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
  /** Encoders per column version: a version's are built once, and old ones stay valid for whoever holds them. */
  private readonly codecs = new WeakMap<TableSchema, SnapshotTable>();
  private readonly snapshotSchemas = new Map<string, TableSchema>();
  /** Tables whose version was read from the server at this position, ahead of the stream (renamed in while it was behind). */
  private readonly schemaFrom = new Map<string, Position>();

  /** `conn` answers the schema and sort-weight queries of a long run: a pool, so a lost connection is replaced. */
  constructor(
    private readonly conn: Connection,
    tables: CapturedTable[],
    private readonly config: Config,
    private readonly context: SchemaContext,
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

  /** The encoders of the table's columns as the stream has them (the version in force where it is). */
  codec(t: CapturedTable): Promise<SnapshotTable> {
    return this.codecOf(t.schema, t.chunkKey);
  }

  /** The encoders for chunk reads: the server's columns now, which run ahead of the stream's after an ALTER. */
  snapshotCodec(t: CapturedTable): Promise<SnapshotTable> {
    return this.codecOf(this.snapshotSchemas.get(t.name) ?? t.schema, t.chunkKey);
  }

  /**
   * After a chunk's SELECT: whether the server's columns still are those it was read with. A DDL statement
   * that ran meanwhile changes them; the chunk is then read again with the new ones (ARCHITECTURE §3,
   * ALTER during a snapshot), while the stream keeps its own version until it reaches the statement.
   */
  async snapshotSchemaChanged(t: CapturedTable, readWith: SnapshotTable): Promise<boolean> {
    const now = (await loadTableSchemas(this.conn, t.schema.db, [t.schema.table])).get(t.schema.table);
    if (!now || sameColumns(now, readWith.schema)) return false;
    this.snapshotSchemas.set(t.name, now);
    return true;
  }

  private async codecOf(schema: TableSchema, chunkKey: string[]): Promise<SnapshotTable> {
    let codec = this.codecs.get(schema);
    if (!codec) {
      const keyColumns = keyColumnsOf(schema, chunkKey);
      codec = snapshotTable(schema, keyColumns, await KeyOrder.create(this.conn, keyColumns));
      this.codecs.set(schema, codec);
    }
    return codec;
  }

  /**
   * Takes each table's version from the schema history, where a restart resumes; a table without history
   * gets its first version from the server (as read at start), in force from before the checkpoint began.
   */
  adoptHistory(store: CheckpointStore): void {
    const history = store.schemaHistory();
    for (const t of this.tables) {
      const last = history.get(t.name)?.at(-1);
      if (last?.schema) t.schema = last.schema;
      else store.addSchemaVersion({ table: t.name, from: null, schema: t.schema, ddl: null });
    }
  }

  /**
   * What a DDL statement at `at` does to the captured tables: new column versions (to commit with it), events
   * for the output, and tables that start or stop being captured. `caughtUp` tells whether the stream is at the
   * server's head, where the server's own definitions are the ones at `at`.
   */
  async applyDdl(change: DdlChange, sql: string, at: Position, serverPosition: () => Promise<Position>): Promise<DdlOutcome> {
    const caughtUp = async () => comparePositions(await serverPosition(), at) <= 0;
    const out: DdlOutcome = { versions: [], changed: [], dropped: [], created: [], keyChanged: [] };
    const version = (table: string, schema: TableSchema | null) => out.versions.push({ table, from: at, schema, ddl: sql });
    switch (change.kind) {
      case 'alter': {
        const t = this.byName.get(tableName(change.table));
        if (!t || this.alreadyIn(t, at)) break;
        const schema = applyAlter(t.schema, change.ops, this.context);
        const keyChanged = schema.primaryKey.join('\0') !== t.schema.primaryKey.join('\0') && !this.config.snapshot.chunkKey[t.name];
        if (change.renameTo) {
          this.renamed(t, change.renameTo, schema, out, version);
          break;
        }
        this.setSchema(t, schema);
        version(t.name, schema);
        out.changed.push(t);
        if (keyChanged) {
          t.chunkKey = schema.primaryKey;
          out.keyChanged.push(t);
        }
        break;
      }
      case 'create': {
        const name = tableName(change.table);
        if (this.byName.has(name) || !this.captures(change.table)) break;
        const schema = change.like ? this.likeSchema(change.table, change.like) : await this.createdSchema(change);
        if (!schema) throw new UnappliedDdl(`${sql} copies ${tableName(change.like!)}, whose columns tidemark does not know`);
        const t = this.capture(schema);
        version(t.name, schema);
        out.created.push({ table: t, existingRows: false });
        break;
      }
      case 'drop':
        for (const ref of change.tables) {
          const t = this.byName.get(tableName(ref));
          if (!t) continue;
          this.byName.delete(t.name);
          version(t.name, null);
          out.dropped.push(t);
        }
        break;
      case 'rename':
        for (const [from, to] of change.pairs) {
          const t = this.byName.get(tableName(from));
          if (t) this.renamed(t, to, t.schema, out, version);
          else if (this.captures(to)) {
            // A table renamed into the captured set arrives with its rows: it is snapshotted like a table added to the
            // config. Its columns before now are nowhere to be read, so it takes the server's, which already hold any
            // ALTER between here and now: those statements are passed over, and its changes up to its chunks' high
            // watermarks are left to the snapshot (the hand-off filter drops them).
            const now = await serverPosition();
            const schema = (await loadTableSchemas(this.conn, to.db, [to.table])).get(to.table);
            if (!schema) throw new UnappliedDdl(`${sql} brings ${tableName(to)} into the captured tables, but the table is gone from the server`);
            const added = this.capture(schema);
            if (comparePositions(now, at) > 0) this.schemaFrom.set(added.name, now);
            version(added.name, schema);
            out.created.push({ table: added, existingRows: true });
          }
        }
        break;
      case 'unparsed': {
        const touched = this.tables.filter((t) => change.mentions(t.schema.db, t.schema.table));
        if (touched.length === 0) break;
        // The server's definitions are the ones at this statement only while nothing has run after it.
        if (!(await caughtUp())) {
          throw new UnappliedDdl(
            `tidemark cannot read the DDL statement ${JSON.stringify(sql.slice(0, 300))} (${change.error}), which may change ${touched.map((t) => t.name).join(', ')}, ` +
              'and the stream is behind it, so the server cannot say what the columns were there',
          );
        }
        for (const t of touched) {
          const schema = (await loadTableSchemas(this.conn, t.schema.db, [t.schema.table])).get(t.schema.table);
          if (!schema) continue;
          this.setSchema(t, schema);
          version(t.name, schema);
          out.changed.push(t);
        }
        break;
      }
      case 'truncate':
      case 'none':
        break;
    }
    return out;
  }

  /** Whether the table's version was read from the server at a position past `at`, so a statement at `at` is already in it. */
  private alreadyIn(t: CapturedTable, at: Position): boolean {
    const from = this.schemaFrom.get(t.name);
    if (from && comparePositions(at, from) <= 0) return true;
    this.schemaFrom.delete(t.name);
    return false;
  }

  /**
   * Whether the table's version at `at` is the one its row images there must have: not while its version was read
   * from the server ahead of the stream (a table renamed in while the stream was behind).
   */
  followsRowImages(t: CapturedTable, at: Position): boolean {
    const from = this.schemaFrom.get(t.name);
    return !from || comparePositions(at, from) > 0;
  }

  /** Whether `source.tables` selects a table. */
  captures(ref: TableRef): boolean {
    return matchTables(this.config.source.tables, [ref]).length > 0;
  }

  private setSchema(t: CapturedTable, schema: TableSchema): void {
    t.schema = schema;
    this.snapshotSchemas.delete(t.name);
  }

  private renamed(t: CapturedTable, to: TableRef, schema: TableSchema, out: DdlOutcome, version: (table: string, schema: TableSchema | null) => void): void {
    this.byName.delete(t.name);
    version(t.name, null);
    out.dropped.push(t);
    if (!this.captures(to)) return;
    // Renamed within the captured set: captured on under the new name, and snapshotted there, so a consumer of the
    // new name's topic holds every row (the old topic keeps its rows and gets a schema change saying it went).
    const moved = this.capture({ ...schema, db: to.db, table: to.table }, t.chunkKey);
    version(moved.name, moved.schema);
    out.created.push({ table: moved, existingRows: true, renamedFrom: t.name });
  }

  private capture(schema: TableSchema, chunkKey = this.config.snapshot.chunkKey[tableName(schema)] ?? schema.primaryKey): CapturedTable {
    if (chunkKey.length === 0) {
      throw new UnappliedDdl(`${tableName(schema)} has no primary key: set snapshot.chunkKey for it, or leave it out of source.tables`);
    }
    const t: CapturedTable = { name: tableName(schema), schema, chunkKey };
    this.byName.set(t.name, t);
    return t;
  }

  private likeSchema(table: TableRef, like: TableRef): TableSchema | undefined {
    const source = this.byName.get(tableName(like));
    return source ? { ...source.schema, db: table.db, table: table.table } : undefined;
  }

  private async createdSchema(change: Extract<DdlChange, { kind: 'create' }>): Promise<TableSchema> {
    const { db, table } = change.table;
    const { defaultCollation } = this.context.charsets;
    let collation = change.collation ?? (change.charset ? defaultCollation.get(change.charset) : undefined);
    if (collation === undefined) {
      const [rows] = await this.conn.query('SELECT DEFAULT_COLLATION_NAME AS c FROM INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME = ?', [db]);
      collation = (rows as { c: string }[])[0]?.c.toLowerCase();
    }
    return createdSchema(db, table, change.columns, change.primaryKey, collation ?? null, this.context);
  }
}

/** What a DDL statement did to the captured tables (TableRegistry.applyDdl). */
export interface DdlOutcome {
  versions: SchemaVersion[];
  /** Captured tables whose columns changed. */
  changed: CapturedTable[];
  /** No longer captured: dropped, or renamed (away, or to the name in `created`). */
  dropped: CapturedTable[];
  /** Captured from now on; `existingRows`: it came with rows (renamed in), which a snapshot must read. */
  created: { table: CapturedTable; existingRows: boolean; renamedFrom?: string }[];
  /** Whose primary key (the chunk key) changed. */
  keyChanged: CapturedTable[];
}

/** Whether two versions describe the same columns for the encoders. */
export function sameColumns(a: TableSchema, b: TableSchema): boolean {
  return JSON.stringify([a.columns, a.primaryKey]) === JSON.stringify([b.columns, b.primaryKey]);
}

export async function checkChunkKey(conn: Connection, schema: TableSchema, key: string[]): Promise<void> {
  const name = tableName(schema);
  const problem = chunkKeyProblem(schema, key, (await uniqueIndexes(conn, schema.db, [schema.table])).get(schema.table) ?? []);
  if (problem) throw new SourceError(`snapshot.chunkKey.${name}: ${name} ${problem}; choose NOT NULL columns that form a unique index, or create one`);
}
