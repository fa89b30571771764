import { closeSync, fstatSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, statSync, write } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { SinkError } from '../errors.js';
import type { OutputRecord } from '../events/event.js';
import type { PreparedBatch, Sink } from './sink.js';

const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);

interface JsonlBatch extends PreparedBatch {
  bytes: Buffer;
}

/**
 * One line per record: `{"topic":…,"key":…,"value":…}`, the record's JSON pieces as they are. Each line
 * is written straight into one buffer sized for the worst case (3 UTF-8 bytes per UTF-16 unit), so no
 * batch-sized string is ever built; the untouched rest of the allocation is never paged in.
 */
export function encodeLines(records: OutputRecord[]): Buffer {
  let topic = '';
  let topicJson = '';
  let units = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    units += r.topic.length + r.key.length + (r.value?.length ?? 4) + 40;
  }
  const buf = Buffer.allocUnsafe(units * 3);
  let off = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.topic !== topic) {
      topic = r.topic;
      topicJson = `{"topic":${JSON.stringify(topic)},"key":`;
    }
    off += buf.write(`${topicJson}${r.key},"value":${r.value ?? 'null'}}\n`, off);
  }
  return buf.subarray(0, off);
}

/**
 * One JSON object per line in a file the connector owns. Exactly-once: each batch is written and
 * fsynced before its checkpoint commits, and on start the file is cut back to the byte length the
 * last committed checkpoint recorded, so output of an uncommitted batch never survives a crash.
 */
export class JsonlSink implements Sink {
  readonly guarantee = 'exactly-once';
  private fd: number | null = null;
  private length = 0;

  constructor(private readonly path: string) {}

  async holds(state: string): Promise<boolean> {
    try {
      return statSync(this.path).size >= Number(state);
    } catch {
      return false;
    }
  }

  async open(committedState: string | undefined): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true });
    this.fd = openSync(this.path, 'a+');
    const committed = Number(committedState ?? 0);
    const size = fstatSync(this.fd).size;
    if (size < committed) {
      throw new SinkError(
        `${this.path} is ${size} bytes but the checkpoint says ${committed} were committed: the file was truncated or replaced. Restore it, or run tidemark reset to start over.`,
      );
    }
    if (size > committed) {
      ftruncateSync(this.fd, committed);
      fsyncSync(this.fd);
    }
    this.length = committed;
  }

  prepare(records: OutputRecord[]): JsonlBatch {
    const bytes = encodeLines(records);
    return { bytes, state: String(this.length + bytes.length) };
  }

  async commit(batch: PreparedBatch): Promise<void> {
    const { bytes } = batch as JsonlBatch;
    if (this.fd === null) throw new Error('jsonl sink is not open');
    // Asynchronous, so the write and the fsync run on libuv's threads while the next chunk is read and encoded.
    let off = 0;
    while (off < bytes.length) off += (await writeAsync(this.fd, bytes, off, bytes.length - off)).bytesWritten;
    await fsyncAsync(this.fd);
    this.length += bytes.length;
  }

  async close(): Promise<void> {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
