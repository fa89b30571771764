import type { OutputRecord } from '../events/event.js';
import { encodeLines } from './jsonl.js';
import type { DeadLetterCount, PreparedBatch, Sink } from './sink.js';

interface StdoutBatch extends PreparedBatch {
  bytes: Buffer;
}

/**
 * JSON lines on standard output, for piping. At-least-once: a pipe cannot say what its reader
 * received, so after a crash the last uncommitted batch is written again.
 */
export class StdoutSink implements Sink {
  readonly guarantee = 'at-least-once';

  async holds(): Promise<boolean> {
    return false;
  }

  async open(): Promise<void> {}

  prepare(records: OutputRecord[], seq: number): StdoutBatch {
    return { bytes: encodeLines(records), state: String(seq) };
  }

  /** Lines of a commit to come: a pipe has no commits, so they go out as they come, like any batch. */
  async writePart(records: OutputRecord[]): Promise<DeadLetterCount[]> {
    await this.commit(this.prepare(records, 0));
    return [];
  }

  async commit(batch: PreparedBatch): Promise<void> {
    const { bytes } = batch as StdoutBatch;
    if (!process.stdout.write(bytes)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
  }

  async close(): Promise<void> {}
}
