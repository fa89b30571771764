/** The initial snapshot, before any streaming: every unfinished chunk, `parallelism` at a time, split lazily as it goes. */
import type { ChunkRecord } from '../checkpoint/store.js';
import { serverIdRange } from '../config/load.js';
import { crashPoint } from '../faults.js';
import type { Position } from '../source/position.js';
import { currentPosition, SourceLink } from '../source/server.js';
import { type ChunkQueue, chunkQueue, readChunkEvents, reportChunk } from './chunk-reads.js';
import { recordStreamStart } from './handoff.js';
import type { RunParts } from './options.js';
import type { CapturedTable } from './table-registry.js';

/**
 * Reads every chunk of the tables still snapshotting and commits each with its done record, then records
 * where the stream starts. Resolves to the position current when it finished, which `--until-caught-up`
 * waits for; undefined when there was nothing to snapshot or the run was stopped.
 */
export async function runInitialSnapshot(parts: RunParts): Promise<Position | undefined> {
  const { store, registry, config, committer, log, signal, conn, info, observer } = parts;
  if (store.streamPosition() !== undefined) return undefined;
  const progress = new Map(store.tables().map((p) => [p.name, p]));
  const todo = registry.tables.filter((t) => progress.get(t.name)?.state === 'snapshotting');
  if (todo.length === 0) {
    // Every chunk was committed by an earlier run that stopped before recording where the stream starts.
    await recordStreamStart(parts);
    return undefined;
  }
  log('snapshot starting', { tables: todo.map((t) => t.name) });
  const started = Date.now();
  const queue = chunkQueue(parts, todo);
  const workers: Promise<void>[] = [];
  for (let w = 0; w < config.snapshot.parallelism; w++) workers.push(chunkWorker(parts, w, queue));
  await Promise.all(workers);
  await committer.drain();
  if (signal?.aborted) return undefined;
  crashPoint('stream-start');
  await recordStreamStart(parts);
  const caughtUpTarget = await currentPosition(conn, info.identity.flavour);
  observer?.snapshotFinished?.();
  log('snapshot complete', { seconds: (Date.now() - started) / 1000, rows: store.tables().reduce((n, t) => n + t.snapshotRows, 0) });
  return caughtUpTarget;
}

/** One reader: its own connection and its own server id for backfills, taking chunks until none is left. */
async function chunkWorker(parts: RunParts, w: number, queue: ChunkQueue): Promise<void> {
  const link = new SourceLink(parts.config.source);
  const serverId = serverIdRange(parts.config).first + 1 + w;
  try {
    for (;;) {
      if (parts.signal?.aborted) return;
      const item = await queue.next();
      if (item.done) return;
      const { table, chunk } = item.value;
      const read = await readAndCommit(parts, link, table, chunk, serverId);
      if (!read) return;
      await read.committed;
      reportChunk(parts, table.name, read.rows);
      parts.log('chunk done', { table: table.name, chunk: chunk.idx, rows: read.rows, backfilled: read.backfilled });
    }
  } finally {
    await link.end();
  }
}

/**
 * Reads a chunk and hands it to the committer; returns only counts, so the chunk worker holds none
 * of the rows while the commit runs (the committer lets them go once the sink has encoded them).
 */
async function readAndCommit(
  parts: RunParts,
  link: SourceLink,
  table: CapturedTable,
  chunk: ChunkRecord,
  serverId: number,
): Promise<{ committed: Promise<void>; rows: number; backfilled: number } | undefined> {
  const read = await readChunkEvents(parts, link, table, chunk, serverId);
  if (!read || parts.signal?.aborted) return undefined;
  const { events, result } = read;
  const rows = result.rows.length;
  const committed = parts.committer.commit(events, { chunksDone: [{ table: table.name, idx: chunk.idx, lw: result.lw, hw: result.hw, rows }] });
  return { committed, rows, backfilled: result.backfilled };
}
