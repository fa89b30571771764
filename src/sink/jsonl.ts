import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, mkdirSync, openSync, statSync, write } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import { SinkError } from '../errors.js';
import type { OutputRecord } from '../events/event.js';
import type { PreparedBatch, Sink } from './sink.js';

const writeAsync = promisify(write);
const fsyncAsync = promisify(fsync);

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

/** One output file: its descriptor and the byte length committed so far. */
class OutputFile {
  private fd: number | null = null;
  length = 0;

  constructor(readonly path: string) {}

  /** The file's size; -1 when there is no file. */
  size(): number {
    try {
      return statSync(this.path).size;
    } catch {
      return -1;
    }
  }

  /** Opens the file and cuts it back to `committed` bytes; refuses one shorter than that. */
  open(committed: number): void {
    mkdirSync(dirname(this.path), { recursive: true });
    this.fd = openSync(this.path, 'a+');
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

  async append(bytes: Buffer): Promise<void> {
    if (this.fd === null) throw new Error(`jsonl sink is not open (${this.path})`);
    // Asynchronous, so the write and the fsync run on libuv's threads while the next chunk is read and encoded.
    let off = 0;
    while (off < bytes.length) off += (await writeAsync(this.fd, bytes, off, bytes.length - off)).bytesWritten;
    await fsyncAsync(this.fd);
    this.length += bytes.length;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

interface JsonlBatch extends PreparedBatch {
  bytes: Buffer;
  dead: Buffer | null;
}

/**
 * The sink state: the committed length of the output, and of the dead-letter file once it has any
 * (`<output>+<dead>`; a state without `+` is from before dead letters, with none).
 */
function parseState(state: string | undefined): { output: number; dead: number } {
  const [output = '0', dead = '0'] = (state ?? '0').split('+');
  return { output: Number(output), dead: Number(dead) };
}

const formatState = (output: number, dead: number): string => (dead > 0 ? `${output}+${dead}` : String(output));

/**
 * One JSON object per line in a file the connector owns, and dead letters (errors.mode: dead-letter) in
 * `<path>.dead.jsonl` beside it. Exactly-once: each batch is written and fsynced before its checkpoint
 * commits, and on start both files are cut back to the byte lengths the last committed checkpoint recorded,
 * so output of an uncommitted batch never survives a crash.
 */
export class JsonlSink implements Sink {
  readonly guarantee = 'exactly-once';
  private readonly output: OutputFile;
  private readonly dead: OutputFile;
  private deadOpened = false;

  constructor(path: string) {
    this.output = new OutputFile(path);
    this.dead = new OutputFile(deadLetterPath(path));
  }

  async holds(state: string): Promise<boolean> {
    const { output, dead } = parseState(state);
    return this.output.size() >= output && (dead === 0 || this.dead.size() >= dead);
  }

  async open(committedState: string | undefined): Promise<void> {
    const { output, dead } = parseState(committedState);
    this.output.open(output);
    // The dead-letter file is made only when a dead letter comes, unless one is left over to cut back.
    if (dead > 0 || existsSync(this.dead.path)) this.openDead(dead);
    else this.dead.length = 0;
  }

  prepare(records: OutputRecord[]): JsonlBatch {
    const dead = records.some((r) => r.dead === true) ? records.filter((r) => r.dead === true) : null;
    const bytes = encodeLines(dead ? records.filter((r) => r.dead !== true) : records);
    const deadBytes = dead ? encodeLines(dead) : null;
    return { bytes, dead: deadBytes, state: formatState(this.output.length + bytes.length, this.dead.length + (deadBytes?.length ?? 0)) };
  }

  async commit(batch: PreparedBatch): Promise<void> {
    const { bytes, dead } = batch as JsonlBatch;
    if (dead) {
      if (!this.deadOpened) this.openDead(this.dead.length);
      await this.dead.append(dead);
    }
    await this.output.append(bytes);
  }

  async close(): Promise<void> {
    this.output.close();
    this.dead.close();
  }

  private openDead(committed: number): void {
    this.dead.open(committed);
    this.deadOpened = true;
  }
}

/** Where the jsonl sink writes dead letters. */
export function deadLetterPath(path: string): string {
  return `${path.replace(/\.jsonl$/, '')}.dead.jsonl`;
}
