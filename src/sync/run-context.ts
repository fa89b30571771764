/** One run of a connector: the initial snapshot with parallel chunk readers, then the stream. */
import type { Connection } from 'mysql2/promise';
import type { CheckpointStore, ChunkRecord } from '../checkpoint/store.js';
import { type Config, serverIdRange } from '../config/load.js';
import { isConnectionLoss } from '../errors.js';
import type { ChangeEvent } from '../events/event.js';
import { ChunkSplitter, keyColumnsOf } from '../source/chunker.js';
import { KeyOrder } from '../source/key-order.js';
import { bytesBetween, minPosition, type Position } from '../source/position.js';
import { loadTableSchemas } from '../source/schema.js';
import { binlogSizes, currentPosition, type ServerInfo, SourceLink, withMariadbGtid } from '../source/server.js';
import { type ChunkRows, readChunk, type SnapshotTable, snapshotTable } from '../source/snapshot.js';
import type { Committer } from './committer.js';
import type { SyncOptions } from './connector.js';
import { StreamFilter } from './stream-filter.js';
import { Streamer } from './streamer.js';
import type { CapturedTable, ChunkQueue } from './tables.js';

export class RunContext {
  private readonly snapshotTables = new Map<string, SnapshotTable>();
  private readonly ids: { first: number; size: number };
  /** Where `--until-caught-up` stops: the position current when this run's snapshot finished. */
  private caughtUpTarget: Position | undefined;

  constructor(
    private readonly config: Config,
    private readonly conn: Connection,
    private readonly store: CheckpointStore,
    private readonly info: ServerInfo,
    private readonly tables: CapturedTable[],
    private readonly committer: Committer,
    private readonly opts: SyncOptions,
    private readonly log: NonNullable<SyncOptions['log']>,
    private readonly sameServer: boolean,
  ) {
    this.ids = serverIdRange(config);
  }

  private get aborted(): boolean {
    return this.opts.signal?.aborted ?? false;
  }

  /** Binlog bytes from `p` to the server's current position: how far the stream is behind. */
  async lagBytes(p: Position): Promise<number | undefined> {
    const now = await currentPosition(this.conn, this.info.identity.flavour);
    return bytesBetween(p, now, await binlogSizes(this.conn));
  }

  /**
   * Re-reads a table's columns after DDL on it, so later row images are encoded with the new
   * column list. This reads the schema as it is now, which matches the binlog only while the
   * stream is close to the head (no schema history yet).
   */
  async reloadSchema(t: CapturedTable): Promise<void> {
    const schema = (await loadTableSchemas(this.conn, t.schema.db, [t.schema.table])).get(t.schema.table);
    if (!schema) return;
    t.schema = schema;
    this.snapshotTables.delete(t.name);
  }

  async tableFor(t: CapturedTable): Promise<SnapshotTable> {
    let st = this.snapshotTables.get(t.name);
    if (!st) {
      const keyColumns = keyColumnsOf(t.schema, t.chunkKey);
      st = snapshotTable(t.schema, keyColumns, await KeyOrder.create(this.conn, keyColumns));
      this.snapshotTables.set(t.name, st);
    }
    return st;
  }

  /**
   * The initial snapshot, before any streaming: every unfinished chunk, `parallelism` at a time,
   * split lazily as it goes. Later snapshots run inside the stream.
   */
  async snapshot(): Promise<void> {
    if (this.store.streamPosition() !== undefined) return;
    const progress = new Map(this.store.tables().map((p) => [p.name, p]));
    const todo = this.tables.filter((t) => progress.get(t.name)?.state === 'snapshotting');
    if (todo.length === 0) return;
    this.log('snapshot starting', { tables: todo.map((t) => t.name) });
    const started = Date.now();
    const queue = this.chunkSource(todo);
    const parallelism = this.config.snapshot.parallelism;
    const workers: Promise<void>[] = [];
    for (let w = 0; w < parallelism; w++) workers.push(this.chunkWorker(w, queue));
    await Promise.all(workers);
    await this.committer.drain();
    if (this.aborted) return;
    if (this.store.streamPosition() === undefined) {
      const hws = this.store.tables().flatMap((t) => this.store.chunks(t.name).map((c) => c.hw!));
      const start = minPosition(hws) ?? (await currentPosition(this.conn, this.info.identity.flavour));
      // With its GTID position the stream starts right there; without it, at the file's start to learn it.
      this.store.setStreamStart(this.info.identity.flavour === 'mariadb' ? await withMariadbGtid(this.conn, start) : start);
    }
    this.caughtUpTarget = await currentPosition(this.conn, this.info.identity.flavour);
    this.opts.observer?.snapshotFinished?.();
    this.log('snapshot complete', { seconds: (Date.now() - started) / 1000, rows: this.store.tables().reduce((n, t) => n + t.snapshotRows, 0) });
  }

  /** Hands out pending chunks one at a time; new bounds are computed and stored only when needed. */
  chunkSource(todo: CapturedTable[]): ChunkQueue {
    const self = this;
    const progress = new Map(this.store.tables().map((p) => [p.name, p]));
    async function* generate(): AsyncGenerator<{ table: CapturedTable; chunk: ChunkRecord }> {
      for (const t of todo) {
        const existing = self.store.chunks(t.name);
        for (const c of existing) if (c.status === 'pending') yield { table: t, chunk: c };
        const last = existing[existing.length - 1];
        if (last && last.hi === null) continue;
        const st = await self.tableFor(t);
        const splitter = await ChunkSplitter.create(
          self.conn,
          t.schema,
          st.keyColumns,
          self.config.snapshot.chunkSize,
          progress.get(t.name)?.rowsEstimate ?? 0,
        );
        let idx = existing.length;
        let lo = last ? last.hi : null;
        for (;;) {
          if (self.aborted) return;
          const hi = await splitter.nextBound(lo);
          self.store.addChunk(t.name, idx, lo, hi);
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

  chunkReported(table: string, rows: number): void {
    const t = this.store.tables().find((p) => p.name === table);
    this.opts.observer?.chunkDone?.(table, rows, this.store.doneChunks(table), t?.chunksTotal ?? null);
    this.opts.observer?.committed?.(undefined);
  }

  /**
   * Reads a chunk exact as of its high watermark and turns its rows into snapshot reads. A lost
   * connection is replaced and the chunk read again from its low watermark, a few times.
   */
  async readChunkEvents(
    link: SourceLink,
    table: CapturedTable,
    chunk: ChunkRecord,
    backfillServerId: number,
  ): Promise<{ events: ChangeEvent[]; result: ChunkRows }> {
    const st = await this.tableFor(table);
    const ctx = { flavour: this.info.identity.flavour, gtidMode: this.info.gtidMode, source: this.config.source };
    let result: ChunkRows;
    for (let attempt = 1; ; attempt++) {
      try {
        result = await readChunk(ctx, await link.get(), st, chunk, backfillServerId);
        break;
      } catch (err) {
        if (!isConnectionLoss(err) || attempt >= 5 || this.aborted) throw err;
        link.discard();
        this.opts.observer?.reconnected?.();
        this.log('source connection lost while reading a chunk; reading it again', { table: table.name, chunk: chunk.idx, error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
      }
    }
    const { db, table: name } = table.schema;
    const source = { file: result.hw.file, pos: result.hw.pos, gtid: null, serverId: 0, tsMs: Date.now(), snapshot: true };
    const { keys, rows } = result;
    const events = new Array<ChangeEvent>(rows.length);
    for (let i = 0; i < rows.length; i++) events[i] = { op: 'r', db, table: name, key: keys[i]!, before: null, after: rows[i]!, row: i, source };
    return { events, result };
  }

  private async chunkWorker(w: number, queue: ChunkQueue): Promise<void> {
    const link = new SourceLink(this.config.source);
    try {
      for (;;) {
        if (this.aborted) return;
        const item = await queue.next();
        if (item.done) return;
        const { table, chunk } = item.value;
        const read = await this.readAndCommit(link, table, chunk, this.ids.first + 1 + w);
        if (!read) return;
        await read.committed;
        this.chunkReported(table.name, read.rows);
        this.log('chunk done', { table: table.name, chunk: chunk.idx, rows: read.rows, backfilled: read.backfilled });
      }
    } finally {
      await link.end();
    }
  }

  /**
   * Reads a chunk and hands it to the committer; returns only counts, so the chunk worker holds none
   * of the rows while the commit runs (the committer lets them go once the sink has encoded them).
   */
  private async readAndCommit(
    link: SourceLink,
    table: CapturedTable,
    chunk: ChunkRecord,
    serverId: number,
  ): Promise<{ committed: Promise<void>; rows: number; backfilled: number } | undefined> {
    const { events, result } = await this.readChunkEvents(link, table, chunk, serverId);
    if (this.aborted) return undefined;
    const rows = events.length;
    const committed = this.committer.commit(events, { chunksDone: [{ table: table.name, idx: chunk.idx, lw: result.lw, hw: result.hw, rows }] });
    return { committed, rows, backfilled: result.backfilled };
  }

  async stream(): Promise<void> {
    const startPos = this.store.streamPosition();
    if (!startPos) throw new Error('no stream position after planning');
    const filter = new StreamFilter();
    const progress = new Map(this.store.tables().map((p) => [p.name, p]));
    for (const t of this.tables) {
      const p = progress.get(t.name);
      // A snapshot taken again is merged into the stream without a filter (see Streamer.finishPendingChunk).
      if (!p || p.again) continue;
      const chunks = this.store.chunks(t.name);
      const inProgress = p.state === 'snapshotting';
      if (chunks.length > 0 || inProgress) await filter.addTable(t.name, chunks, (await this.tableFor(t)).order, inProgress);
    }
    const streamer = new Streamer(this.config, this.store, this.info, this.committer, filter, this.tables, this, this.opts, this.log);
    streamer.resumeIncremental();
    // With nothing snapshotted in this run, "caught up" means: up to where the server was at start.
    const target = this.caughtUpTarget ?? (await currentPosition(this.conn, this.info.identity.flavour));
    await streamer.run(startPos, this.opts.untilCaughtUp ? target : undefined, this.sameServer);
  }
}
