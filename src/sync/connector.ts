import type { Connection } from 'mysql2/promise';
import { CheckpointLock } from '../checkpoint/lock.js';
import { CheckpointStore } from '../checkpoint/store.js';
import type { Config } from '../config/load.js';
import { SourceError } from '../errors.js';
import { DebeziumEncoder } from '../events/debezium.js';
import { crashPoint } from '../faults.js';
import type { Log } from '../ops/logger.js';
import { createSink } from '../sink/create.js';
import { clearSpoolDir, spoolDirOf } from '../source/change-spool.js';
import { comparePositions } from '../source/position.js';
import { loadCharsets } from '../source/schema.js';
import { closeConnection, closePool, connect, controlPool, currentPosition, inspectServer, type ServerInfo } from '../source/server.js';
import { Committer } from './committer.js';
import { runInitialSnapshot } from './initial-snapshot.js';
import type { RunParts, SyncOptions } from './options.js';
import { mariadbGtids, planTables } from './plan.js';
import { runStream } from './stream/streamer.js';
import { TableRegistry } from './table-registry.js';

/** Runs a connector: snapshot what needs it, then stream, until stopped (or caught up). */
export async function runSync(config: Config, opts: SyncOptions = {}): Promise<void> {
  const log = opts.log ?? (() => {});
  // Before anything else: a second sync on the checkpoint stops here, having touched nothing.
  const lock = CheckpointLock.acquire(config.checkpoint.path);
  const spool = spoolDirOf(config.checkpoint.path);
  // Large transactions a killed run was holding; none is in use by anyone but this run from here on.
  clearSpoolDir(spool);
  try {
    await syncLocked(config, opts, log);
  } finally {
    clearSpoolDir(spool);
    lock.release();
  }
}

async function syncLocked(config: Config, opts: SyncOptions, log: Log): Promise<void> {
  const conn = await connect(config.source);
  const pool = controlPool(config.source, {
    lost: (error, attempt, first) => {
      if (first) opts.observer?.disconnected?.();
      log('source connection lost on a control query; trying it again', { error, attempt });
    },
    back: (outageMs) => {
      opts.observer?.reconnected?.();
      log('source reconnected', { outageMs });
    },
    signal: opts.signal,
  });
  let store: CheckpointStore | undefined;
  // The database sinks ask for the captured tables' columns, which the registry below owns.
  let registry: TableRegistry | undefined;
  const sink = createSink(config, {
    tables: () => registry?.tables.map((t) => t.schema) ?? [],
    current: async (db, table) => {
      const t = registry?.get(`${db}.${table}`);
      return t && (await registry!.snapshotCodec(t)).schema;
    },
  });
  try {
    // Everything that can refuse the source runs before the checkpoint or the sink is touched.
    const info = await inspectServer(conn);
    refuseWithoutGtids(config, info);
    const schemaContext = { flavour: info.identity.flavour, charsets: await loadCharsets(conn) };
    registry = new TableRegistry(pool, await TableRegistry.load(conn, config), config, schemaContext);
    store = CheckpointStore.open(config.checkpoint.path);
    let sameServer = await checkIdentity(conn, store, info, log);
    const { sink: out } = config;
    const encoder = new DebeziumEncoder({
      name: config.name,
      tombstones: 'tombstones' in out && out.tombstones,
      schemaChanges: 'schemaChanges' in out && out.schemaChanges,
    });
    const committer = new Committer(store, sink, encoder, (table, reason) => opts.observer?.deadLettered?.(table, reason));
    await committer.recover();

    await planTables(conn, config, store, info, registry.tables, log, sameServer);
    // A re-snapshot (the binlog after the checkpoint was purged) starts over with this server's positions.
    if (store.streamPosition() === undefined) sameServer = true;
    // After a failover the checkpoint's position is still the old server's until a commit brings one of this
    // server's: only then does the checkpoint name this server (a crash in between resumes by GTID again).
    if (sameServer) store.setSourceIdentity(info.identity);
    else committer.recordSourceWithNextPosition(info.identity);
    // The stream decodes each table by the version in force where it resumes, not by the server's columns now.
    registry.adoptHistory(store);
    const resumeAt = store.streamRestart() ?? store.streamPosition();
    if (resumeAt) store.trimSchemaHistory(resumeAt);
    const planned = store.tables();
    opts.observer?.tablesPlanned?.(
      planned.map((t) => ({
        name: t.name,
        rowsEstimate: t.rowsEstimate,
        rowsDone: t.snapshotRows,
        chunksDone: store!.doneChunks(t.name),
        chunksTotal: t.chunksTotal,
      })),
    );
    const parts: RunParts = { config, store, info, conn: pool, registry, committer, log, observer: opts.observer, signal: opts.signal };
    crashPoint('planned');
    const snapshotDoneAt = await runInitialSnapshot(parts);
    if (opts.signal?.aborted) return;
    if (config.snapshot.mode === 'initial_only') {
      log('snapshot complete (snapshot.mode initial_only): exiting');
      return;
    }
    const from = store.streamPosition();
    if (!from) throw new Error('no stream position after planning');
    // With nothing snapshotted in this run, "caught up" means: up to where the server was at start.
    const until = opts.untilCaughtUp ? (snapshotDoneAt ?? (await currentPosition(pool, info.identity.flavour))) : undefined;
    await runStream(parts, { from, restart: store.streamRestart(), until, sameServer });
  } catch (err) {
    // A stop asked for while a control query waited for a lost source ends that wait: a stop, not a failure.
    if (opts.signal?.aborted && (err as Error | null)?.name === 'AbortError') return;
    throw err;
  } finally {
    await sink.close();
    store?.close();
    await closeConnection(conn);
    await closePool(pool);
  }
}

/**
 * MySQL writes a transaction to the binlog before the storage engine commits it. With GTIDs, a chunk read knows
 * which transactions were still committing at its low watermark (gtid_owned) and reads them from the binlog;
 * without, it cannot, and such a transaction can be missing from both the chunk and the stream.
 */
function refuseWithoutGtids(config: Config, info: ServerInfo): void {
  if (info.gtidMode || config.source.allowWithoutGtid) return;
  throw new SourceError(
    'the source runs with gtid_mode OFF: a transaction committing while a chunk is read could then be missed by both the chunk and the stream. ' +
      "Turn GTIDs on (SET PERSIST enforce_gtid_consistency = ON; SET PERSIST gtid_mode = OFF_PERMISSIVE; SET PERSIST gtid_mode = ON_PERMISSIVE; then, once SHOW STATUS LIKE 'Ongoing_anonymous_transaction_count' shows 0, SET PERSIST gtid_mode = ON), " +
      'or set source.allowWithoutGtid: true to run anyway and accept that risk.',
  );
}

/**
 * Refuses to resume against a different server unless the stored GTID position is valid there
 * (a failover within one replication topology: every stored GTID is executed on the new server).
 * Returns whether the checkpoint's binlog file/positions refer to this server.
 */
async function checkIdentity(conn: Connection, store: CheckpointStore, info: ServerInfo, log: Log): Promise<boolean> {
  const stored = store.sourceIdentity();
  if (!stored) return true;
  if (stored.flavour === info.identity.flavour && stored.serverId === info.identity.serverId) return true;
  if (store.lastCommittedSeq() === 0 && !store.pendingCommit()) {
    // The sink holds nothing of the old server: its positions and plan are let go, and this one is snapshotted.
    log('source server changed before anything was committed; starting afresh on this server', { was: stored.serverId, now: info.identity.serverId });
    store.forgetProgress();
    return true;
  }
  if (stored.flavour === info.identity.flavour) refuseUnfinishedHandoff(store, stored.serverId);
  const gtid = store.streamPosition()?.gtid;
  if (stored.flavour === info.identity.flavour && gtid && (await gtidsExecutedOn(conn, info.identity.flavour, gtid))) {
    log('source server changed; resuming by GTID position', { was: stored.serverId, now: info.identity.serverId });
    // Every chunk's high watermark is behind the committed position, so the hand-off filter has nothing left to
    // drop; kept, the old server's positions would be compared with this server's and drop changes.
    store.forgetChunkPositions();
    return false;
  }
  throw new SourceError(
    `the checkpoint belongs to ${stored.flavour} server ${stored.serverId}, but the source is ${info.identity.flavour} server ${info.identity.serverId}, ` +
      'and the checkpoint has no GTID position that this server has executed. Point source at the original server, or run `tidemark reset` (or use a new checkpoint.path) to start over.',
  );
}

/**
 * The hand-off from snapshot to stream filters changes by the chunks' high watermarks, which are positions in the old
 * server's binlog and mean nothing in another's: a failover is followed only once the stream has passed all of them.
 */
function refuseUnfinishedHandoff(store: CheckpointStore, was: string): void {
  const stream = store.streamPosition();
  const snapshotting = store.tables().filter((t) => t.state === 'snapshotting' || !stream);
  const ahead = store
    .tables()
    .flatMap((t) => store.chunks(t.name))
    .filter((c) => c.hw !== null && stream && comparePositions(c.hw, stream) > 0);
  if (snapshotting.length === 0 && ahead.length === 0) return;
  const tables = [...new Set([...snapshotting.map((t) => t.name), ...ahead.map((c) => c.table)])];
  throw new SourceError(
    `the source server changed while the snapshot of ${tables.join(', ')} was not yet handed off to the stream; its positions belong to server ${was}. ` +
      'Point source at that server until `tidemark status` shows the snapshot complete, or run `tidemark reset` (or use a new checkpoint.path) to snapshot this server.',
  );
}

async function gtidsExecutedOn(conn: Connection, flavour: 'mysql' | 'mariadb', gtid: string): Promise<boolean> {
  if (flavour === 'mysql') {
    const [rows] = await conn.query({ sql: 'SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed)', rowsAsArray: true }, [gtid]);
    return Number((rows as unknown[][])[0]![0]) === 1;
  }
  // The binlog state keeps the last GTID of every server of every domain: a promoted replica's has the old
  // primary's GTIDs beside its own, where its binlog position (one GTID per domain) names only its own.
  const [rows] = await conn.query({ sql: 'SELECT @@GLOBAL.gtid_binlog_state', rowsAsArray: true });
  const last = new Map(mariadbGtids(String((rows as unknown[][])[0]![0] ?? '')).map((g) => [`${g.domain}-${g.server}`, g.seq]));
  return mariadbGtids(gtid).every((g) => (last.get(`${g.domain}-${g.server}`) ?? -1n) >= g.seq);
}
