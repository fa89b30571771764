/**
 * The hand-off from snapshot to stream (ARCHITECTURE §3): where the stream starts once the snapshot is done
 * (the lowest chunk high watermark), and the per-chunk filter that keeps the stream from repeating what the
 * chunks already hold.
 */
import type { ChunkRecord, KeyTuple } from '../checkpoint/store.js';
import { findChunk, type KeyOrder } from '../source/key-order.js';
import { comparePositions, maxPosition, minPosition, type Position } from '../source/position.js';
import { currentPosition, withMariadbGtid } from '../source/server.js';
import type { RunParts } from './options.js';

/**
 * Records where the stream starts once every chunk is done: the lowest low watermark, by its GTID position
 * on MariaDB (so the stream starts right there); with no chunk at all, the current position. Nothing before a
 * chunk's high watermark passes the filter for its keys, so the lowest high watermark would do for row changes;
 * starting at the lowest low watermark also reads a TRUNCATE, and the XA PREPARE of an XA transaction committed
 * later, that lie between a chunk's watermarks.
 */
export async function recordStreamStart(parts: Pick<RunParts, 'store' | 'conn' | 'info'>): Promise<void> {
  const { store, conn, info } = parts;
  if (store.streamPosition() !== undefined) return;
  const lws = store.tables().flatMap((t) => store.chunks(t.name).map((c) => c.lw!));
  const start = minPosition(lws) ?? (await currentPosition(conn, info.identity.flavour));
  // With its GTID position the stream starts right there; without it, at the file's start to learn it.
  store.setStreamStart(info.identity.flavour === 'mariadb' ? await withMariadbGtid(conn, start) : start);
}

/** The filter as the checkpoint leaves it: done chunks of first snapshots, and first snapshots still running inside the stream. */
export async function handoffFilter(parts: Pick<RunParts, 'store' | 'registry'>): Promise<HandoffFilter> {
  const { store, registry } = parts;
  const filter = new HandoffFilter();
  const progress = new Map(store.tables().map((p) => [p.name, p]));
  for (const t of registry.tables) {
    const p = progress.get(t.name);
    // A snapshot taken again is merged into the stream without a filter (see LiveSnapshots).
    if (!p || p.again) continue;
    const chunks = store.chunks(t.name);
    const inProgress = p.state === 'snapshotting';
    if (chunks.length > 0 || inProgress) await filter.addTable(t.name, chunks, (await registry.codec(t)).order, inProgress);
  }
  return filter;
}

interface TableFilter {
  /** Done chunks in key order; they cover a contiguous key range. */
  chunks: ChunkRecord[];
  order: KeyOrder;
  maxHw: Position | undefined;
  /**
   * A first snapshot running inside the stream: keys no done chunk covers are dropped, because
   * their chunk, read later, will hold every change the stream has passed by then.
   */
  inProgress: boolean;
}

/**
 * The hand-off from snapshot to stream (ARCHITECTURE §3): a change at position p on a key whose
 * chunk was read with high watermark HW is already in the snapshot output when p <= HW, so only
 * changes after their chunk's HW pass. Past a table's largest HW every change passes, and so do keys
 * outside every done chunk, except while the table's first snapshot runs inside the stream.
 */
export class HandoffFilter {
  private readonly tables = new Map<string, TableFilter>();

  async addTable(name: string, chunks: ChunkRecord[], order: KeyOrder, inProgress = false): Promise<void> {
    this.tables.delete(name);
    const done = chunks.filter((c) => c.hw !== null);
    if (inProgress) this.tables.set(name, { chunks: [], order, maxHw: undefined, inProgress });
    if (done.length === 0) return;
    await order.prepare(
      done.flatMap((c) => [c.lo, c.hi]),
      { pin: true },
    );
    for (const c of done) this.push(name, c, order);
  }

  /**
   * A TRUNCATE of the table at the current position: its `t` event makes the consumer drop every row, so from
   * here on every change must pass, also those up to a chunk's HW that the chunk already holds (the consumer
   * received that chunk before the truncate). A first snapshot still running inside the stream keeps its filter:
   * its chunks not read yet will hold the rows as they are after the truncate.
   */
  truncated(name: string): void {
    if (this.tables.get(name)?.inProgress === false) this.tables.delete(name);
  }

  /** A table no longer captured, or snapshotted afresh: no filter for it. */
  forget(name: string): void {
    this.tables.delete(name);
  }

  /** The table's first snapshot inside the stream is complete: uncovered keys pass from now on. */
  finishTable(name: string): void {
    const t = this.tables.get(name);
    if (t) t.inProgress = false;
  }

  /** A chunk read while streaming joins the filter; chunks arrive in key order. */
  async addChunk(name: string, chunk: ChunkRecord, order: KeyOrder): Promise<void> {
    await order.prepare([chunk.lo, chunk.hi], { pin: true });
    this.push(name, chunk, order);
  }

  private push(name: string, chunk: ChunkRecord, order: KeyOrder): void {
    const t = this.tables.get(name);
    if (!t) {
      this.tables.set(name, { chunks: [chunk], order, maxHw: chunk.hw!, inProgress: false });
      return;
    }
    t.chunks.push(chunk);
    t.maxHw = t.maxHw ? maxPosition([t.maxHw, chunk.hw!])! : chunk.hw!;
  }

  /** Whether keys of this table at position p need a chunk lookup (and so sort weights). */
  needsLookup(table: string, p: Position): KeyOrder | undefined {
    const t = this.tables.get(table);
    if (!t) return undefined;
    if (!t.inProgress && t.maxHw && comparePositions(p, t.maxHw) > 0) {
      this.tables.delete(table);
      return undefined;
    }
    return t.order;
  }

  passes(table: string, key: KeyTuple, p: Position): boolean {
    const t = this.tables.get(table);
    if (!t || (!t.inProgress && t.maxHw && comparePositions(p, t.maxHw) > 0)) return true;
    const chunk = findChunk(t.chunks, key, t.order);
    if (!chunk || (chunk.hi !== null && t.order.compare(key, chunk.hi) >= 0)) return !t.inProgress;
    return comparePositions(p, chunk.hw!) > 0;
  }

  get active(): boolean {
    return this.tables.size > 0;
  }
}
