import type { ChangeEvent, DeadLetterReason, OutputRecord } from '../events/event.js';

/**
 * A batch encoded for one sink commit, with the sink state it leaves behind once committed. It holds
 * the sink's own form of the records, not the records, so they can be collected while it is written.
 */
export interface PreparedBatch {
  /** Opaque to everything but the sink; stored with the checkpoint (ARCHITECTURE §4). */
  state: string;
  /** Records the sink refused for themselves alone and turned into dead letters (errors.mode: dead-letter). */
  deadLetters?: DeadLetterCount[];
}

export interface DeadLetterCount {
  /** `db.table` */
  table: string;
  reason: DeadLetterReason;
}

/**
 * Where changes go. A sink commits a batch in one atomic step and can say after a crash whether
 * a given commit made it; with the checkpoint store that makes delivery exactly-once.
 */
export interface Sink {
  readonly guarantee: 'exactly-once' | 'at-least-once';
  /** Asked on start about a commit that was pending when the process died: does the sink hold it? */
  holds(state: string): Promise<boolean>;
  /**
   * Brings the sink to the state of the last committed checkpoint (undefined: nothing committed yet);
   * `attemptedState` is that of a commit begun after it that the sink did not finish, when there was one.
   */
  open(committedState: string | undefined, attemptedState?: string): Promise<void>;
  prepare(records: OutputRecord[], seq: number): PreparedBatch;
  /**
   * Sinks that write rows rather than records (the database sinks) take the events instead, and write them before the
   * commit is recorded as pending, leaving only the final step to `commit`: so what they refuse is known in time to
   * be counted with the commit as dead letters.
   */
  prepareEvents?(events: ChangeEvent[], seq: number): Promise<PreparedBatch>;
  /**
   * Writes records of the next commit ahead of it, for a source transaction too large to hold (Batcher.addPart). A
   * reader that honours commits must not see them before that commit, and `open` after a crash before it must undo
   * them. Returns the dead letters the sink made of them, counted with that commit. Sinks without it, and sinks that
   * take events (prepareEvents), get the whole transaction at the commit.
   */
  writePart?(records: OutputRecord[]): Promise<DeadLetterCount[]>;
  commit(batch: PreparedBatch): Promise<void>;
  close(): Promise<void>;
}
