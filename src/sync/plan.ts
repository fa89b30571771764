/** What each captured table needs before streaming, decided from the checkpoint and the snapshot mode. */

import type { Connection } from 'mysql2/promise';
import type { CheckpointStore } from '../checkpoint/store.js';
import type { Config } from '../config/load.js';
import { SourceError } from '../errors.js';
import type { Log } from '../ops/logger.js';
import { minPosition, type Position } from '../source/position.js';
import { binlogFiles, currentPosition, type ServerInfo } from '../source/server.js';
import type { CapturedTable } from './table-registry.js';

/** Decides, from the checkpoint and the snapshot mode, what each table needs and where the stream starts. */
export async function planTables(conn: Connection, config: Config, store: CheckpointStore, info: ServerInfo, tables: CapturedTable[], log: Log): Promise<void> {
  // A table no longer captured must not hold the snapshot back (its pending chunks) or pin the binlog (its chunks' positions).
  const captured = new Set(tables.map((t) => t.name));
  for (const t of store.tables()) {
    if (captured.has(t.name)) continue;
    log('table no longer in source.tables: its progress is forgotten', { table: t.name });
    store.forgetTable(t.name);
  }
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

/** The oldest binlog file a restart needs: where the stream resumes reading, or where it will start (the earliest chunk LW). */
function neededBinlogFile(store: CheckpointStore): string | undefined {
  const stream = store.streamRestart() ?? store.streamPosition();
  if (stream) return stream.file;
  const lws = store.tables().flatMap((t) =>
    store
      .chunks(t.name)
      .map((c) => c.lw)
      .filter((p): p is Position => p !== null),
  );
  return minPosition(lws)?.file;
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
