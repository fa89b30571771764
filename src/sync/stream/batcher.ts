import type { CheckpointUpdate, SchemaVersion } from '../../checkpoint/store.js';
import type { ChangeEvent } from '../../events/event.js';
import { crashPoint } from '../../faults.js';
import type { Position } from '../../source/position.js';
import type { Committer } from '../committer.js';

export type ChunkDone = NonNullable<CheckpointUpdate['chunksDone']>[number];

export interface TransactionExtras {
  restart?: Position | undefined;
  truncated?: string[];
  schemaVersions?: SchemaVersion[];
}

/**
 * A transaction too large to hold is written to the sink ahead of its commit once this many of its events (with
 * those batched before it) are in hand: the memory a transaction takes is bounded by this, not by its size.
 */
export const PART_EVENTS = 10_000;

export interface CommitLimits {
  /** A commit is due at this many events ... */
  maxRecords: number;
  /** ... or this long after the batch's first event, whichever first. */
  maxDelayMs: number;
}

/** What a finished commit held, for metrics and progress. */
export interface CommitSummary {
  end: Position;
  sourceTsMs: number | undefined;
  chunksDone: ChunkDone[];
  /** Streamed events per op (snapshot reads not counted); empty unless asked for. */
  byOp: Map<string, number>;
}

/**
 * Whether the batch in hand is to be committed now. A commit holds whole source transactions (a large one's
 * events may have gone to the sink ahead of it, see Batcher.addPart), so the record limit can be passed by one. A position with no
 * captured change (heartbeats, other tables) is checkpointed at a calm pace while the stream is idle.
 */
export function commitDue(
  batch: { records: number; startedMs: number; hasEnd: boolean },
  lastCommitMs: number,
  now: number,
  idle: boolean,
  limits: CommitLimits,
): boolean {
  if (!batch.hasEnd) return false;
  return (
    batch.records >= limits.maxRecords ||
    (batch.startedMs > 0 && now - batch.startedMs >= limits.maxDelayMs) ||
    (idle && batch.records === 0 && now - lastCommitMs >= Math.max(1000, limits.maxDelayMs))
  );
}

/**
 * Cuts the stream into sink commits. The next batch fills while the previous commit is written; at most
 * one commit is in flight, and a failed commit is kept in `failure` and ends the run at once, even when no
 * further change comes to trigger the next commit.
 */
export class Batcher {
  private events: ChangeEvent[] = [];
  private end: Position | null = null;
  private restart: Position | undefined;
  private sourceTsMs: number | undefined;
  private startedMs = 0;
  private lastCommitMs = 0;
  private chunksDone: ChunkDone[] = [];
  private truncates: { table: string; at: Position }[] = [];
  private schemaVersions: SchemaVersion[] = [];
  private committing: Promise<void> = Promise.resolve();
  /** A transaction's parts are coming in (addPart): no commit until its end is added. */
  private inTransaction = false;

  failure: Error | null = null;
  /** Whether any commit of this run has finished. */
  committedSinceStart = false;

  constructor(
    private readonly committer: Committer,
    private readonly limits: CommitLimits,
    private readonly hooks: { countOps: boolean; committed(summary: CommitSummary): Promise<void> | void; failed(): void },
  ) {}

  /**
   * A whole transaction's events (possibly none left after filtering), ending at `end`; `restart` as in
   * BinlogTransaction; `truncated` names the tables it truncated, `schemaVersions` the column versions its DDL began.
   */
  addTransaction(events: ChangeEvent[], end: Position, sourceTsMs: number, extra: TransactionExtras = {}): void {
    const { restart, truncated = [], schemaVersions = [] } = extra;
    this.inTransaction = false;
    this.addEvents(events);
    for (const table of truncated) this.truncates.push({ table, at: end });
    for (const v of schemaVersions) this.schemaVersions.push(v);
    this.end = end;
    this.restart = restart;
    this.sourceTsMs = sourceTsMs;
    this.startClockIfEmpty();
  }

  /**
   * Events of a transaction whose end comes later (addTransaction). Once the batch holds PART_EVENTS, they go to the
   * sink ahead of the commit when the sink can take them so (Committer.writesParts); they become visible with it.
   */
  async addPart(events: ChangeEvent[]): Promise<void> {
    this.inTransaction = true;
    this.addEvents(events);
    if (this.events.length < PART_EVENTS || !this.committer.writesParts) return;
    await this.committing;
    const part = this.events;
    this.events = [];
    await this.committer.writePart(part);
    crashPoint('transaction-part');
  }

  /** A transaction boundary reached with nothing captured. */
  addPosition(p: Position, restart?: Position): void {
    this.end = p;
    this.restart = restart;
    this.startClockIfEmpty();
  }

  /** A chunk read while streaming, merged into the stream at position `at` (its HW has been passed). */
  addChunk(events: ChangeEvent[], done: ChunkDone, at: Position): void {
    this.addEvents(events);
    this.chunksDone.push(done);
    this.end ??= at;
    this.startClockIfEmpty();
  }

  async flushIfDue(idle: boolean): Promise<void> {
    const batch = { records: this.events.length, startedMs: this.startedMs, hasEnd: this.end !== null && !this.inTransaction };
    if (commitDue(batch, this.lastCommitMs, Date.now(), idle, this.limits)) await this.startCommit();
  }

  /**
   * Commits the batch and waits until every commit asked for is done. A batch stopped inside a transaction's parts
   * (an error, or a stop, before its end) is not committed: it holds part of a transaction, and what went to the sink
   * of it is undone by the sink's next start (Sink.writePart).
   */
  async flush(): Promise<void> {
    if (!this.inTransaction) await this.startCommit();
    await this.committing;
  }

  private addEvents(events: ChangeEvent[]): void {
    if (events.length > 0 && this.events.length === 0) this.startedMs = Date.now();
    for (const e of events) this.events.push(e);
  }

  /** A batch of positions only is due after maxDelayMs like any other. */
  private startClockIfEmpty(): void {
    if (this.events.length === 0 && this.end) this.startedMs ||= Date.now();
  }

  /** Hands the batch to the committer without waiting for it to finish (see the class comment). */
  private async startCommit(): Promise<void> {
    if (!this.end) return;
    await this.committing;
    const events = this.events;
    const end = this.end;
    const sourceTsMs = this.sourceTsMs;
    const chunksDone = this.chunksDone;
    const truncates = this.truncates;
    this.truncates = [];
    const schemaVersions = this.schemaVersions;
    this.schemaVersions = [];
    this.events = [];
    this.end = null;
    this.chunksDone = [];
    this.sourceTsMs = undefined;
    this.startedMs = 0;
    this.lastCommitMs = Date.now();
    const update = {
      stream: end,
      restart: this.restart ?? null,
      ...(sourceTsMs === undefined ? {} : { sourceTsMs }),
      ...(chunksDone.length > 0 ? { chunksDone } : {}),
      ...(truncates.length > 0 ? { truncates } : {}),
      ...(schemaVersions.length > 0 ? { schemaVersions } : {}),
    };
    // Counted now, so the events can be collected while the sink writes them.
    const byOp = new Map<string, number>();
    if (this.hooks.countOps) for (const e of events) if (!e.source.snapshot) byOp.set(e.op, (byOp.get(e.op) ?? 0) + 1);
    this.committing = this.committer.commit(events, update).then(() => {
      this.committedSinceStart = true;
      return this.hooks.committed({ end, sourceTsMs, chunksDone, byOp });
    });
    this.committing.catch((err: Error) => {
      this.failure = err;
      this.hooks.failed();
    });
  }
}
