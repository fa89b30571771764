import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { fileFailure, SourceError } from '../errors.js';

/**
 * An open transaction's row changes are moved to disk in parts of this many: a source transaction can hold
 * millions (a bulk UPDATE), and they can only be handed on once its commit is read, which names its position.
 */
export const SPOOL_PART_CHANGES = 10_000;

const HEADER_BYTES = 6;

/**
 * The row changes of one large transaction, on disk in the order they came, in parts of SPOOL_PART_CHANGES.
 * Each part is one v8 serialization, which keeps Buffers, BigInts and Dates as they were decoded and writes the
 * table-map column list the part's rows share once. The file is private (0600) and removed once the
 * transaction is consumed; what a crash leaves behind is cleared by `clearSpoolDir` at the next start.
 */
export class ChangeSpool<T> {
  private fd: number | null;
  private written = 0;
  /** Changes held in the file. */
  count = 0;

  private constructor(readonly path: string) {
    this.fd = this.guard('creating', () => openSync(path, 'wx+', 0o600));
  }

  static create<T>(dir: string): ChangeSpool<T> {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return new ChangeSpool<T>(join(dir, `tx-${randomBytes(8).toString('hex')}.spool`));
  }

  append(changes: T[]): void {
    const body = serialize(changes);
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUIntLE(body.length, 0, HEADER_BYTES);
    this.guard('writing', () => {
      this.writeAll(header);
      this.writeAll(body);
    });
    this.count += changes.length;
  }

  /** The parts in the order they were appended. */
  *parts(): Generator<T[]> {
    let at = 0;
    const header = Buffer.alloc(HEADER_BYTES);
    while (at < this.written) {
      this.readAll(header, at);
      const body = Buffer.allocUnsafe(header.readUIntLE(0, HEADER_BYTES));
      this.readAll(body, at + HEADER_BYTES);
      at += HEADER_BYTES + body.length;
      yield deserialize(body) as T[];
    }
  }

  remove(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.path, { force: true });
  }

  private writeAll(buf: Buffer): void {
    for (let off = 0; off < buf.length; ) {
      const n = writeSync(this.fd!, buf, off, buf.length - off, this.written);
      off += n;
      this.written += n;
    }
  }

  private readAll(buf: Buffer, position: number): void {
    this.guard('reading', () => {
      for (let off = 0; off < buf.length; ) {
        const n = readSync(this.fd!, buf, off, buf.length - off, position + off);
        if (n === 0) throw new Error(`${this.path} ends early`);
        off += n;
      }
    });
  }

  private guard<T>(doing: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw new SourceError(fileFailure(`${doing} ${this.path}, where a large source transaction is held until its commit,`, err), { cause: err });
    }
  }
}

/** Removes what a run that died left in the spool directory. */
export function clearSpoolDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Where a checkpoint's runs spool large transactions: beside it, in its private directory. */
export const spoolDirOf = (checkpointPath: string): string => `${checkpointPath}.spool`;
