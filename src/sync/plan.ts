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
export async function planTables(
  conn: Connection,
  config: Config,
  store: CheckpointStore,
  info: ServerInfo,
  tables: CapturedTable[],
  log: Log,
  sameServer = true,
): Promise<void> {
  // A table no longer captured must not hold the snapshot back (its pending chunks) or pin the binlog (its chunks' positions).
  const captured = new Set(tables.map((t) => t.name));
  for (const t of store.tables()) {
    if (captured.has(t.name)) continue;
    log('table no longer in source.tables: its progress is forgotten', { table: t.name });
    store.forgetTable(t.name);
  }
  const files = await binlogFiles(conn);
  // After a failover the checkpoint's file names are the old server's: what this one still has is asked by GTID.
  const purged = sameServer ? purgedFile(store, files) : await purgedGtids(conn, info.identity.flavour, store.streamPosition()!.gtid!, files);
  if (purged) {
    if (config.snapshot.mode !== 'when_needed') {
      throw new SourceError(
        `${purged} that the checkpoint resumes from has been purged from the source (oldest left: ${files[0] ?? 'none'}). ` +
          'Changes in between are lost to tidemark. Set snapshot.mode: when_needed to re-snapshot automatically, or run `tidemark reset` and sync again.',
      );
    }
    log('binlog needed to resume was purged: re-snapshotting (snapshot.mode when_needed)', { needed: purged });
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

function purgedFile(store: CheckpointStore, files: string[]): string | undefined {
  const needed = neededBinlogFile(store);
  return needed && !files.includes(needed) ? `the binlog file ${needed}` : undefined;
}

/**
 * Whether the server's binlog still holds every transaction after the GTIDs `gtid`: MySQL lists what it purged
 * (gtid_purged); MariaDB's oldest file begins with the GTID position before it, which `gtid` must have reached.
 */
async function purgedGtids(conn: Connection, flavour: 'mysql' | 'mariadb', gtid: string, files: string[]): Promise<string | undefined> {
  if (flavour === 'mysql') {
    const [rows] = await conn.query({ sql: 'SELECT GTID_SUBSET(@@GLOBAL.gtid_purged, ?), @@GLOBAL.gtid_purged', rowsAsArray: true }, [gtid]);
    const [subset, purged] = (rows as unknown[][])[0]!;
    return Number(subset) === 1 ? undefined : `a part of the transactions after the GTID set ${gtid} (the server purged ${String(purged)})`;
  }
  if (files.length === 0) return undefined;
  const [rows] = await conn.query({ sql: 'SELECT BINLOG_GTID_POS(?, 4)', rowsAsArray: true }, [files[0]]);
  const before = String((rows as unknown[][])[0]![0] ?? '');
  // Sequence numbers grow within a domain whichever server wrote them (a promoted replica goes on from the old primary's).
  const reached = new Map(mariadbGtids(gtid).map((g) => [g.domain, g.seq]));
  const missing = mariadbGtids(before).filter((g) => (reached.get(g.domain) ?? -1n) < g.seq);
  return missing.length === 0 ? undefined : `a part of the transactions after the GTID position ${gtid} (the server's binlog begins after ${before})`;
}

/** `domain-server-seq` GTIDs of a MariaDB GTID list, as numbers. */
export function mariadbGtids(list: string): { domain: number; server: number; seq: bigint }[] {
  return list
    .split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '')
    .map((g) => {
      const [domain, server, seq] = g.split('-');
      return { domain: Number(domain), server: Number(server), seq: BigInt(seq!) };
    });
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
