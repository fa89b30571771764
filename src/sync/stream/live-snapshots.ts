/**
 * Snapshots while streaming (ARCHITECTURE §3, tables added later / re-snapshot on demand): tables new to
 * the config and tables asked for with `tidemark snapshot` are read chunk by chunk between stretches of
 * streaming, so the stream pauses for one chunk read at most.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { serverIdRange } from '../../config/load.js';
import type { ChangeEvent, DeadLetter, RowEvent } from '../../events/event.js';
import type { BinlogTransaction } from '../../source/binlog.js';
import { comparePositions, type Position } from '../../source/position.js';
import { SourceLink } from '../../source/server.js';
import { type ChunkQueue, chunkQueue, readChunkEvents, reportChunk } from '../chunk-reads.js';
import type { HandoffFilter } from '../handoff.js';
import type { RunParts } from '../options.js';
import type { CapturedTable } from '../table-registry.js';
import type { Batcher, ChunkDone } from './batcher.js';
import type { BinlogTail } from './binlog-tail.js';
import type { ResolvedChange } from './transaction-events.js';

/** How often `tidemark snapshot` requests are looked for in the checkpoint. */
const REQUEST_POLL_MS = 1000;
/** While the binlog has a backlog, a chunk is read at most this often, so the stream keeps up. */
const CHUNK_INTERVAL_MS = 200;
/** MariaDB's snapshot position can trail a commit the stream already delivered by an instant: tries before giving up on waiting. */
const LW_BEHIND_TRIES = 50;

/** A chunk of a snapshot taken again, held until the stream reaches its HW; rows by key JSON. */
interface HeldChunk {
  table: string;
  hw: Position;
  done: ChunkDone;
  rows: Map<string, RowEvent>;
  /** Rows of the chunk that went to the dead letters; released with it. */
  dead: DeadLetter[];
}

export class LiveSnapshots {
  /** Tables being snapshotted while streaming, each with its lazily split chunks. */
  private readonly queue: { table: CapturedTable; chunks: ChunkQueue; again: boolean }[] = [];
  private held: HeldChunk | null = null;
  private link: SourceLink | null = null;
  private lastChunkMs = 0;
  private lastRequestPollMs = 0;

  constructor(
    private readonly parts: RunParts,
    private readonly filter: HandoffFilter,
    private readonly batcher: Batcher,
    private readonly tail: BinlogTail,
  ) {}

  /** Whether a snapshot is still running inside the stream. */
  get active(): boolean {
    return this.queue.length > 0;
  }

  /** Tables left snapshotting by an earlier run, or new in the config, continue inside the stream. */
  resumeFromCheckpoint(): void {
    for (const p of this.parts.store.tables()) {
      const table = this.parts.registry.get(p.name);
      if (table && p.state === 'snapshotting') this.start(table, p.again);
    }
  }

  /** Picks up requests, then reads the next chunk when one is due: with the binlog drained, or every so often behind it. */
  async step(): Promise<boolean> {
    if (Date.now() - this.lastRequestPollMs >= REQUEST_POLL_MS) await this.pickUpRequests();
    if (this.queue.length === 0 || this.held || (!this.tail.empty && Date.now() - this.lastChunkMs < CHUNK_INTERVAL_MS)) return false;
    await this.readNextChunk();
    return true;
  }

  /** Keys a transaction changed between the held chunk's start and its HW leave the chunk: the stream carries them. */
  absorb(tx: BinlogTransaction, changes: ResolvedChange[]): void {
    const held = this.held;
    if (!held || comparePositions(tx.end, held.hw) > 0) return;
    if (tx.truncates.some((t) => `${t.db}.${t.table}` === held.table)) held.rows.clear();
    for (const { change, table } of changes) {
      if (table.table.name !== held.table) continue;
      if (change.before) held.rows.delete(table.codec.binlogKey(change.before));
      if (change.after) held.rows.delete(table.codec.binlogKey(change.after));
    }
  }

  /** Once the stream has passed the held chunk's HW, its untouched rows join the batch with its done record. */
  releaseIfReached(p: Position): void {
    const held = this.held;
    if (!held || comparePositions(p, held.hw) < 0) return;
    this.held = null;
    const events: ChangeEvent[] = [...held.rows.values(), ...held.dead];
    this.batcher.addChunk(events, { ...held.done, rows: held.rows.size }, p);
    this.parts.log('chunk done', { table: held.table, chunk: held.done.idx, rows: held.rows.size, whileStreaming: true, again: true });
  }

  async close(): Promise<void> {
    await this.link?.end();
  }

  /**
   * A table that came into the captured set with rows (renamed in): snapshotted inside the stream like a table
   * added to the config, its keys held back by the filter until their chunk is read.
   */
  async snapshotNewTable(table: CapturedTable): Promise<void> {
    const { store, registry } = this.parts;
    store.addTable(table.name, 'snapshotting', table.chunkKey, null);
    await this.filter.addTable(table.name, [], (await registry.codec(table)).order, true);
    this.start(table, false);
  }

  /**
   * The table's primary key (its chunk key) changed. A snapshot of it in progress, or a hand-off whose chunk bounds
   * are in the old key, cannot go on: the table is snapshotted again with the new key (a consumer sees its rows
   * again as reads under the new key). A table fully streamed needs nothing: its events carry the new key from here.
   */
  async keyChanged(table: CapturedTable, filter: HandoffFilter): Promise<void> {
    const inHandOff = filter.needsLookup(table.name, this.tail.lastReceived) !== undefined;
    if (!inHandOff && !this.queue.some((q) => q.table.name === table.name) && this.held?.table !== table.name) return;
    this.cancel(table.name);
    filter.forget(table.name);
    await this.batcher.flush();
    const { store } = this.parts;
    store.restartTableSnapshot(table.name, table.chunkKey, store.tables().find((t) => t.name === table.name)?.rowsEstimate ?? null, true);
    this.start(table, true);
  }

  /** Stops a snapshot of a table that is no longer captured, or is to be snapshotted anew. */
  cancel(name: string): void {
    const i = this.queue.findIndex((q) => q.table.name === name);
    if (i >= 0) this.queue.splice(i, 1);
    if (this.held?.table === name) this.held = null;
  }

  private start(table: CapturedTable, again: boolean): void {
    this.parts.log('snapshot while streaming starting', { table: table.name, again });
    this.queue.push({ table, chunks: chunkQueue(this.parts, [table]), again });
  }

  /** `tidemark snapshot` requests, polled from the checkpoint while running. */
  private async pickUpRequests(): Promise<void> {
    this.lastRequestPollMs = Date.now();
    const { store, registry } = this.parts;
    for (const name of store.snapshotRequests()) {
      const table = registry.get(name);
      // A table still inside its previous snapshot's hand-off finishes that first.
      if (!table || this.queue.some((i) => i.table.name === name) || this.filter.needsLookup(name, this.tail.lastReceived)) continue;
      await this.batcher.flush();
      store.restartTableSnapshot(name, table.chunkKey, store.tables().find((t) => t.name === name)?.rowsEstimate ?? null, true);
      this.start(table, true);
    }
  }

  /**
   * Pauses the stream at the last processed transaction boundary T (committed first) and reads one
   * chunk exact as of its HW, insisting on T <= LW so the chunk holds every change the stream passed.
   *
   * A first snapshot of a table (new to the config) commits the chunk now and adds its HW to the
   * filter, which drops the chunk's keys' changes up to HW (ARCHITECTURE §3, tables added later).
   * A snapshot taken again cannot do that: the sink already has the table, and a delete dropped by
   * the filter would never reach it. Its chunk is held instead, the stream runs on to HW emitting
   * everything, keys changed after T leave the chunk, and what is left is emitted at HW (DBLog's
   * watermark merge, as Debezium's incremental snapshots do).
   */
  private async readNextChunk(): Promise<void> {
    const current = this.queue[0]!;
    const { parts } = this;
    await this.batcher.flush();
    this.tail.pause();
    try {
      const item = await current.chunks.next();
      if (item.done) {
        this.queue.shift();
        this.filter.finishTable(current.table.name);
        parts.log('snapshot while streaming complete', { table: current.table.name });
        return;
      }
      const { table, chunk } = item.value;
      this.link ??= new SourceLink(parts.config.source);
      const serverId = serverIdRange(parts.config).first + 1;
      let read = await readChunkEvents(parts, this.link, table, chunk, serverId);
      for (let i = 0; read && i < LW_BEHIND_TRIES && comparePositions(read.result.lw, this.tail.lastReceived) < 0; i++) {
        await sleep(20);
        read = await readChunkEvents(parts, this.link, table, chunk, serverId);
      }
      // Stopped while the server was away: the chunk stays pending for the next run.
      if (!read) return;
      const { events, result } = read;
      const done = { table: table.name, idx: chunk.idx, lw: result.lw, hw: result.hw, rows: result.rows.length };
      if (current.again) {
        const rows = new Map<string, RowEvent>();
        const dead: DeadLetter[] = [];
        for (const e of events) {
          if (e.op === 'dead') dead.push(e);
          else rows.set(e.key, e);
        }
        this.held = { table: table.name, hw: result.hw, done, rows, dead };
        this.releaseIfReached(this.tail.lastReceived);
        return;
      }
      await parts.committer.commit(events, { chunksDone: [done] });
      await this.filter.addChunk(
        table.name,
        { ...chunk, status: 'done', lw: result.lw, hw: result.hw, rows: result.rows.length },
        (await parts.registry.codec(table)).order,
      );
      reportChunk(parts, table.name, result.rows.length);
      parts.log('chunk done', { table: table.name, chunk: chunk.idx, rows: result.rows.length, backfilled: result.backfilled, whileStreaming: true });
    } finally {
      this.lastChunkMs = Date.now();
      this.tail.resumeIfLow();
    }
  }
}
