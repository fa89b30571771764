import type { CheckpointStore, CheckpointUpdate, SourceIdentity } from '../checkpoint/store.js';
import type { DebeziumEncoder } from '../events/debezium.js';
import type { ChangeEvent, DeadLetterReason, OutputRecord } from '../events/event.js';
import type { DeadLetterCount, Sink } from '../sink/sink.js';

/**
 * Commits output and checkpoint together (ARCHITECTURE §4): pending in SQLite, then the sink's
 * atomic commit, then done in SQLite. Commits are serialised: each waits for the one before.
 */
export class Committer {
  private chain: Promise<void> = Promise.resolve();
  committedRecords = 0;
  /** What parts written ahead of the next commit (writePart) hold, counted with it. */
  private parts = { records: 0, dead: [] as DeadLetterCount[] };
  /** A new source server (a failover), recorded by the next commit that carries a stream position, which is its. */
  private newSource: SourceIdentity | undefined;

  constructor(
    private readonly store: CheckpointStore,
    private readonly sink: Sink,
    private readonly encoder: DebeziumEncoder,
    /** Hears of each committed dead letter (metrics). */
    private readonly onDeadLetter: (table: string, reason: DeadLetterReason) => void = () => {},
  ) {}

  /** Settles a commit left pending by a crash, then aligns the sink with the checkpoint. */
  async recover(): Promise<void> {
    const pending = this.store.pendingCommit();
    let attempted: string | undefined;
    if (pending) {
      if (await this.sink.holds(pending.sinkState)) this.store.finishCommit(pending.seq);
      else {
        this.store.discardPending(pending.seq);
        attempted = pending.sinkState;
      }
    }
    await this.sink.open(this.store.sinkState(), attempted);
  }

  /** After a failover: the checkpoint names the new server from the first commit of one of its positions on. */
  recordSourceWithNextPosition(identity: SourceIdentity): void {
    this.newSource = identity;
  }

  /** Whether the sink takes records ahead of their commit (Sink.writePart). */
  get writesParts(): boolean {
    return this.sink.writePart !== undefined && this.sink.prepareEvents === undefined;
  }

  /** Encodes `events` and writes them ahead of the next commit, after the commits asked for before. */
  writePart(events: ChangeEvent[]): Promise<void> {
    const job: { events: ChangeEvent[] | null } = { events };
    const next = this.chain.then(async () => {
      const records: OutputRecord[] = [];
      const now = Date.now();
      for (const e of job.events!) {
        if (e.op === 'dead') this.parts.dead.push({ table: `${e.db}.${e.table}`, reason: e.reason });
        this.encoder.encode(e, records, now);
      }
      job.events = null;
      this.parts.records += records.length;
      for (const d of await this.sink.writePart!(records)) this.parts.dead.push(d);
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /**
   * Encodes and commits `events`. The events and their text are let go as soon as the sink has its own
   * form of them (the jsonl sink's bytes), not kept while the sink writes: a snapshot reads the next chunk
   * meanwhile, and keeping both alive makes the garbage collector copy them into the old generation.
   */
  commit(events: ChangeEvent[], update: CheckpointUpdate): Promise<void> {
    if (this.newSource && update.stream) {
      update = { ...update, source: this.newSource };
      this.newSource = undefined;
    }
    const job: { events: ChangeEvent[] | null } = { events };
    const next = this.chain.then(async () => {
      let records: OutputRecord[] | null = [];
      const now = Date.now();
      const dead = this.parts.dead;
      const partRecords = this.parts.records;
      this.parts = { records: 0, dead: [] };
      const seq = this.store.lastCommittedSeq() + 1;
      const byEvents = this.sink.prepareEvents !== undefined;
      for (const e of job.events!) {
        if (e.op === 'dead') dead.push({ table: `${e.db}.${e.table}`, reason: e.reason });
        if (!byEvents) this.encoder.encode(e, records, now);
      }
      const count = partRecords + (byEvents ? job.events!.filter((e) => e.op !== 'schema').length : records.length);
      const batch = byEvents ? await this.sink.prepareEvents!(job.events!, seq) : this.sink.prepare(records, seq);
      job.events = null;
      records = null;
      for (const d of batch.deadLetters ?? []) dead.push(d);
      this.store.beginCommit(dead.length > 0 ? { ...update, deadLetters: countByTable(dead) } : update, batch.state);
      await this.sink.commit(batch);
      this.store.finishCommit(seq);
      this.committedRecords += count;
      for (const d of dead) this.onDeadLetter(d.table, d.reason);
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** Resolves when every commit asked for so far is done. */
  async drain(): Promise<void> {
    await this.chain;
  }
}

function countByTable(dead: DeadLetterCount[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const d of dead) out[d.table] = (out[d.table] ?? 0) + 1;
  return out;
}
