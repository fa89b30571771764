import { closeSync, existsSync, fstatSync, fsync, fsyncSync, ftruncateSync, openSync, statSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { fileFailure, SinkError } from '../errors.js';
import type { OutputRecord } from '../events/event.js';
import { PRIVATE_FILE, privateDirFor } from '../files.js';
import type { DeadLetterCount, PreparedBatch, Sink } from './sink.js';

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

  constructor(
    readonly path: string,
    /** What the file is, for messages: "output", "dead-letter file". */
    private readonly kind: string,
  ) {}

  /** `<device>:<inode>` of the file, or undefined when there is none. */
  identity(): string | undefined {
    try {
      const s = statSync(this.path);
      return `${s.dev}:${s.ino}`;
    } catch {
      return undefined;
    }
  }

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
    privateDirFor(this.path);
    this.fd = openSync(this.path, 'a+', PRIVATE_FILE);
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

  /**
   * Writes `bytes` at the end, and syncs them with everything before unless `sync` is false (a part of a commit to
   * come, which syncs it). When the disk fills part-way, the part written stays beyond `length`: the checkpoint
   * never counts it, and the next open cuts it off.
   */
  async append(bytes: Buffer, sync = true): Promise<void> {
    if (this.fd === null) throw new Error(`jsonl sink is not open (${this.path})`);
    try {
      // Asynchronous, so the write and the fsync run on libuv's threads while the next chunk is read and encoded.
      let off = 0;
      while (off < bytes.length) off += (await writeAsync(this.fd, bytes, off, bytes.length - off)).bytesWritten;
      if (sync) await fsyncAsync(this.fd);
    } catch (err) {
      throw new SinkError(fileFailure(`writing the ${this.kind} ${this.path}`, err), { cause: err });
    }
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
 * The sink state: the committed length of the output, and of the dead-letter file once it has any, and which
 * file the output is (`<output>[+<dead>]@<device>:<inode>`). States from before dead letters or file identities
 * lack the parts they did not have.
 */
function parseState(state: string | undefined): { output: number; dead: number; file: string | undefined } {
  const [lengths = '0', file] = (state ?? '0').split('@');
  const [output = '0', dead = '0'] = lengths.split('+');
  return { output: Number(output), dead: Number(dead), file };
}

const formatState = (output: number, dead: number, file: string): string => `${dead > 0 ? `${output}+${dead}` : output}@${file}`;

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
  /** The output's device and inode, recorded in every state. */
  private file = '';

  constructor(
    path: string,
    /** Whether a new checkpoint may cut an existing non-empty output it did not write (sink.overwrite). */
    private readonly overwrite = false,
  ) {
    this.output = new OutputFile(path, 'output');
    this.dead = new OutputFile(deadLetterPath(path), 'dead-letter file');
  }

  async holds(state: string): Promise<boolean> {
    const { output, dead } = parseState(state);
    return this.output.size() >= output && (dead === 0 || this.dead.size() >= dead);
  }

  /**
   * The output is tidemark's and only tidemark's: it must be the file the checkpoint wrote (or was about to write,
   * `attemptedState`), and a new checkpoint does not take over a non-empty file unless sink.overwrite says so.
   * Either refusal leaves the file as it is.
   */
  async open(committedState: string | undefined, attemptedState?: string): Promise<void> {
    const { output, dead, file } = parseState(committedState);
    const known = file ?? (committedState === undefined ? parseState(attemptedState).file : undefined);
    const found = this.output.identity();
    if (known !== undefined && found !== undefined && found !== known) {
      throw new SinkError(
        `${this.output.path} is not the file this checkpoint wrote (it was replaced, or sink.path now names another file). ` +
          "Point sink.path back at the checkpoint's output, or run `tidemark reset` to start over.",
      );
    }
    if (committedState === undefined && known === undefined && !this.overwrite && this.output.size() > 0) {
      throw new SinkError(
        `${this.output.path} holds ${this.output.size()} bytes this checkpoint did not write, which a new sync would cut to nothing. ` +
          'Move it away, point sink.path at a new file, or set sink.overwrite: true to let tidemark replace it.',
      );
    }
    this.output.open(output);
    this.file = this.output.identity()!;
    // The dead-letter file is made only when a dead letter comes, unless one is left over to cut back.
    if (dead > 0 || existsSync(this.dead.path)) this.openDead(dead);
    else this.dead.length = 0;
  }

  prepare(records: OutputRecord[]): JsonlBatch {
    const dead = records.some((r) => r.dead === true) ? records.filter((r) => r.dead === true) : null;
    const bytes = encodeLines(dead ? records.filter((r) => r.dead !== true) : records);
    const deadBytes = dead ? encodeLines(dead) : null;
    return { bytes, dead: deadBytes, state: formatState(this.output.length + bytes.length, this.dead.length + (deadBytes?.length ?? 0), this.file) };
  }

  /** Lines of a commit to come, written past the committed length: a crash before that commit leaves them to be cut. */
  async writePart(records: OutputRecord[]): Promise<DeadLetterCount[]> {
    await this.write(this.prepare(records), false);
    return [];
  }

  commit(batch: PreparedBatch): Promise<void> {
    return this.write(batch as JsonlBatch, true);
  }

  private async write({ bytes, dead }: JsonlBatch, sync: boolean): Promise<void> {
    if (dead) {
      if (!this.deadOpened) this.openDead(this.dead.length);
      await this.dead.append(dead, sync);
    }
    await this.output.append(bytes, sync);
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
