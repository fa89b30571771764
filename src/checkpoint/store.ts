import Database from 'better-sqlite3';
import { CheckpointError, fileFailure } from '../errors.js';
import { touchPrivate } from '../files.js';
import { comparePositions, type Position } from '../source/position.js';
import type { TableSchema } from '../source/schema.js';

export type TableState = 'pending' | 'snapshotting' | 'streaming';

export interface TableProgress {
  /** `db.table` */
  name: string;
  state: TableState;
  chunkKey: string[];
  /** Known once the splitter has produced the last chunk (the one without an upper bound). */
  chunksTotal: number | null;
  rowsEstimate: number | null;
  snapshotRows: number;
  /** A snapshot taken again while streaming: the sink already holds this table's rows. */
  again: boolean;
}

/** A key tuple in canonical JSON values, one per chunk-key column; null bounds are open ends. */
export type KeyTuple = unknown[];

export interface ChunkRecord {
  table: string;
  idx: number;
  lo: KeyTuple | null;
  hi: KeyTuple | null;
  status: 'pending' | 'done';
  lw: Position | null;
  hw: Position | null;
  rows: number | null;
}

export interface SourceIdentity {
  flavour: 'mysql' | 'mariadb';
  /** `@@server_uuid` on MySQL, `@@server_id` on MariaDB (which has no server UUID). */
  serverId: string;
  version: string;
}

/** What one sink commit changes in the checkpoint; applied only once the sink has committed. */
export interface CheckpointUpdate {
  chunksDone?: { table: string; idx: number; lw: Position; hw: Position; rows: number }[];
  /** Resume position of the stream after this commit. */
  stream?: Position;
  /** Where a resumed stream starts reading, when before `stream` (an XA transaction prepared before it is still open); null: at `stream`. */
  restart?: Position | null;
  /**
   * Tables truncated at `at`: no chunk of theirs holds anything after it, so their chunks' high watermarks come
   * down to it, and a restart's hand-off filter lets every later change pass, as the running stream does.
   */
  truncates?: { table: string; at: Position }[];
  /** Dead letters this commit writes, per `db.table`. */
  deadLetters?: Record<string, number>;
  /** Column versions that DDL in this commit's transactions started. */
  schemaVersions?: SchemaVersion[];
  /** Commit time (source clock) of the last source transaction in this commit: how far behind the stream is. */
  sourceTsMs?: number;
  /** The source server, when it changed (a failover): recorded with the first position of its own. */
  source?: SourceIdentity;
}

/** One column version of a table, in force from `from` (null: from before the checkpoint began) on. */
export interface SchemaVersion {
  /** `db.table` */
  table: string;
  from: Position | null;
  /** null: the table was dropped (or renamed away) there. */
  schema: TableSchema | null;
  /** The statement that made this version; null for the one read from the server. */
  ddl: string | null;
}

export interface PendingCommit {
  seq: number;
  update: CheckpointUpdate;
  /** The sink's state once this commit is in (e.g. the jsonl file length); how a restart asks the sink. */
  sinkState: string;
}

const MIGRATIONS: string[] = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
   CREATE TABLE tables (
     name TEXT PRIMARY KEY, state TEXT NOT NULL, chunk_key TEXT NOT NULL,
     chunks_total INTEGER, rows_estimate INTEGER, snapshot_rows INTEGER NOT NULL DEFAULT 0);
   CREATE TABLE chunks (
     table_name TEXT NOT NULL, idx INTEGER NOT NULL, lo TEXT, hi TEXT, status TEXT NOT NULL,
     lw TEXT, hw TEXT, rows INTEGER, PRIMARY KEY (table_name, idx));
   CREATE TABLE commits (seq INTEGER PRIMARY KEY, update_json TEXT NOT NULL, sink_state TEXT NOT NULL, created_ms INTEGER NOT NULL);`,
  `CREATE TABLE snapshot_requests (table_name TEXT PRIMARY KEY, requested_ms INTEGER NOT NULL);
   ALTER TABLE tables ADD COLUMN again INTEGER NOT NULL DEFAULT 0;`,
  // Schema history (ARCHITECTURE §4): each column version of a captured table and the position it applies from.
  `CREATE TABLE schema_history (
     table_name TEXT NOT NULL, seq INTEGER NOT NULL, from_pos TEXT, schema_json TEXT, ddl TEXT,
     PRIMARY KEY (table_name, seq));`,
];

/**
 * A failure of the checkpoint's storage (a full disk, an I/O error) as a CheckpointError naming the file; any other
 * error is returned as it is. SQLite has rolled the transaction back: the checkpoint still holds what it held.
 */
function storageError(path: string, err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !(code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR'))) return err;
  return new CheckpointError(fileFailure(`writing the checkpoint ${path}`, err), { cause: err });
}

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(v: string | null): T | null => (v === null ? null : (JSON.parse(v) as T));

/**
 * The durable record of progress (ARCHITECTURE §4). Every change is one SQLite transaction with
 * synchronous=FULL, so a kill -9 or power loss leaves either the old or the new state.
 * SQLite is the truth for everything but what the sink holds; a commit is recorded as pending
 * before the sink commits and applied after, and a restart asks the sink about a pending one.
 */
export class CheckpointStore {
  private readonly statements = new Map<string, Database.Statement>();

  private constructor(
    private readonly db: Database.Database,
    private readonly path: string,
  ) {}

  static open(path: string): CheckpointStore {
    let db: Database.Database | undefined;
    try {
      touchPrivate(path);
      db = new Database(path);
      // Set first: the other pragmas may already need to wait for another process (`tidemark snapshot`, `status`).
      db.pragma('busy_timeout = 10000');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      const version = db.pragma('user_version', { simple: true }) as number;
      if (version > MIGRATIONS.length) {
        throw new CheckpointError(
          `checkpoint ${path} was written by a newer tidemark (schema ${version}); upgrade tidemark or point checkpoint.path elsewhere`,
        );
      }
      for (let v = version; v < MIGRATIONS.length; v++) {
        db.transaction(() => {
          db!.exec(MIGRATIONS[v]!);
          db!.pragma(`user_version = ${v + 1}`);
        }).immediate();
      }
      return new CheckpointStore(db, path);
    } catch (err) {
      db?.close();
      throw storageError(path, err);
    }
  }

  close(): void {
    this.db.close();
  }

  /**
   * Runs `fn` as one write transaction, taking the write lock at once. A write the storage refuses (a full disk)
   * is a CheckpointError naming the checkpoint; SQLite has rolled the transaction back.
   */
  private write<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn).immediate();
    } catch (err) {
      throw storageError(this.path, err);
    }
  }

  /** A prepared statement, compiled once per store: the stream asks for its position for every transaction. */
  private sql(text: string): Database.Statement {
    let statement = this.statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.statements.set(text, statement);
    }
    return statement;
  }

  private meta(key: string): string | undefined {
    const row = this.sql('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  private setMeta(key: string, value: string | null): void {
    if (value === null) this.sql('DELETE FROM meta WHERE key = ?').run(key);
    else this.sql('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  sourceIdentity(): SourceIdentity | undefined {
    return parse<SourceIdentity>(this.meta('source') ?? null) ?? undefined;
  }

  setSourceIdentity(id: SourceIdentity): void {
    this.write(() => this.setMeta('source', JSON.stringify(id)));
  }

  streamPosition(): Position | undefined {
    return parse<Position>(this.meta('stream') ?? null) ?? undefined;
  }

  /** Sets where streaming starts when no commit has set it yet (after a snapshot, or for mode never). */
  setStreamStart(p: Position): void {
    this.write(() => {
      this.setMeta('stream', JSON.stringify(p));
      this.setMeta('restart', null);
    });
  }

  /** Where a resumed stream starts reading when that is before streamPosition(): see CheckpointUpdate.restart. */
  streamRestart(): Position | undefined {
    return parse<Position>(this.meta('restart') ?? null) ?? undefined;
  }

  sinkState(): string | undefined {
    return this.meta('sink_state');
  }

  lastCommittedSeq(): number {
    return Number(this.meta('last_seq') ?? 0);
  }

  tables(): TableProgress[] {
    const rows = this.sql('SELECT * FROM tables ORDER BY name').all() as {
      name: string;
      state: TableState;
      chunk_key: string;
      chunks_total: number | null;
      rows_estimate: number | null;
      snapshot_rows: number;
      again: number;
    }[];
    return rows.map((r) => ({
      name: r.name,
      state: r.state,
      chunkKey: JSON.parse(r.chunk_key) as string[],
      chunksTotal: r.chunks_total,
      rowsEstimate: r.rows_estimate,
      snapshotRows: r.snapshot_rows,
      again: r.again === 1,
    }));
  }

  addTable(name: string, state: TableState, chunkKey: string[], rowsEstimate: number | null): void {
    this.write(() =>
      this.sql('INSERT INTO tables (name, state, chunk_key, rows_estimate) VALUES (?, ?, ?, ?)').run(name, state, JSON.stringify(chunkKey), rowsEstimate),
    );
  }

  chunks(table: string): ChunkRecord[] {
    const rows = this.sql('SELECT * FROM chunks WHERE table_name = ? ORDER BY idx').all(table) as {
      table_name: string;
      idx: number;
      lo: string | null;
      hi: string | null;
      status: 'pending' | 'done';
      lw: string | null;
      hw: string | null;
      rows: number | null;
    }[];
    return rows.map((r) => ({
      table: r.table_name,
      idx: r.idx,
      lo: parse<KeyTuple>(r.lo),
      hi: parse<KeyTuple>(r.hi),
      status: r.status,
      lw: parse<Position>(r.lw),
      hw: parse<Position>(r.hw),
      rows: r.rows,
    }));
  }

  doneChunks(table: string): number {
    return (this.sql("SELECT COUNT(*) AS n FROM chunks WHERE table_name = ? AND status = 'done'").get(table) as { n: number }).n;
  }

  /** Records a newly split chunk; the last one (no upper bound) also fixes the table's chunk count. */
  addChunk(table: string, idx: number, lo: KeyTuple | null, hi: KeyTuple | null): void {
    this.write(() => {
      this.sql('INSERT INTO chunks (table_name, idx, lo, hi, status) VALUES (?, ?, ?, ?, ?)').run(table, idx, json(lo), json(hi), 'pending');
      if (hi === null) this.sql('UPDATE tables SET chunks_total = ? WHERE name = ?').run(idx + 1, table);
    });
  }

  pendingCommit(): PendingCommit | undefined {
    const row = this.sql('SELECT * FROM commits ORDER BY seq LIMIT 1').get() as { seq: number; update_json: string; sink_state: string } | undefined;
    return row && { seq: row.seq, update: JSON.parse(row.update_json) as CheckpointUpdate, sinkState: row.sink_state };
  }

  /** Step 1 of the commit protocol: remember what is about to be committed. */
  beginCommit(update: CheckpointUpdate, sinkState: string): number {
    if (this.pendingCommit()) throw new Error('a sink commit is already pending');
    const seq = this.lastCommittedSeq() + 1;
    this.write(() =>
      this.sql('INSERT INTO commits (seq, update_json, sink_state, created_ms) VALUES (?, ?, ?, ?)').run(seq, JSON.stringify(update), sinkState, Date.now()),
    );
    return seq;
  }

  /** Step 3: the sink holds the batch; apply its checkpoint update. */
  finishCommit(seq: number): void {
    this.write(() => {
      const pending = this.pendingCommit();
      if (!pending || pending.seq !== seq) throw new Error(`no pending commit ${seq}`);
      const { update } = pending;
      const markDone = this.sql('UPDATE chunks SET status = ?, lw = ?, hw = ?, rows = ? WHERE table_name = ? AND idx = ?');
      const addRows = this.sql('UPDATE tables SET snapshot_rows = snapshot_rows + ? WHERE name = ?');
      const finishTable = this.sql(
        `UPDATE tables SET state = 'streaming' WHERE name = ? AND chunks_total =
           (SELECT COUNT(*) FROM chunks WHERE table_name = ? AND status = 'done')`,
      );
      for (const c of update.chunksDone ?? []) {
        markDone.run('done', json(c.lw), json(c.hw), c.rows, c.table, c.idx);
        addRows.run(c.rows, c.table);
        finishTable.run(c.table, c.table);
      }
      const lowerHw = this.sql('UPDATE chunks SET hw = ? WHERE table_name = ? AND idx = ?');
      for (const t of update.truncates ?? []) {
        for (const c of this.chunks(t.table)) if (c.hw && comparePositions(c.hw, t.at) > 0) lowerHw.run(json(t.at), t.table, c.idx);
      }
      if (update.stream) {
        this.setMeta('stream', JSON.stringify(update.stream));
        this.setMeta('restart', update.restart ? JSON.stringify(update.restart) : null);
      }
      if (update.sourceTsMs !== undefined) this.setMeta('last_source_ts_ms', String(update.sourceTsMs));
      if (update.source) this.setMeta('source', JSON.stringify(update.source));
      for (const v of update.schemaVersions ?? []) this.insertSchemaVersion(v);
      if (update.deadLetters) {
        const counts = this.deadLetters();
        for (const [table, n] of Object.entries(update.deadLetters)) counts[table] = (counts[table] ?? 0) + n;
        this.setMeta('dead_letters', JSON.stringify(counts));
      }
      this.setMeta('sink_state', pending.sinkState);
      this.setMeta('last_seq', String(seq));
      this.setMeta('last_commit_ms', String(Date.now()));
      this.sql('DELETE FROM commits WHERE seq = ?').run(seq);
    });
  }

  /** The sink never received the pending commit: forget it, its output will be produced again. */
  discardPending(seq: number): void {
    this.write(() => this.sql('DELETE FROM commits WHERE seq = ?').run(seq));
  }

  /** Every table's column versions, oldest first. */
  schemaHistory(): Map<string, SchemaVersion[]> {
    const rows = this.sql('SELECT table_name, from_pos, schema_json, ddl FROM schema_history ORDER BY table_name, seq').all() as {
      table_name: string;
      from_pos: string | null;
      schema_json: string | null;
      ddl: string | null;
    }[];
    const out = new Map<string, SchemaVersion[]>();
    for (const r of rows) {
      const v: SchemaVersion = { table: r.table_name, from: parse<Position>(r.from_pos), schema: parse<TableSchema>(r.schema_json), ddl: r.ddl };
      out.set(r.table_name, [...(out.get(r.table_name) ?? []), v]);
    }
    return out;
  }

  /** A version recorded outside a sink commit: the first one of a table, read from the server. */
  addSchemaVersion(v: SchemaVersion): void {
    this.write(() => this.insertSchemaVersion(v));
  }

  /**
   * Drops versions no restart can need: those before the last version in force at `resumeAt`, where a resumed
   * stream starts reading (ARCHITECTURE §4: history is trimmed only below the committed position).
   */
  trimSchemaHistory(resumeAt: Position): void {
    this.write(() => {
      for (const [table, versions] of this.schemaHistory()) {
        let keepFrom = 0;
        versions.forEach((v, i) => {
          if (v.from === null || comparePositions(v.from, resumeAt) <= 0) keepFrom = i;
        });
        if (keepFrom > 0) {
          this.sql(
            'DELETE FROM schema_history WHERE table_name = ? AND seq < (SELECT seq FROM schema_history WHERE table_name = ? ORDER BY seq LIMIT 1 OFFSET ?)',
          ).run(table, table, keepFrom);
        }
      }
    });
  }

  private insertSchemaVersion(v: SchemaVersion): void {
    this.sql(
      'INSERT INTO schema_history (table_name, seq, from_pos, schema_json, ddl) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM schema_history WHERE table_name = ?), ?, ?, ?)',
    ).run(v.table, v.table, json(v.from), json(v.schema), v.ddl);
  }

  /** Dead letters committed so far, per `db.table`. */
  deadLetters(): Record<string, number> {
    return parse<Record<string, number>>(this.meta('dead_letters') ?? null) ?? {};
  }

  lastCommitMs(): number | undefined {
    const v = this.meta('last_commit_ms');
    return v === undefined ? undefined : Number(v);
  }

  /** Source commit time of the newest streamed transaction that is committed to the sink. */
  lastSourceTsMs(): number | undefined {
    const v = this.meta('last_source_ts_ms');
    return v === undefined ? undefined : Number(v);
  }

  /** Asks for a fresh snapshot of these tables (`tidemark snapshot`); a running sync polls for it. */
  requestSnapshot(tables: string[]): void {
    const add = this.sql('INSERT INTO snapshot_requests (table_name, requested_ms) VALUES (?, ?) ON CONFLICT(table_name) DO NOTHING');
    this.write(() => {
      for (const t of tables) add.run(t, Date.now());
    });
  }

  snapshotRequests(): string[] {
    return (this.sql('SELECT table_name FROM snapshot_requests ORDER BY requested_ms').all() as { table_name: string }[]).map((r) => r.table_name);
  }

  /**
   * Starts a table's snapshot over (a request, or a table new to the config): its old chunks are
   * forgotten and it is snapshotting again; the request, if any, is settled in the same step.
   */
  restartTableSnapshot(name: string, chunkKey: string[], rowsEstimate: number | null, again: boolean): void {
    this.write(() => {
      this.sql('DELETE FROM chunks WHERE table_name = ?').run(name);
      this.sql('DELETE FROM snapshot_requests WHERE table_name = ?').run(name);
      this.db
        .prepare(
          `INSERT INTO tables (name, state, chunk_key, rows_estimate, again) VALUES (?, 'snapshotting', ?, ?, ?)
           ON CONFLICT(name) DO UPDATE SET state = 'snapshotting', chunk_key = excluded.chunk_key,
             rows_estimate = excluded.rows_estimate, chunks_total = NULL, snapshot_rows = 0, again = excluded.again`,
        )
        .run(name, JSON.stringify(chunkKey), rowsEstimate, again ? 1 : 0);
    });
  }

  /**
   * Forgets snapshot and stream progress (for a re-snapshot after the binlog was purged), keeping
   * the commit sequence and sink state so the sink's recovery still lines up.
   */
  /** A table left out of the config: its progress goes, so a later return starts its snapshot afresh. */
  forgetTable(name: string): void {
    this.write(() => {
      this.sql('DELETE FROM chunks WHERE table_name = ?').run(name);
      this.sql('DELETE FROM snapshot_requests WHERE table_name = ?').run(name);
      this.sql('DELETE FROM tables WHERE name = ?').run(name);
    });
  }

  /**
   * Lets go of the done chunks' watermarks (binlog positions of the server they were read on), keeping the chunks:
   * for a failover, once the stream is past every high watermark and the hand-off filter needs none of them.
   */
  forgetChunkPositions(): void {
    this.write(() => this.sql('UPDATE chunks SET lw = NULL, hw = NULL').run());
  }

  forgetProgress(): void {
    this.write(() => {
      this.db.exec('DELETE FROM chunks; DELETE FROM tables;');
      this.setMeta('stream', null);
      this.setMeta('restart', null);
    });
  }

  /**
   * Whether another process has the checkpoint open. Every connection to a WAL database holds a
   * shared lock on the file for as long as it is open, so an exclusive lock is refused exactly while
   * some process (a running sync, or a status reading it) has it open. Taking the lock also folds
   * a leftover -wal into the file, which is about to be deleted anyway.
   */
  static inUse(path: string): boolean {
    const db = new Database(path, { fileMustExist: true, timeout: 2000 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.exec('BEGIN EXCLUSIVE');
      db.exec('COMMIT');
      return false;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_BUSY') return true;
      // No sync can have a damaged file open; resetting is the cure for one.
      if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') return false;
      throw err;
    } finally {
      db.close();
    }
  }

  /**
   * Opens an existing checkpoint for reading only (`tidemark status`): no migration, no pragma that
   * writes. WAL lets it read while a sync commits; SQLite may create an empty -wal/-shm beside a
   * checkpoint whose sync is stopped, which leaves the checkpoint itself unchanged.
   */
  static openReadOnly(path: string): CheckpointStore {
    const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 5000 });
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version !== MIGRATIONS.length) {
      db.close();
      throw new Error(
        version > MIGRATIONS.length
          ? `checkpoint ${path} was written by a newer tidemark (schema ${version}); upgrade tidemark`
          : `checkpoint ${path} has schema ${version}, this tidemark reads ${MIGRATIONS.length}; run tidemark sync once to upgrade it`,
      );
    }
    return new CheckpointStore(db, path);
  }

  /** Runs `fn` in one read transaction, so everything it reads is the same committed state even while sync commits. */
  consistentRead<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
