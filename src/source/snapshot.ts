import type { Connection as CoreConnection } from 'mysql2';
import type { Connection } from 'mysql2/promise';
import type { ChunkRecord, KeyTuple } from '../checkpoint/store.js';
import { type FailedRow, keyOrNull } from '../events/dead-letter.js';
import { encodeValue, makeRowWriter, type RowOrigin, type RowWriter, snapshotSelectList } from '../events/values.js';
import { BinlogReader, type BinlogSourceSettings, type BinlogTransaction, changeCount, changeParts, type RowChange, releaseChanges } from './binlog.js';
import { chunkWhere } from './chunker.js';
import type { KeyOrder } from './key-order.js';
import { comparePositions, type Position } from './position.js';
import type { ColumnInfo, TableSchema } from './schema.js';
import { currentPosition, quoteId } from './server.js';

/** A captured table with its compiled JSON writers, one per reader (snapshot SELECT, binlog). */
export interface SnapshotTable {
  schema: TableSchema;
  keyColumns: ColumnInfo[];
  order: KeyOrder;
  /** What the chunk SELECT reads: the rows the snapshot writers expect. */
  selectList: string;
  snapshotRow: RowWriter;
  snapshotKey: RowWriter;
  binlogRow: RowWriter;
  binlogKey: RowWriter;
}

export function snapshotTable(schema: TableSchema, keyColumns: ColumnInfo[], order: KeyOrder): SnapshotTable {
  return {
    schema,
    keyColumns,
    order,
    selectList: snapshotSelectList(schema.columns),
    snapshotRow: makeRowWriter(schema.columns, 'snapshot'),
    snapshotKey: makeRowWriter(keyColumns, 'snapshot'),
    binlogRow: makeRowWriter(schema.columns, 'binlog'),
    binlogKey: makeRowWriter(keyColumns, 'binlog'),
  };
}

export interface ChunkRows {
  lw: Position;
  hw: Position;
  /**
   * The chunk's rows as of HW as canonical JSON, with their keys (`keys[i]` is the key of `rows[i]`), in
   * canonical order: key order, then rows the backfill inserted.
   */
  keys: string[];
  rows: string[];
  /** Rows that could not be encoded: the caller stops or writes them to the dead letters (errors.mode). */
  failed: FailedRow[];
  backfilled: number;
}

export interface ChunkReaderContext {
  flavour: 'mysql' | 'mariadb';
  gtidMode: boolean;
  source: BinlogSourceSettings;
  /** Where large transactions inside a chunk's window are held (BinlogReaderOptions.spoolDir). */
  spoolDir: string | undefined;
}

/**
 * Fault injection for the consistency tests: widens the window between watermark and SELECT so
 * concurrent writes land inside chunks being read, which is what backfill exists for.
 */
const WINDOW_DELAY_MS = Number(process.env.TIDEMARK_TEST_CHUNK_DELAY_MS ?? 0);
const widenWindow = (): Promise<void> | undefined => (WINDOW_DELAY_MS > 0 ? new Promise((r) => setTimeout(r, WINDOW_DELAY_MS)) : undefined);

/** The canonical key values of a raw row, for key-order comparisons. */
export function keyOf(raw: Record<string, unknown>, keyColumns: ColumnInfo[], origin: RowOrigin): KeyTuple {
  return keyColumns.map((c) => encodeValue(c, raw[c.name], origin));
}

/**
 * Runs a chunk's SELECT and writes each row's key and JSON as the row arrives, so the reader's raw rows
 * die young instead of piling up for the whole chunk.
 */
function selectRows(
  conn: Connection,
  table: SnapshotTable,
  chunk: ChunkRecord,
  sql: string,
  params: unknown[],
): Promise<{ keys: string[]; rows: string[]; failed: FailedRow[] }> {
  const { db, table: name } = table.schema;
  return new Promise((resolve, reject) => {
    const keys: string[] = [];
    const rows: string[] = [];
    const failed: FailedRow[] = [];
    // The callback connection under the promise wrapper (typed only on pool connections): its query emits rows one by one.
    const core = (conn as unknown as { connection: CoreConnection }).connection;
    // mysql2 reports a connection lost under a query read as events (a reset, or watchSilence destroying the socket)
    // to the connection, not to the query, which then never ends: the read would wait forever.
    const lost = (err: Error) => reject(err);
    core.once('error', lost);
    core
      .query(sql, params)
      .on('result', (raw: unknown) => {
        const r = raw as Record<string, unknown>;
        try {
          const row = table.snapshotRow(r);
          keys.push(table.snapshotKey(r));
          rows.push(row);
        } catch (error) {
          failed.push({ db, table: name, key: keyOrNull(table.snapshotKey, r), raw: r, error, where: `read by the snapshot (chunk ${chunk.idx})` });
        }
      })
      .on('error', (err: Error) => {
        core.off('error', lost);
        reject(err);
      })
      .on('end', () => {
        core.off('error', lost);
        resolve({ keys, rows, failed });
      });
  });
}

/**
 * Reads one chunk so that it is exact as of its high watermark (ARCHITECTURE §3).
 *
 * MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT` reports the binlog position its read view
 * matches exactly (`binlog_snapshot_file/position`), so LW = HW and no backfill is needed.
 *
 * MySQL: a transaction is written to the binlog before the storage engine commits it, so a
 * position read before the SELECT may already include a commit the SELECT cannot see yet. The
 * low watermark therefore also records which GTIDs were executed (`gtid_executed`, which MySQL
 * updates only after the engine commit) and which were still in flight (`gtid_owned`). With none in
 * flight the backfill replays the binlog from LW's file/pos; otherwise from the executed GTID set,
 * so the server also sends the in-flight ones, whatever their position.
 */
export async function readChunk(
  ctx: ChunkReaderContext,
  conn: Connection,
  table: SnapshotTable,
  chunk: ChunkRecord,
  backfillServerId: number,
): Promise<ChunkRows> {
  const where = chunkWhere(table.keyColumns, chunk.lo, chunk.hi);
  const cols = table.keyColumns.map((c) => quoteId(c.name)).join(', ');
  const select = `SELECT ${table.selectList} FROM ${quoteId(table.schema.db)}.${quoteId(table.schema.table)} WHERE ${where.text} ORDER BY ${cols}`;

  if (ctx.flavour === 'mariadb') {
    // The snapshot is consistent only at REPEATABLE READ; a server whose default is READ COMMITTED would give
    // each read of the chunk its own view. The level is set for the session, so it holds for the next transaction.
    await conn.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    try {
      const [status] = await conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'");
      const v = Object.fromEntries((status as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name.toLowerCase(), r.Value]));
      const at: Position = { file: v.binlog_snapshot_file!, pos: Number(v.binlog_snapshot_position) };
      await widenWindow();
      return { lw: at, hw: at, ...(await selectRows(conn, table, chunk, select, where.params)), backfilled: 0 };
    } finally {
      await conn.query('COMMIT');
    }
  }

  const lw = await currentPosition(conn, 'mysql');
  let inFlight = false;
  let executed: string | undefined;
  if (ctx.gtidMode) {
    const [g] = await conn.query({ sql: 'SELECT @@GLOBAL.gtid_executed, @@GLOBAL.gtid_owned', rowsAsArray: true });
    const [e, o] = (g as string[][])[0]!;
    executed = e!.replace(/\s+/g, '');
    inFlight = o!.trim() !== '';
  }
  await widenWindow();
  const selected = await selectRows(conn, table, chunk, select, where.params);
  await widenWindow();
  const hw = await currentPosition(conn, 'mysql');
  if (!inFlight && comparePositions(lw, hw) === 0) return { lw, hw, ...selected, backfilled: 0 };
  const rows = new Map<string, string>();
  for (let i = 0; i < selected.keys.length; i++) rows.set(selected.keys[i]!, selected.rows[i]!);
  const start = inFlight && executed !== undefined ? { gtidSet: executed } : { file: lw.file, pos: lw.pos };
  const txs = await readBinlogRange(ctx, backfillServerId, start, hw, table.schema);
  let backfilled: number;
  try {
    backfilled = await applyBackfill(table, chunk, rows, txs, selected.failed);
  } finally {
    for (const tx of txs) releaseChanges(tx);
  }
  return { lw, hw, keys: [...rows.keys()], rows: [...rows.values()], failed: selected.failed, backfilled };
}

/** Collects the committed transactions from `start` up to and including position `hw`. */
function readBinlogRange(
  ctx: ChunkReaderContext,
  serverId: number,
  start: { file: string; pos: number } | { gtidSet: string },
  hw: Position,
  schema: TableSchema,
): Promise<BinlogTransaction[]> {
  return new Promise((resolve, reject) => {
    const txs: BinlogTransaction[] = [];
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      reader.stop();
      if (err) {
        for (const tx of txs) releaseChanges(tx);
        reject(err);
      } else resolve(txs);
    };
    const reached = (p: Position) => comparePositions(p, hw) >= 0;
    const reader = new BinlogReader({
      source: ctx.source,
      flavour: ctx.flavour,
      serverId,
      start,
      tables: [{ db: schema.db, table: schema.table }],
      spoolDir: ctx.spoolDir,
      onTransaction: (tx) => {
        if (!done && comparePositions(tx.end, hw) <= 0) txs.push(tx);
        else releaseChanges(tx);
        if (reached(tx.end)) finish();
      },
      onPosition: (p) => {
        if (reached(p)) finish();
      },
      onError: finish,
    });
    reader.start().catch(finish);
  });
}

/** The key values of the changes' row images, for the key order to prepare. */
function changeKeys(table: SnapshotTable, changes: RowChange[]): KeyTuple[] {
  const keys: KeyTuple[] = [];
  for (const c of changes) {
    for (const r of [c.before, c.after]) {
      if (r === null) continue;
      try {
        keys.push(keyOf(r, table.keyColumns, 'binlog'));
      } catch {
        // Its change fails where it is applied, and is recorded there.
      }
    }
  }
  return keys;
}

/**
 * Replays row changes on the chunk's rows (by key JSON): puts and removes of full row images, in commit order.
 * A change that cannot be encoded joins `failed`, and its key leaves the chunk: the chunk cannot say its value.
 */
async function applyBackfill(
  table: SnapshotTable,
  chunk: ChunkRecord,
  rows: Map<string, string>,
  txs: BinlogTransaction[],
  failed: FailedRow[],
): Promise<number> {
  const { db, table: name } = table.schema;
  const ours = (t: { db: string; table: string }) => t.db === db && t.table === name;
  if (!txs.some((tx) => changeCount(tx) > 0 || tx.truncates.some(ours))) return 0;
  // The sort weights of every key in memory in one round trip; a large transaction's spooled parts each bring their own.
  await table.order.prepare([
    ...changeKeys(
      table,
      txs.flatMap((tx) => tx.changes.filter(ours)),
    ),
    chunk.lo,
    chunk.hi,
  ]);
  const inChunk = (raw: Record<string, unknown>) => table.order.inRange(keyOf(raw, table.keyColumns, 'binlog'), chunk.lo, chunk.hi);
  let applied = 0;
  for (const tx of txs) {
    // A TRUNCATE inside the window empties the table; the changes after it rebuild the chunk.
    if (tx.truncates.some(ours)) rows.clear();
    for (const part of changeParts(tx)) {
      const changes = part.filter(ours);
      if (part !== tx.changes) await table.order.prepare(changeKeys(table, changes));
      for (const c of changes) {
        try {
          const removed = c.before && inChunk(c.before) ? table.binlogKey(c.before) : null;
          const put = c.after && inChunk(c.after) ? [table.binlogKey(c.after), table.binlogRow(c.after)] : null;
          if (removed !== null) rows.delete(removed);
          if (put) rows.set(put[0]!, put[1]!);
        } catch (error) {
          const key = keyOrNull(table.binlogKey, (c.after ?? c.before)!);
          if (key !== null) rows.delete(key);
          const where = `in the binlog at ${tx.end.file}:${tx.end.pos}, replayed onto snapshot chunk ${chunk.idx}`;
          failed.push({ db, table: name, key, raw: c.before && c.after ? { before: c.before, after: c.after } : (c.after ?? c.before), error, where });
        }
        applied++;
      }
    }
  }
  return applied;
}
