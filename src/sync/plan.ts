/** Which tables a connector captures, on which key, and what each needs before streaming. */

import type { Connection } from 'mysql2/promise';
import type { CheckpointStore, CheckpointUpdate, ChunkRecord } from '../checkpoint/store.js';
import { type Config, matchTables } from '../config/load.js';
import { SourceError } from '../errors.js';
import { minPosition, type Position } from '../source/position.js';
import { chunkKeyProblem, loadTableSchemas, type TableSchema, uniqueIndexes } from '../source/schema.js';
import { binlogFiles, currentPosition, listTables, type ServerInfo } from '../source/server.js';
import type { SyncOptions } from './connector.js';

export const tableName = (s: { db: string; table: string }) => `${s.db}.${s.table}`;

export type ChunkDone = NonNullable<CheckpointUpdate['chunksDone']>[number];

export type ChunkQueue = { next(): Promise<IteratorResult<{ table: CapturedTable; chunk: ChunkRecord }>> };

export interface CapturedTable {
  name: string;
  /** Replaced when DDL changes the table. */
  schema: TableSchema;
  chunkKey: string[];
}

export async function resolveTables(conn: Connection, config: Config): Promise<CapturedTable[]> {
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

export async function checkChunkKey(conn: Connection, schema: TableSchema, key: string[]): Promise<void> {
  const name = tableName(schema);
  const problem = chunkKeyProblem(schema, key, (await uniqueIndexes(conn, schema.db, [schema.table])).get(schema.table) ?? []);
  if (problem) throw new SourceError(`snapshot.chunkKey.${name}: ${name} ${problem}; choose NOT NULL columns that form a unique index, or create one`);
}

/** Decides, from the checkpoint and the snapshot mode, what each table needs and where the stream starts. */
export async function planTables(
  conn: Connection,
  config: Config,
  store: CheckpointStore,
  info: ServerInfo,
  tables: CapturedTable[],
  log: NonNullable<SyncOptions['log']>,
): Promise<void> {
  const files = await binlogFiles(conn);
  const needed = neededBinlogFile(store);
  if (needed && !files.includes(needed)) {
    if (config.snapshot.mode !== 'when_needed') {
      throw new SourceError(
        `the binlog file ${needed} that the checkpoint resumes from has been purged from the source (oldest left: ${files[0] ?? 'none'}). ` +
          'Changes in between are lost to tidemark. Set snapshot.mode: when_needed to re-snapshot automatically, or run `tidemark reset` and sync again.',
      );
    }
    log('binlog needed to resume was purged: re-snapshotting (snapshot.mode when_needed)', { needed });
    store.forgetProgress();
  }

  const known = new Set(store.tables().map((t) => t.name));
  const fresh = tables.filter((t) => !known.has(t.name));
  const streamStarted = store.streamPosition() !== undefined;
  const snapshotFresh = config.snapshot.mode !== 'never';
  // Tables new to the config after streaming started, and tables asked for with `tidemark snapshot`,
  // are snapshotted by the stream itself, chunk by chunk (ARCHITECTURE §3, tables added later).
  const requested = new Set(store.snapshotRequests());
  const again = tables.filter((t) => requested.has(t.name) && known.has(t.name));
  const estimates = await rowEstimates(conn, [...fresh, ...again]);
  for (const t of fresh) store.addTable(t.name, snapshotFresh ? 'snapshotting' : 'streaming', t.chunkKey, estimates.get(t.name) ?? null);
  for (const t of again) store.restartTableSnapshot(t.name, t.chunkKey, estimates.get(t.name) ?? null, streamStarted);
  if (!snapshotFresh && !streamStarted) store.setStreamStart(await currentPosition(conn, info.identity.flavour));
}

/** The oldest binlog file a restart needs: the stream's resume point, or the earliest chunk HW. */
function neededBinlogFile(store: CheckpointStore): string | undefined {
  const stream = store.streamPosition();
  if (stream) return stream.file;
  const hws = store.tables().flatMap((t) =>
    store
      .chunks(t.name)
      .map((c) => c.hw)
      .filter((h): h is Position => h !== null),
  );
  return minPosition(hws)?.file;
}

export async function rowEstimates(conn: Connection, tables: CapturedTable[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const t of tables) {
    const [rows] = await conn.query('SELECT TABLE_ROWS AS n FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [
      t.schema.db,
      t.schema.table,
    ]);
    out.set(t.name, Number((rows as { n: number | string | null }[])[0]?.n ?? 0));
  }
  return out;
}
