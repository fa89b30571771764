import type { CheckpointStore } from '../checkpoint/store.js';
import { type Config, serverIdRange } from '../config/load.js';
import { isRetriable } from '../errors.js';
import type { ChangeEvent, EventSource } from '../events/event.js';
import { BinlogReader, type BinlogTransaction, type RowChange, type StartAt } from '../source/binlog.js';
import { comparePositions, formatPosition, type Position } from '../source/position.js';
import { type ServerInfo, SourceLink } from '../source/server.js';
import { keyOf, type SnapshotTable } from '../source/snapshot.js';
import type { Committer } from './committer.js';
import type { SyncOptions } from './connector.js';
import type { RunContext } from './run-context.js';
import type { StreamFilter } from './stream-filter.js';
import type { CapturedTable, ChunkDone, ChunkQueue } from './tables.js';

interface Resolved {
  name: string;
  table: CapturedTable;
  st: SnapshotTable;
}

/** Follows the binlog, turns transactions into events, and commits them in batches. */
export class Streamer {
  private batch: ChangeEvent[] = [];
  private batchEnd: Position | null = null;
  private batchSourceTsMs: number | undefined;
  private batchStartedMs = 0;
  private lastFlushMs = 0;
  private committedSinceStart = false;
  private lastLagProbeMs = 0;
  private queuedChanges = 0;
  private lastReceived: Position;
  private queue: (BinlogTransaction | Position)[] = [];
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private reader: BinlogReader | null = null;
  private readonly byName: Map<string, CapturedTable>;
  private readonly resolved = new Map<string, Resolved>();
  /** Tables being snapshotted while streaming, each with its lazily split chunks. */
  private readonly incremental: { table: CapturedTable; chunks: ChunkQueue; again: boolean }[] = [];
  /** A chunk of a snapshot taken again, held until the stream reaches its HW; rows by key JSON. */
  private pendingChunk: { table: string; hw: Position; done: ChunkDone; rows: Map<string, ChangeEvent> } | null = null;
  private batchChunksDone: ChunkDone[] = [];
  private snapshotLink: SourceLink | null = null;
  private lastChunkMs = 0;
  private lastRequestPollMs = 0;
  /** The last commit handed to the committer (see startCommit). */
  private committing: Promise<void> = Promise.resolve();
  private commitFailure: Error | null = null;

  constructor(
    private readonly config: Config,
    private readonly store: CheckpointStore,
    private readonly info: ServerInfo,
    private readonly committer: Committer,
    private readonly filter: StreamFilter,
    captured: CapturedTable[],
    private readonly tables: Pick<RunContext, 'tableFor' | 'reloadSchema' | 'chunkSource' | 'readChunkEvents' | 'chunkReported' | 'lagBytes'>,
    private readonly opts: SyncOptions,
    private readonly log: NonNullable<SyncOptions['log']>,
  ) {
    this.byName = new Map(captured.map((t) => [t.name, t]));
    this.lastReceived = { file: '', pos: 0 };
  }

  /**
   * Back-pressure on what is received but not yet committed, counted in row changes: one source
   * transaction can hold any number of them, so counting transactions would not bound memory.
   */
  private get backlogFull(): boolean {
    return this.queuedChanges > 20_000 || this.queue.length > 10_000;
  }

  private get backlogLow(): boolean {
    // Resumed well before the backlog runs dry, so the socket refills while the rest is processed.
    return this.queuedChanges < 10_000 && this.queue.length < 5000;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /**
   * Starts at the beginning of the resume file when no GTID position is stored, so zongji can
   * seed its GTID set from the file header; everything up to the resume point is skipped here.
   */
  private startAt(from: Position): StartAt {
    if (from.gtid !== undefined && this.info.gtidMode) return { gtidSet: from.gtid };
    return this.info.gtidMode ? { file: from.file, pos: 4 } : { file: from.file, pos: from.pos };
  }

  private async connect(from: Position): Promise<void> {
    const tables = [...this.byName.values()].map((t) => ({ db: t.schema.db, table: t.schema.table }));
    const reader = new BinlogReader({
      source: this.config.source,
      serverId: serverIdRange(this.config).first,
      start: this.startAt(from),
      tables,
      onTransaction: (tx) => this.push(tx),
      onPosition: (p) => this.push(p),
      onError: (err) => {
        this.failure = err;
        this.notify();
      },
    });
    this.reader = reader;
    await reader.start();
  }

  private push(item: BinlogTransaction | Position): void {
    this.queue.push(item);
    if ('changes' in item) this.queuedChanges += item.changes.length;
    // Back-pressure: stop reading the socket while a commit is slower than the binlog.
    if (this.backlogFull) this.reader?.pause();
    this.notify();
  }

  /** `sameServer` false: the checkpoint's file/pos belong to another server, only its GTIDs count. */
  async run(from: Position, target: Position | undefined, sameServer: boolean): Promise<void> {
    this.lastReceived = sameServer ? from : { file: 'any.000000', pos: 0 };
    await this.connect(from);
    this.log('streaming', { from: formatPosition(from) });
    this.opts.observer?.streaming?.();
    let reconnects = 0;
    const signal = this.opts.signal;
    const onAbort = () => this.notify();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (
          target &&
          this.incremental.length === 0 &&
          (sameServer || this.committedSinceStart) &&
          comparePositions(this.store.streamPosition()!, target) >= 0
        ) {
          this.log('caught up', { position: formatPosition(this.store.streamPosition()!) });
          return;
        }
        if (signal?.aborted) return;
        if (this.commitFailure) throw this.commitFailure;
        if (this.failure) {
          const err = this.failure;
          this.failure = null;
          if (!isRetriable(err)) throw err;
          this.reader?.stop();
          reconnects++;
          const delay = Math.min(30_000, 500 * 2 ** Math.min(reconnects, 6)) * (0.5 + Math.random() / 2);
          this.log('binlog connection lost; reconnecting', { error: err.message, delayMs: Math.round(delay) });
          this.opts.observer?.reconnected?.();
          await sleep(delay, signal);
          if (signal?.aborted) return;
          // The queue still holds what was received; resume right after it.
          await this.connect(this.lastReceived).catch((e: Error) => {
            this.failure = e;
          });
          continue;
        }
        if (Date.now() - this.lastRequestPollMs >= 1000) await this.pickUpSnapshotRequests();
        // One chunk at a time, between stretches of streaming, so the stream pauses for one chunk read at most.
        if (this.incremental.length > 0 && !this.pendingChunk && (this.queue.length === 0 || Date.now() - this.lastChunkMs >= 200)) {
          await this.snapshotNextChunk();
          continue;
        }
        const item = this.queue.shift();
        if (item && 'changes' in item) this.queuedChanges -= item.changes.length;
        if (item === undefined) {
          await this.flushIfDue(true);
          await new Promise<void>((resolve) => {
            this.wake = resolve;
            setTimeout(resolve, this.config.commit.maxDelayMs).unref();
          });
          continue;
        }
        if (this.backlogLow) this.reader?.resume();
        const end = 'end' in item ? item.end : item;
        // Starting at a file's beginning (to learn its GTIDs) or reconnecting replays what was already had.
        if (comparePositions(end, this.lastReceived) <= 0) continue;
        this.lastReceived = end;
        if ('end' in item) await this.addTransaction(item);
        else this.batchEnd = end;
        this.finishPendingChunkIfReached();
        if (this.batch.length === 0 && this.batchEnd) this.batchStartedMs ||= Date.now();
        await this.flushIfDue(false);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.reader?.stop();
      await this.flush();
      await this.snapshotLink?.end();
    }
  }

  /** Tables left snapshotting by an earlier run, or new in the config, continue inside the stream. */
  resumeIncremental(): void {
    for (const p of this.store.tables()) {
      const table = this.byName.get(p.name);
      if (table && p.state === 'snapshotting') this.startIncremental(table, p.again);
    }
  }

  private startIncremental(table: CapturedTable, again: boolean): void {
    this.log('snapshot while streaming starting', { table: table.name, again });
    this.incremental.push({ table, chunks: this.tables.chunkSource([table]), again });
  }

  /** `tidemark snapshot` requests, polled from the checkpoint while running. */
  private async pickUpSnapshotRequests(): Promise<void> {
    this.lastRequestPollMs = Date.now();
    for (const name of this.store.snapshotRequests()) {
      const table = this.byName.get(name);
      // A table still inside its previous snapshot's hand-off finishes that first.
      if (!table || this.incremental.some((i) => i.table.name === name) || this.filter.needsLookup(name, this.lastReceived)) continue;
      await this.flush();
      this.store.restartTableSnapshot(name, table.chunkKey, this.store.tables().find((t) => t.name === name)?.rowsEstimate ?? null, true);
      this.startIncremental(table, true);
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
  private async snapshotNextChunk(): Promise<void> {
    const current = this.incremental[0]!;
    await this.flush();
    this.reader?.pause();
    try {
      const item = await current.chunks.next();
      if (item.done) {
        this.incremental.shift();
        this.filter.finishTable(current.table.name);
        this.log('snapshot while streaming complete', { table: current.table.name });
        return;
      }
      const { table, chunk } = item.value;
      this.snapshotLink ??= new SourceLink(this.config.source);
      let read = await this.tables.readChunkEvents(this.snapshotLink, table, chunk, serverIdRange(this.config).first + 1);
      // MariaDB's snapshot position can trail a commit the stream already delivered by an instant.
      for (let i = 0; i < 50 && comparePositions(read.result.lw, this.lastReceived) < 0; i++) {
        await sleep(20);
        read = await this.tables.readChunkEvents(this.snapshotLink, table, chunk, serverIdRange(this.config).first + 1);
      }
      const { events, result } = read;
      const done = { table: table.name, idx: chunk.idx, lw: result.lw, hw: result.hw, rows: events.length };
      if (current.again) {
        this.pendingChunk = { table: table.name, hw: result.hw, done, rows: new Map(events.map((e) => [e.key, e])) };
        this.finishPendingChunkIfReached();
        return;
      }
      await this.committer.commit(events, { chunksDone: [done] });
      await this.filter.addChunk(
        table.name,
        { ...chunk, status: 'done', lw: result.lw, hw: result.hw, rows: events.length },
        (await this.tables.tableFor(table)).order,
      );
      this.tables.chunkReported(table.name, events.length);
      this.log('chunk done', { table: table.name, chunk: chunk.idx, rows: events.length, backfilled: result.backfilled, whileStreaming: true });
    } finally {
      this.lastChunkMs = Date.now();
      if (this.backlogLow) this.reader?.resume();
    }
  }

  /** Once the stream has passed the held chunk's HW, its untouched rows join the batch with its done record. */
  private finishPendingChunkIfReached(): void {
    const p = this.pendingChunk;
    if (!p || comparePositions(this.lastReceived, p.hw) < 0) return;
    this.pendingChunk = null;
    const events = [...p.rows.values()];
    if (events.length > 0 && this.batch.length === 0) this.batchStartedMs = Date.now();
    for (const e of events) this.batch.push(e);
    this.batchChunksDone.push({ ...p.done, rows: events.length });
    this.batchEnd ??= this.lastReceived;
    this.log('chunk done', { table: p.table, chunk: p.done.idx, rows: events.length, whileStreaming: true, again: true });
  }

  /** The captured table and its encoders for a change; resolved once per table, not per row. */
  private async resolve(db: string, table: string): Promise<Resolved | undefined> {
    const name = `${db}.${table}`;
    const cached = this.resolved.get(name);
    if (cached) return cached;
    const captured = this.byName.get(name);
    if (!captured) return undefined;
    const r = { name, table: captured, st: await this.tables.tableFor(captured) };
    this.resolved.set(name, r);
    return r;
  }

  private async addTransaction(tx: BinlogTransaction): Promise<void> {
    const events: ChangeEvent[] = [];
    const source: EventSource = { file: tx.end.file, pos: tx.end.pos, gtid: tx.gtid, serverId: this.info.serverId, tsMs: tx.tsMs, snapshot: false };
    let row = 0;
    for (const t of tx.truncates) events.push({ op: 't', db: t.db, table: t.table, key: '{}', before: null, after: null, row: row++, source });
    // The captured changes, each with its table (resolved once per run of changes to one table).
    const changes: RowChange[] = [];
    const tables: Resolved[] = [];
    let last: Resolved | undefined;
    for (const c of tx.changes) {
      const r = last && last.table.schema.db === c.db && last.table.schema.table === c.table ? last : await this.resolve(c.db, c.table);
      if (!r) continue;
      last = r;
      changes.push(c);
      tables.push(r);
    }
    const pending = this.pendingChunk;
    if (pending && comparePositions(tx.end, pending.hw) <= 0) {
      // Changed between T and the held chunk's HW: the stream carries these keys, the chunk must not.
      if (tx.truncates.some((t) => `${t.db}.${t.table}` === pending.table)) pending.rows.clear();
      for (let i = 0; i < changes.length; i++) {
        const { name, st } = tables[i]!;
        if (name !== pending.table) continue;
        const { before, after } = changes[i]!;
        if (before) pending.rows.delete(st.binlogKey(before));
        if (after) pending.rows.delete(st.binlogKey(after));
      }
    }
    const filtering = this.filter.active;
    if (filtering) {
      const keysByTable = new Map<string, unknown[][]>();
      for (let i = 0; i < changes.length; i++) {
        const { name, st } = tables[i]!;
        if (!this.filter.needsLookup(name, tx.end)?.needsPrepare) continue;
        const keys = keysByTable.get(name) ?? [];
        for (const r of [changes[i]!.before, changes[i]!.after]) if (r) keys.push(keyOf(r, st.keyColumns, 'binlog'));
        keysByTable.set(name, keys);
      }
      for (const [name, keys] of keysByTable) await this.filter.needsLookup(name, tx.end)?.prepare(keys);
    }
    const pass = (name: string, st: SnapshotTable, raw: Record<string, unknown>) =>
      !filtering || this.filter.passes(name, keyOf(raw, st.keyColumns, 'binlog'), tx.end);
    for (let i = 0; i < changes.length; i++) {
      const { name, st } = tables[i]!;
      const { db, table } = st.schema;
      const { before, after } = changes[i]!;
      if (before && after) {
        const oldKey = st.binlogKey(before);
        const newKey = st.binlogKey(after);
        // Canonical key text is equal exactly when every key value is.
        if (oldKey === newKey) {
          if (pass(name, st, after))
            events.push({ op: 'u', db, table, key: newKey, before: st.binlogRow(before), after: st.binlogRow(after), row: row++, source });
        } else {
          // A key change is a delete of the old key and a create of the new one, each judged on its own chunk.
          if (pass(name, st, before)) events.push({ op: 'd', db, table, key: oldKey, before: st.binlogRow(before), after: null, row: row++, source });
          if (pass(name, st, after)) events.push({ op: 'c', db, table, key: newKey, before: null, after: st.binlogRow(after), row: row++, source });
        }
      } else if (after) {
        if (pass(name, st, after)) events.push({ op: 'c', db, table, key: st.binlogKey(after), before: null, after: st.binlogRow(after), row: row++, source });
      } else if (before) {
        if (pass(name, st, before))
          events.push({ op: 'd', db, table, key: st.binlogKey(before), before: st.binlogRow(before), after: null, row: row++, source });
      }
    }
    if (tx.ddl.length > 0) await this.refreshSchemas(tx);
    if (events.length > 0 && this.batch.length === 0) this.batchStartedMs = Date.now();
    for (const e of events) this.batch.push(e);
    this.batchEnd = tx.end;
    this.batchSourceTsMs = tx.tsMs;
  }

  /** DDL on a captured table: later row images follow the new column list. */
  private async refreshSchemas(tx: BinlogTransaction): Promise<void> {
    for (const d of tx.ddl) {
      for (const t of this.byName.values()) {
        if (t.schema.db !== d.db && !d.sql.includes(t.schema.db)) continue;
        if (!new RegExp(`\\b${t.schema.table.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(d.sql)) continue;
        this.log('schema change', { table: t.name, sql: d.sql.slice(0, 200) });
        await this.tables.reloadSchema(t);
        this.resolved.delete(t.name);
      }
    }
  }

  private async flushIfDue(idle: boolean): Promise<void> {
    if (!this.batchEnd) return;
    const now = Date.now();
    const due =
      this.batch.length >= this.config.commit.maxRecords ||
      (this.batchStartedMs > 0 && now - this.batchStartedMs >= this.config.commit.maxDelayMs) ||
      // A position with no captured change (heartbeats, other tables) is checkpointed at a calm pace.
      (idle && this.batch.length === 0 && now - this.lastFlushMs >= Math.max(1000, this.config.commit.maxDelayMs));
    if (due) await this.startCommit();
  }

  /** Commits the batch and waits until every commit asked for is done. */
  private async flush(): Promise<void> {
    await this.startCommit();
    await this.committing;
  }

  /**
   * Hands the batch to the committer without waiting for it to finish, so the stream fills the next
   * batch while the sink writes this one. At most one commit is in flight: the next waits for it, and
   * a failed commit fails the next call here (or flush), which ends the run.
   */
  private async startCommit(): Promise<void> {
    if (!this.batchEnd) return;
    await this.committing;
    const events = this.batch;
    const end = this.batchEnd;
    const sourceTsMs = this.batchSourceTsMs;
    const chunksDone = this.batchChunksDone;
    this.batch = [];
    this.batchEnd = null;
    this.batchChunksDone = [];
    this.batchSourceTsMs = undefined;
    this.batchStartedMs = 0;
    this.lastFlushMs = Date.now();
    const update = { stream: end, ...(sourceTsMs === undefined ? {} : { sourceTsMs }), ...(chunksDone.length > 0 ? { chunksDone } : {}) };
    // Counted now, so the events can be collected while the sink writes them.
    const byOp = new Map<string, number>();
    if (this.opts.observer) for (const e of events) if (!e.source.snapshot) byOp.set(e.op, (byOp.get(e.op) ?? 0) + 1);
    this.committing = this.committer.commit(events, update).then(() => this.committed(byOp, end, sourceTsMs, chunksDone));
    // A failed commit ends the run at once, even when no further change comes to trigger the next commit.
    this.committing.catch((err: Error) => {
      this.commitFailure = err;
      this.notify();
    });
  }

  private async committed(byOp: Map<string, number>, end: Position, sourceTsMs: number | undefined, chunksDone: ChunkDone[]): Promise<void> {
    this.committedSinceStart = true;
    const observer = this.opts.observer;
    if (!observer) return;
    for (const [op, n] of byOp) observer.streamed?.(op, n);
    // Asking the server costs a round trip: lag in bytes is refreshed every few seconds, not per commit.
    let bytes: number | undefined;
    if (Date.now() - this.lastLagProbeMs >= 5000) {
      this.lastLagProbeMs = Date.now();
      bytes = await this.tables.lagBytes(end).catch(() => undefined);
    }
    observer.committed?.(sourceTsMs, bytes);
    for (const c of chunksDone) this.tables.chunkReported(c.table, c.rows);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}
