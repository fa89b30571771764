import { MariadbGtidPosition } from '@vlasky/zongji';
import type { Connection } from 'mysql2/promise';
import { CheckpointStore, type CheckpointUpdate, type ChunkRecord } from '../checkpoint/store.js';
import { matchTables, type Config } from '../config/load.js';
import { serverIdRange } from '../config/load.js';
import { DebeziumEncoder } from '../events/debezium.js';
import type { ChangeEvent } from '../events/event.js';
import { BinlogReader, type BinlogTransaction, type StartAt } from '../source/binlog.js';
import { ChunkSplitter, keyColumnsOf } from '../source/chunker.js';
import { KeyOrder } from '../source/key-order.js';
import { comparePositions, formatPosition, minPosition, type Position } from '../source/position.js';
import { loadTableSchemas, type TableSchema } from '../source/schema.js';
import { binlogFiles, connect, currentPosition, inspectServer, listTables, SourceError, type ServerInfo } from '../source/server.js';
import { keyOf, readChunk, snapshotTable, type ChunkRows, type SnapshotTable } from '../source/snapshot.js';
import { JsonlSink } from '../sink/jsonl.js';
import { KafkaSink } from '../sink/kafka.js';
import type { Sink } from '../sink/sink.js';
import { StdoutSink } from '../sink/stdout.js';
import { Committer } from './committer.js';
import type { SyncObserver } from '../ops/observer.js';
import { StreamFilter } from './stream-filter.js';

export interface SyncOptions {
  untilCaughtUp?: boolean;
  signal?: AbortSignal;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  observer?: SyncObserver;
}

export function createSink(config: Config): Sink {
  switch (config.sink.type) {
    case 'jsonl':
      return new JsonlSink(config.sink.path);
    case 'stdout':
      return new StdoutSink();
    case 'kafka':
      return new KafkaSink(config.name, config.sink);
  }
}

const tableName = (s: { db: string; table: string }) => `${s.db}.${s.table}`;

/** Runs a connector: snapshot what needs it, then stream, until stopped (or caught up). */
export async function runSync(config: Config, opts: SyncOptions = {}): Promise<void> {
  const log = opts.log ?? (() => {});
  const conn = await connect(config.source);
  let store: CheckpointStore | undefined;
  const sink = createSink(config);
  try {
    // Everything that can refuse the source runs before the checkpoint or the sink is touched.
    const info = await inspectServer(conn);
    const tables = await resolveTables(conn, config);
    store = CheckpointStore.open(config.checkpoint.path);
    const sameServer = await checkIdentity(conn, store, info, log);
    const committer = new Committer(store, sink, new DebeziumEncoder({ name: config.name, tombstones: config.sink.tombstones }));
    await committer.recover();
    store.setSourceIdentity(info.identity);

    await planTables(conn, config, store, info, tables, log);
    const planned = store.tables();
    opts.observer?.tablesPlanned?.(
      planned.map((t) => ({ name: t.name, rowsEstimate: t.rowsEstimate, rowsDone: t.snapshotRows, chunksDone: store!.doneChunks(t.name), chunksTotal: t.chunksTotal })),
    );
    const ctx = new RunContext(config, conn, store, info, tables, committer, opts, log, sameServer);
    await ctx.snapshot();
    if (opts.signal?.aborted) return;
    if (config.snapshot.mode === 'initial_only') {
      log('snapshot complete (snapshot.mode initial_only): exiting');
      return;
    }
    await ctx.stream();
  } finally {
    await sink.close();
    store?.close();
    await conn.end().catch(() => {});
  }
}

/**
 * Refuses to resume against a different server unless the stored GTID position is valid there
 * (a failover within one replication topology: every stored GTID is executed on the new server).
 * Returns whether the checkpoint's binlog file/positions refer to this server.
 */
async function checkIdentity(conn: Connection, store: CheckpointStore, info: ServerInfo, log: NonNullable<SyncOptions['log']>): Promise<boolean> {
  const stored = store.sourceIdentity();
  if (!stored) return true;
  if (stored.flavour === info.identity.flavour && stored.serverId === info.identity.serverId) return true;
  const gtid = store.streamPosition()?.gtid;
  if (stored.flavour === info.identity.flavour && gtid && (await gtidsExecutedOn(conn, info.identity.flavour, gtid))) {
    log('source server changed; resuming by GTID position', { was: stored.serverId, now: info.identity.serverId });
    return false;
  }
  throw new SourceError(
    `the checkpoint belongs to ${stored.flavour} server ${stored.serverId}, but the source is ${info.identity.flavour} server ${info.identity.serverId}, ` +
      'and the checkpoint has no GTID position that this server has executed. Point source at the original server, or run `tidemark reset` (or use a new checkpoint.path) to start over.',
  );
}

async function gtidsExecutedOn(conn: Connection, flavour: 'mysql' | 'mariadb', gtid: string): Promise<boolean> {
  if (flavour === 'mysql') {
    const [rows] = await conn.query({ sql: 'SELECT GTID_SUBSET(?, @@GLOBAL.gtid_executed)', rowsAsArray: true }, [gtid]);
    return Number((rows as unknown[][])[0]![0]) === 1;
  }
  const [rows] = await conn.query({ sql: 'SELECT @@GLOBAL.gtid_binlog_pos', rowsAsArray: true });
  const here = MariadbGtidPosition.parse(String((rows as unknown[][])[0]![0]));
  return gtid.split(',').filter((g) => g !== '').every((g) => here.covers(g));
}

type ChunkDone = NonNullable<CheckpointUpdate['chunksDone']>[number];

type ChunkQueue = { next(): Promise<IteratorResult<{ table: CapturedTable; chunk: ChunkRecord }>> };

interface CapturedTable {
  name: string;
  /** Replaced when DDL changes the table. */
  schema: TableSchema;
  chunkKey: string[];
}

async function resolveTables(conn: Connection, config: Config): Promise<CapturedTable[]> {
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

async function checkChunkKey(conn: Connection, schema: TableSchema, key: string[]): Promise<void> {
  const name = tableName(schema);
  for (const k of key) {
    const col = schema.columns.find((c) => c.name === k);
    if (!col) throw new SourceError(`snapshot.chunkKey.${name}: ${name} has no column ${k}`);
    if (col.nullable) throw new SourceError(`snapshot.chunkKey.${name}: column ${k} is nullable; a chunk key must be NOT NULL`);
  }
  const [rows] = await conn.query(
    `SELECT INDEX_NAME, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS cols FROM INFORMATION_SCHEMA.STATISTICS
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 GROUP BY INDEX_NAME`,
    [schema.db, schema.table],
  );
  const unique = (rows as { cols: string }[]).some((r) => r.cols === key.join(','));
  if (!unique) throw new SourceError(`snapshot.chunkKey.${name}: (${key.join(', ')}) is not a unique index of ${name}; create one or choose columns that have one`);
}

/** Decides, from the checkpoint and the snapshot mode, what each table needs and where the stream starts. */
async function planTables(
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
  const hws = store.tables().flatMap((t) => store.chunks(t.name).map((c) => c.hw).filter((h): h is Position => h !== null));
  return minPosition(hws)?.file;
}

async function rowEstimates(conn: Connection, tables: CapturedTable[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const t of tables) {
    const [rows] = await conn.query('SELECT TABLE_ROWS AS n FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [t.schema.db, t.schema.table]);
    out.set(t.name, Number((rows as { n: number | string | null }[])[0]?.n ?? 0));
  }
  return out;
}

class RunContext {
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

  /** Reads every unfinished chunk, `parallelism` at a time, splitting lazily as it goes. */
  /** The initial snapshot, before any streaming; later snapshots run inside the stream. */
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
      this.store.setStreamStart({ file: start.file, pos: start.pos });
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
        const splitter = await ChunkSplitter.create(self.conn, t.schema, st.keyColumns, self.config.snapshot.chunkSize, progress.get(t.name)?.rowsEstimate ?? 0);
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

  /** Reads a chunk exact as of its high watermark and turns its rows into snapshot reads. */
  async readChunkEvents(conn: Connection, table: CapturedTable, chunk: ChunkRecord, backfillServerId: number): Promise<{ events: ChangeEvent[]; result: ChunkRows }> {
    const st = await this.tableFor(table);
    const result = await readChunk({ flavour: this.info.identity.flavour, gtidMode: this.info.gtidMode, source: this.config.source }, conn, st, chunk, backfillServerId);
    const now = Date.now();
    const events: ChangeEvent[] = result.rows.map((row, i) => ({
      op: 'r',
      db: table.schema.db,
      table: table.schema.table,
      key: keyObject(row, table.chunkKey),
      before: null,
      after: row,
      source: { file: result.hw.file, pos: result.hw.pos, row: i, gtid: null, serverId: 0, tsMs: now, snapshot: true, txId: null },
    }));
    return { events, result };
  }

  private async chunkWorker(w: number, queue: ChunkQueue): Promise<void> {
    const conn = await connect(this.config.source);
    try {
      for (;;) {
        if (this.aborted) return;
        const item = await queue.next();
        if (item.done) return;
        const { table, chunk } = item.value;
        const { events, result } = await this.readChunkEvents(conn, table, chunk, this.ids.first + 1 + w);
        if (this.aborted) return;
        await this.committer.commit(events, { chunksDone: [{ table: table.name, idx: chunk.idx, lw: result.lw, hw: result.hw, rows: events.length }] });
        this.chunkReported(table.name, events.length);
        this.log('chunk done', { table: table.name, chunk: chunk.idx, rows: events.length, backfilled: result.backfilled });
      }
    } finally {
      await conn.end().catch(() => {});
    }
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

function keyObject(row: Record<string, unknown>, key: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of key) out[k] = row[k];
  return out;
}

/** Follows the binlog, turns transactions into events, and commits them in batches. */
class Streamer {
  private batch: ChangeEvent[] = [];
  private batchEnd: Position | null = null;
  private batchSourceTsMs: number | undefined;
  private batchStartedMs = 0;
  private lastFlushMs = 0;
  private committedSinceStart = false;
  private lastReceived: Position;
  private queue: (BinlogTransaction | Position)[] = [];
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private reader: BinlogReader | null = null;
  private readonly byName: Map<string, CapturedTable>;
  /** Tables being snapshotted while streaming, each with its lazily split chunks. */
  private readonly incremental: { table: CapturedTable; chunks: ChunkQueue; again: boolean }[] = [];
  /** A chunk of a snapshot taken again, held until the stream reaches its HW; rows by key. */
  private pendingChunk: { table: string; hw: Position; done: ChunkDone; rows: Map<string, ChangeEvent> } | null = null;
  private batchChunksDone: ChunkDone[] = [];
  private snapshotConn: Connection | null = null;
  private lastChunkMs = 0;
  private lastRequestPollMs = 0;

  constructor(
    private readonly config: Config,
    private readonly store: CheckpointStore,
    private readonly info: ServerInfo,
    private readonly committer: Committer,
    private readonly filter: StreamFilter,
    captured: CapturedTable[],
    private readonly tables: Pick<RunContext, 'tableFor' | 'reloadSchema' | 'chunkSource' | 'readChunkEvents' | 'chunkReported'>,
    private readonly opts: SyncOptions,
    private readonly log: NonNullable<SyncOptions['log']>,
  ) {
    this.byName = new Map(captured.map((t) => [t.name, t]));
    this.lastReceived = { file: '', pos: 0 };
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
    // Back-pressure: stop reading the socket while a commit is slower than the binlog.
    if (this.queue.length > 5000) this.reader?.pause();
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
        if (target && this.incremental.length === 0 && (sameServer || this.committedSinceStart) && comparePositions(this.store.streamPosition()!, target) >= 0) {
          this.log('caught up', { position: formatPosition(this.store.streamPosition()!) });
          return;
        }
        if (signal?.aborted) return;
        if (this.failure) {
          const err = this.failure;
          this.failure = null;
          if (err instanceof SourceError) throw err;
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
        if (item === undefined) {
          await this.flushIfDue(true);
          await new Promise<void>((resolve) => {
            this.wake = resolve;
            setTimeout(resolve, this.config.commit.maxDelayMs).unref();
          });
          continue;
        }
        if (this.queue.length < 1000) this.reader?.resume();
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
      await this.snapshotConn?.end().catch(() => {});
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
      this.snapshotConn ??= await connect(this.config.source);
      let read = await this.tables.readChunkEvents(this.snapshotConn, table, chunk, serverIdRange(this.config).first + 1);
      // MariaDB's snapshot position can trail a commit the stream already delivered by an instant.
      for (let i = 0; i < 50 && comparePositions(read.result.lw, this.lastReceived) < 0; i++) {
        await sleep(20);
        read = await this.tables.readChunkEvents(this.snapshotConn, table, chunk, serverIdRange(this.config).first + 1);
      }
      const { events, result } = read;
      const done = { table: table.name, idx: chunk.idx, lw: result.lw, hw: result.hw, rows: events.length };
      if (current.again) {
        const st = await this.tables.tableFor(table);
        this.pendingChunk = { table: table.name, hw: result.hw, done, rows: new Map(events.map((e) => [JSON.stringify(keyOf(e.after!, st.keyColumns)), e])) };
        this.finishPendingChunkIfReached();
        return;
      }
      await this.committer.commit(events, { chunksDone: [done] });
      await this.filter.addChunk(table.name, { ...chunk, status: 'done', lw: result.lw, hw: result.hw, rows: events.length }, (await this.tables.tableFor(table)).order);
      this.tables.chunkReported(table.name, events.length);
      this.log('chunk done', { table: table.name, chunk: chunk.idx, rows: events.length, backfilled: result.backfilled, whileStreaming: true });
    } finally {
      this.lastChunkMs = Date.now();
      if (this.queue.length < 1000) this.reader?.resume();
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

  private async addTransaction(tx: BinlogTransaction): Promise<void> {
    const events: ChangeEvent[] = [];
    const base = { file: tx.end.file, pos: tx.end.pos, gtid: tx.gtid, serverId: this.info.serverId, tsMs: tx.tsMs, snapshot: false, txId: tx.gtid };
    let row = 0;
    for (const t of tx.truncates) {
      events.push({ op: 't', db: t.db, table: t.table, key: {}, before: null, after: null, source: { ...base, row: row++ } });
    }
    const encoded: { name: string; table: CapturedTable; st: SnapshotTable; before: Record<string, unknown> | null; after: Record<string, unknown> | null }[] = [];
    for (const c of tx.changes) {
      const name = `${c.db}.${c.table}`;
      const table = this.byName.get(name);
      if (!table) continue;
      const st = await this.tables.tableFor(table);
      encoded.push({ name, table, st, before: c.before && st.encodeBinlogRow(c.before), after: c.after && st.encodeBinlogRow(c.after) });
    }
    const pending = this.pendingChunk;
    if (pending && comparePositions(tx.end, pending.hw) <= 0) {
      // Changed between T and the held chunk's HW: the stream carries these keys, the chunk must not.
      if (tx.truncates.some((t) => `${t.db}.${t.table}` === pending.table)) pending.rows.clear();
      for (const e of encoded) {
        if (e.name !== pending.table) continue;
        for (const r of [e.before, e.after]) if (r) pending.rows.delete(JSON.stringify(keyOf(r, e.st.keyColumns)));
      }
    }
    if (this.filter.active) {
      const keysByTable = new Map<string, unknown[][]>();
      for (const e of encoded) {
        const order = this.filter.needsLookup(e.name, tx.end);
        if (!order?.needsPrepare) continue;
        const keys = keysByTable.get(e.name) ?? [];
        for (const r of [e.before, e.after]) if (r) keys.push(keyOf(r, e.st.keyColumns));
        keysByTable.set(e.name, keys);
      }
      for (const [name, keys] of keysByTable) await this.filter.needsLookup(name, tx.end)?.prepare(keys);
    }
    for (const e of encoded) {
      const { db, table } = e.table.schema;
      const keyCols = e.table.chunkKey;
      const pass = (r: Record<string, unknown>) => this.filter.passes(e.name, keyOf(r, e.st.keyColumns), tx.end);
      const ev = (op: ChangeEvent['op'], before: Record<string, unknown> | null, after: Record<string, unknown> | null): ChangeEvent => ({
        op, db, table, key: keyObject((after ?? before)!, keyCols), before, after, source: { ...base, row: row++ },
      });
      if (e.before && e.after) {
        const oldKey = keyObject(e.before, keyCols);
        const newKey = keyObject(e.after, keyCols);
        if (JSON.stringify(oldKey) === JSON.stringify(newKey)) {
          if (pass(e.after)) events.push(ev('u', e.before, e.after));
        } else {
          // A key change is a delete of the old key and a create of the new one, each judged on its own chunk.
          if (pass(e.before)) events.push(ev('d', e.before, null));
          if (pass(e.after)) events.push(ev('c', null, e.after));
        }
      } else if (e.after) {
        if (pass(e.after)) events.push(ev('c', null, e.after));
      } else if (e.before) {
        if (pass(e.before)) events.push(ev('d', e.before, null));
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
      (idle && this.batch.length === 0 && now - this.lastFlushMs >= this.config.commit.maxDelayMs);
    if (due) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.batchEnd) return;
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
    await this.committer.commit(events, {
      stream: end,
      ...(sourceTsMs === undefined ? {} : { sourceTsMs }),
      ...(chunksDone.length > 0 ? { chunksDone } : {}),
    });
    const observer = this.opts.observer;
    if (observer) {
      const byOp = new Map<string, number>();
      for (const e of events) if (!e.source.snapshot) byOp.set(e.op, (byOp.get(e.op) ?? 0) + 1);
      for (const [op, n] of byOp) observer.streamed?.(op, n);
      observer.committed?.(sourceTsMs);
      for (const c of chunksDone) this.tables.chunkReported(c.table, c.rows);
    }
    this.committedSinceStart = true;
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
