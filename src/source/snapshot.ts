import type { Connection } from 'mysql2/promise';
import type { ChunkRecord, KeyTuple } from '../checkpoint/store.js';
import { makeRowEncoder } from '../events/values.js';
import { BinlogReader, type BinlogTransaction } from './binlog.js';
import { chunkWhere } from './chunker.js';
import type { KeyOrder } from './key-order.js';
import { comparePositions, type Position } from './position.js';
import type { ColumnInfo, TableSchema } from './schema.js';
import { currentPosition, quoteId, type SourceSettings } from './server.js';

export interface SnapshotTable {
  schema: TableSchema;
  keyColumns: ColumnInfo[];
  order: KeyOrder;
  encodeSnapshotRow: (raw: Record<string, unknown>) => Record<string, unknown>;
  encodeBinlogRow: (raw: Record<string, unknown>) => Record<string, unknown>;
}

export function snapshotTable(schema: TableSchema, keyColumns: ColumnInfo[], order: KeyOrder): SnapshotTable {
  return {
    schema,
    keyColumns,
    order,
    encodeSnapshotRow: makeRowEncoder(schema.columns, 'snapshot'),
    encodeBinlogRow: makeRowEncoder(schema.columns, 'binlog'),
  };
}

export interface ChunkRows {
  lw: Position;
  hw: Position;
  /** The chunk's rows as of HW, canonical: key order, then rows the backfill inserted. */
  rows: Record<string, unknown>[];
  backfilled: number;
}

export interface ChunkReaderContext {
  flavour: 'mysql' | 'mariadb';
  gtidMode: boolean;
  source: SourceSettings;
}

/**
 * Fault injection for the consistency tests: widens the window between watermark and SELECT so
 * concurrent writes land inside chunks being read, which is what backfill exists for.
 */
const WINDOW_DELAY_MS = Number(process.env.TIDEMARK_TEST_CHUNK_DELAY_MS ?? 0);
const widenWindow = (): Promise<void> | undefined => (WINDOW_DELAY_MS > 0 ? new Promise((r) => setTimeout(r, WINDOW_DELAY_MS)) : undefined);

export function keyOf(row: Record<string, unknown>, keyColumns: ColumnInfo[]): KeyTuple {
  return keyColumns.map((c) => row[c.name]);
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
  const select = `SELECT * FROM ${quoteId(table.schema.db)}.${quoteId(table.schema.table)} WHERE ${where.text} ORDER BY ${cols}`;

  if (ctx.flavour === 'mariadb') {
    await conn.query('START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY');
    try {
      const [status] = await conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'");
      const v = Object.fromEntries((status as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name.toLowerCase(), r.Value]));
      const at: Position = { file: v.binlog_snapshot_file!, pos: Number(v.binlog_snapshot_position) };
      await widenWindow();
      const [raw] = await conn.query(select, where.params);
      return { lw: at, hw: at, rows: (raw as Record<string, unknown>[]).map(table.encodeSnapshotRow), backfilled: 0 };
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
  const [raw] = await conn.query(select, where.params);
  await widenWindow();
  const hw = await currentPosition(conn, 'mysql');
  const encoded = (raw as Record<string, unknown>[]).map(table.encodeSnapshotRow);
  if (!inFlight && comparePositions(lw, hw) === 0) return { lw, hw, rows: encoded, backfilled: 0 };
  const rows = new Map<string, Record<string, unknown>>();
  for (const row of encoded) rows.set(JSON.stringify(keyOf(row, table.keyColumns)), row);
  const start = inFlight && executed !== undefined ? { gtidSet: executed } : { file: lw.file, pos: lw.pos };
  const txs = await readBinlogRange(ctx.source, backfillServerId, start, hw, table.schema);
  const backfilled = await applyBackfill(table, chunk, rows, txs);
  return { lw, hw, rows: [...rows.values()], backfilled };
}

/** Collects the committed transactions from `start` up to and including position `hw`. */
function readBinlogRange(
  source: SourceSettings,
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
      if (err) reject(err);
      else resolve(txs);
    };
    const reached = (p: Position) => comparePositions(p, hw) >= 0;
    const reader = new BinlogReader({
      source,
      serverId,
      start,
      tables: [{ db: schema.db, table: schema.table }],
      onTransaction: (tx) => {
        if (comparePositions(tx.end, hw) <= 0) txs.push(tx);
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

/** Replays row changes on the chunk's rows: puts and removes of full row images, in commit order. */
async function applyBackfill(table: SnapshotTable, chunk: ChunkRecord, rows: Map<string, Record<string, unknown>>, txs: BinlogTransaction[]): Promise<number> {
  const { db, table: name } = table.schema;
  const changes = txs.flatMap((tx) => tx.changes.filter((c) => c.db === db && c.table === name));
  const truncated = txs.some((tx) => tx.truncates.some((t) => t.db === db && t.table === name));
  if (changes.length === 0 && !truncated) return 0;
  const encoded = changes.map((c) => ({
    before: c.before && table.encodeBinlogRow(c.before),
    after: c.after && table.encodeBinlogRow(c.after),
  }));
  const keys = encoded.flatMap((c) => [c.before, c.after]).filter((r) => r !== null).map((r) => keyOf(r, table.keyColumns));
  await table.order.prepare([...keys, chunk.lo, chunk.hi]);
  const inChunk = (key: KeyTuple) => table.order.inRange(key, chunk.lo, chunk.hi);
  let applied = 0;
  // A TRUNCATE inside the window empties the table; the changes after it rebuild the chunk.
  let i = 0;
  for (const tx of txs) {
    if (tx.truncates.some((t) => t.db === db && t.table === name)) rows.clear();
    for (const c of tx.changes) {
      if (c.db !== db || c.table !== name) continue;
      const { before, after } = encoded[i++]!;
      if (before) {
        const k = keyOf(before, table.keyColumns);
        if (inChunk(k)) rows.delete(JSON.stringify(k));
      }
      if (after) {
        const k = keyOf(after, table.keyColumns);
        if (inChunk(k)) rows.set(JSON.stringify(k), after);
      }
      applied++;
    }
  }
  return applied;
}
