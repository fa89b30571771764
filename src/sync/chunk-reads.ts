/** Chunks for a snapshot, initial or while streaming: handed out one at a time, each read exact as of its high watermark. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Connection } from 'mysql2/promise';
import pRetry from 'p-retry';
import type { ChunkRecord } from '../checkpoint/store.js';
import { errorOf, isConnectionLoss, isRetriable, SourceError } from '../errors.js';
import { failedRow } from '../events/dead-letter.js';
import type { DeadLetter, RowEvent } from '../events/event.js';
import { XaPrepareMissing } from '../source/binlog.js';
import { spoolDirOf } from '../source/change-spool.js';
import { ChunkSplitter } from '../source/chunker.js';
import { preparedXa, SOURCE_BACKOFF, type SourceLink } from '../source/server.js';
import { type ChunkRows, readChunk } from '../source/snapshot.js';
import type { RunParts } from './options.js';
import type { CapturedTable } from './table-registry.js';

export type ChunkQueue = { next(): Promise<IteratorResult<{ table: CapturedTable; chunk: ChunkRecord }>> };

/** Reads of one chunk whose table keeps changing under it, before its last read is kept. */
const SCHEMA_CHANGE_TRIES = 5;

/**
 * Reads of one chunk refused for a passing reason (a table re-created under a consistent snapshot, an XA
 * transaction prepared before the low watermark), before the run stops. A lost or refused connection is tried
 * again until the server is back, as the binlog stream is: a server restart takes as long as it takes.
 */
const CHUNK_READ_ATTEMPTS = 5;

/** Hands out pending chunks one at a time; new bounds are computed and stored only when needed. */
export function chunkQueue(parts: RunParts, todo: CapturedTable[]): ChunkQueue {
  const { store, registry, conn, config, signal } = parts;
  const progress = new Map(store.tables().map((p) => [p.name, p]));
  async function* generate(): AsyncGenerator<{ table: CapturedTable; chunk: ChunkRecord }> {
    for (const t of todo) {
      const existing = store.chunks(t.name);
      for (const c of existing) if (c.status === 'pending') yield { table: t, chunk: c };
      const last = existing[existing.length - 1];
      if (last && last.hi === null) continue;
      const codec = await registry.snapshotCodec(t);
      const splitter = await ChunkSplitter.create(conn, t.schema, codec.keyColumns, config.snapshot.chunkSize, progress.get(t.name)?.rowsEstimate ?? 0);
      let idx = existing.length;
      let lo = last ? last.hi : null;
      for (;;) {
        if (signal?.aborted) return;
        const hi = await splitter.nextBound(lo);
        store.addChunk(t.name, idx, lo, hi);
        yield { table: t, chunk: { table: t.name, idx, lo, hi, status: 'pending', lw: null, hw: null, rows: null } };
        if (hi === null) break;
        lo = hi;
        idx++;
      }
    }
  }
  const gen = generate();
  let lock: Promise<unknown> = Promise.resolve();
  // Workers share one generator; calls to next() are serialised so each chunk goes to one worker.
  return {
    next: () => {
      const result = lock.then(() => gen.next());
      lock = result.catch(() => {});
      return result;
    },
  };
}

/**
 * Reads a chunk exact as of its high watermark and turns its rows into snapshot reads. A lost
 * connection is replaced and the chunk read again from its low watermark, until the server is back;
 * undefined when a stop was asked for meanwhile.
 */
export async function readChunkEvents(
  parts: RunParts,
  link: SourceLink,
  table: CapturedTable,
  chunk: ChunkRecord,
  backfillServerId: number,
): Promise<{ events: (RowEvent | DeadLetter)[]; result: ChunkRows } | undefined> {
  const { info, config, registry, observer, log, signal } = parts;
  let codec = await registry.snapshotCodec(table);
  const ctx = { flavour: info.identity.flavour, gtidMode: info.gtidMode, source: config.source, spoolDir: spoolDirOf(config.checkpoint.path) };
  // An XA COMMIT in the backfill whose XA PREPARE came before the low watermark: read again, the commit is then behind it.
  const readAgain = (err: Error & { attemptNumber: number }) =>
    !signal?.aborted && (isConnectionLoss(err) || ((isRetriable(err) || err instanceof XaPrepareMissing) && err.attemptNumber < CHUNK_READ_ATTEMPTS));
  const read = () =>
    link.use(async (conn) => {
      await waitForPreparedXa(conn, parts);
      // A DDL statement that ran while the chunk was read leaves rows of the old columns: read it again with the new ones.
      for (let tries = 1; ; tries++) {
        const rows = await readChunk(ctx, conn, codec, chunk, backfillServerId);
        if (!(await registry.snapshotSchemaChanged(table, codec)) || tries >= SCHEMA_CHANGE_TRIES) return rows;
        log('table changed while a chunk was read; reading it again', { table: table.name, chunk: chunk.idx });
        codec = await registry.snapshotCodec(table);
      }
    });
  let lostAt: number | undefined;
  const result = await pRetry(read, {
    forever: true,
    // Starts over with each chunk.
    ...SOURCE_BACKOFF,
    shouldRetry: readAgain,
    // p-retry calls this also for an error it will not retry.
    onFailedAttempt: (err) => {
      if (!readAgain(err)) return;
      const lost = isConnectionLoss(err);
      if (lost) {
        link.discard();
        if (lostAt === undefined) {
          lostAt = Date.now();
          observer?.disconnected?.();
        }
      }
      const why = lost ? 'source connection lost while reading a chunk' : 'chunk read refused for now';
      log(`${why}; reading it again`, { table: table.name, chunk: chunk.idx, error: errorOf(err).message, attempt: err.attemptNumber });
    },
    ...(signal ? { signal } : {}),
  }).catch((err: unknown) => {
    // A stop asked for while the server is away ends the wait; the chunk is read again by the next run.
    if (signal?.aborted) return undefined;
    throw err;
  });
  if (result === undefined) return undefined;
  if (lostAt !== undefined) {
    observer?.reconnected?.();
    log('source reconnected', { table: table.name, chunk: chunk.idx, outageMs: Date.now() - lostAt });
  }
  const { db, table: name } = table.schema;
  const source = { file: result.hw.file, pos: result.hw.pos, gtid: null, serverId: 0, tsMs: Date.now(), snapshot: true };
  const { keys, rows, failed } = result;
  const events = new Array<RowEvent | DeadLetter>(rows.length);
  for (let i = 0; i < rows.length; i++) events[i] = { op: 'r', db, table: name, key: keys[i]!, before: null, after: rows[i]!, row: i, source };
  for (const f of failed) events.push(failedRow(parts.config.errors.mode, f, source, events.length));
  return { events, result };
}

/** How long a chunk read waits for prepared XA transactions to end before it gives up. */
const XA_WAIT_MS = 10 * 60_000;
let warnedNoXaRecover = false;

/**
 * The rows of an XA transaction are in the binlog at its XA PREPARE, before its commit. One prepared before a
 * chunk's low watermark and committed after it is in neither the chunk's read nor the binlog read from the
 * low watermark on (the stream starts at the lowest one), so chunks are read only while none is prepared.
 */
async function waitForPreparedXa(conn: Connection, parts: Pick<RunParts, 'log' | 'signal'>): Promise<void> {
  const started = Date.now();
  let loggedMs = 0;
  for (;;) {
    const xids = await preparedXa(conn);
    if (xids === null) {
      if (!warnedNoXaRecover)
        parts.log(
          'cannot list prepared XA transactions (XA RECOVER needs XA_RECOVER_ADMIN on MySQL); an XA transaction prepared before a chunk is read and committed after it stops the stream',
          {},
        );
      warnedNoXaRecover = true;
      return;
    }
    if (xids.length === 0 || parts.signal?.aborted) return;
    if (Date.now() - started > XA_WAIT_MS) {
      throw new SourceError(
        `XA transactions ${xids.join(', ')} have stayed prepared for ${XA_WAIT_MS / 60_000} minutes, and tidemark reads no chunk while one is prepared. ` +
          'End them with XA COMMIT or XA ROLLBACK (XA RECOVER lists them), then start tidemark again.',
      );
    }
    if (Date.now() - loggedMs >= 10_000) {
      parts.log('waiting for prepared XA transactions to end before reading a chunk', { xids });
      loggedMs = Date.now();
    }
    await sleep(100);
  }
}

/** A chunk's rows are committed: progress bars and metrics hear of it. */
export function reportChunk(parts: Pick<RunParts, 'store' | 'observer'>, table: string, rows: number): void {
  const t = parts.store.tables().find((p) => p.name === table);
  parts.observer?.chunkDone?.(table, rows, parts.store.doneChunks(table), t?.chunksTotal ?? null);
  parts.observer?.committed?.(undefined);
}
