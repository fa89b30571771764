import type { OutputRecord } from '../events/event.js';
import type { PreparedBatch, Sink } from './sink.js';

/**
 * Discards every record, for measuring the rest of tidemark (bench/). It "holds" whatever was
 * committed, so the checkpoint still moves exactly as with a real sink.
 */
export class NullSink implements Sink {
  readonly guarantee = 'exactly-once';

  async holds(): Promise<boolean> {
    return true;
  }

  async open(): Promise<void> {}

  prepare(_records: OutputRecord[], seq: number): PreparedBatch {
    return { state: String(seq) };
  }

  async commit(): Promise<void> {}

  async close(): Promise<void> {}
}
