import type { CheckpointStore, CheckpointUpdate } from '../checkpoint/store.js';
import type { DebeziumEncoder } from '../events/debezium.js';
import type { ChangeEvent, OutputRecord } from '../events/event.js';
import type { Sink } from '../sink/sink.js';

/**
 * Commits output and checkpoint together (ARCHITECTURE §4): pending in SQLite, then the sink's
 * atomic commit, then done in SQLite. Commits are serialised: each waits for the one before.
 */
export class Committer {
  private chain: Promise<void> = Promise.resolve();
  committedRecords = 0;

  constructor(
    private readonly store: CheckpointStore,
    private readonly sink: Sink,
    private readonly encoder: DebeziumEncoder,
  ) {}

  /** Settles a commit left pending by a crash, then aligns the sink with the checkpoint. */
  async recover(): Promise<void> {
    const pending = this.store.pendingCommit();
    if (pending) {
      if (await this.sink.holds(pending.sinkState)) this.store.finishCommit(pending.seq);
      else this.store.discardPending(pending.seq);
    }
    await this.sink.open(this.store.sinkState());
  }

  commit(events: ChangeEvent[], update: CheckpointUpdate): Promise<void> {
    const next = this.chain.then(async () => {
      const records: OutputRecord[] = [];
      const now = Date.now();
      for (const e of events) this.encoder.encode(e, records, now);
      const seq = this.store.lastCommittedSeq() + 1;
      const batch = this.sink.prepare(records, seq);
      this.store.beginCommit(update, batch.state);
      await this.sink.commit(batch);
      this.store.finishCommit(seq);
      this.committedRecords += records.length;
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** Resolves when every commit asked for so far is done. */
  async drain(): Promise<void> {
    await this.chain;
  }
}
