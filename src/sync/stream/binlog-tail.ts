import pRetry from 'p-retry';
import { serverIdRange } from '../../config/load.js';
import { errorOf, isRetriable } from '../../errors.js';
import { dropPoint } from '../../faults.js';
import { BinlogReader, releaseChanges, type StartAt } from '../../source/binlog.js';
import { spoolDirOf } from '../../source/change-spool.js';
import { comparePositions, type Position } from '../../source/position.js';
import type { RunParts } from '../options.js';
import { type BinlogItem, BinlogQueue } from './binlog-queue.js';

/** Backoff between reconnect attempts of one outage; it starts over after a successful reconnect. */
const RECONNECT_BACKOFF = { minTimeout: 500, maxTimeout: 30_000, factor: 2, randomize: true };

/**
 * Follows the binlog from a position: receives whole transactions into a queue, stops reading the
 * socket while the queue is full (TCP back-pressure reaches the server), reconnects after a lost
 * connection, and hands out each item once, in order, skipping what a reconnect or a start at a
 * file's beginning replays.
 */
export class BinlogTail {
  private readonly queue = new BinlogQueue();
  private reader: BinlogReader | null = null;
  private failure: Error | null = null;
  /** Items the reader queued before it failed: whole transactions, still handed out. */
  private queuedBeforeFailure = 0;
  /** The captured tables changed: read again from the last item, which the reader decodes by table. */
  private reread = false;
  private wake: (() => void) | null = null;
  /** The end of the last item handed out: a reconnect resumes right after it. */
  lastReceived: Position = { file: '', pos: 0 };
  /** Where a reconnect starts reading to have lastReceived's open XA transactions again; undefined: at lastReceived. */
  private restart: Position | undefined;

  constructor(private readonly parts: Pick<RunParts, 'config' | 'info' | 'registry' | 'log' | 'observer' | 'signal'>) {}

  /**
   * Hands out what comes after `from`, reading from `restart` when the checkpoint has one (XA transactions
   * prepared before `from` and not yet committed). `sameServer` false: the checkpoint's file/pos belong to
   * another server, only its GTIDs count.
   */
  async start(from: Position, restart: Position | undefined, sameServer: boolean): Promise<void> {
    // On another server nothing read can be ordered against `from`'s file/pos, so nothing is skipped by them; the
    // GTIDs stay, so that a reconnect before the first item resumes by them too. An XA restart point is the old
    // server's position: the GTIDs start after it, and an XA COMMIT whose PREPARE lies before then stops the stream.
    this.lastReceived = sameServer ? from : { file: 'any.000000', pos: 0, ...(from.gtid === undefined ? {} : { gtid: from.gtid }) };
    this.restart = sameServer ? restart : undefined;
    await this.connect(this.restart ?? this.lastReceived);
    const dropped = dropPoint('binlog-start');
    if (dropped) {
      this.reader?.stop();
      this.queue.clear();
      this.failure = dropped;
    }
  }

  /**
   * The next item not handed out before, or undefined when none is queued. After the reader failed, the
   * items it queued before the failure still come first; then it reconnects, or throws an error that is
   * not retriable.
   */
  async next(): Promise<BinlogItem | undefined> {
    if (this.reread) await this.readAgain();
    for (;;) {
      if (this.failure && this.queuedBeforeFailure === 0) {
        await this.reconnect();
        if (this.failure || this.parts.signal?.aborted) return undefined;
      }
      const item = this.queue.shift();
      if (item === undefined) return undefined;
      if (this.failure) this.queuedBeforeFailure--;
      if (this.queue.low) this.reader?.resume();
      // Starting at a file's beginning (to learn its GTIDs), at an XA restart point, or reconnecting replays what was already had.
      // A boundary at the last position itself (a heartbeat of an idle server) passes: committed, it says the checkpoint is current.
      const order = comparePositions(item.end, this.lastReceived);
      if (order < 0 || (order === 0 && 'changes' in item)) {
        if ('changes' in item) releaseChanges(item);
        continue;
      }
      this.lastReceived = item.end;
      this.restart = item.restart;
      return item;
    }
  }

  /**
   * After the item just handed out, the reader's table list is stale (a table came into or left the captured
   * set): what it queued beyond was decoded for the old list, so it is dropped and read again.
   */
  rereadAfterCurrent(): void {
    this.reread = true;
  }

  private async readAgain(): Promise<void> {
    this.reread = false;
    this.reader?.stop();
    this.queue.clear();
    this.failure = null;
    await this.connect(this.restart ?? this.lastReceived);
  }

  get empty(): boolean {
    return this.queue.length === 0;
  }

  /** Waits up to `ms` for an item or a failure; `interrupt()` ends the wait early. */
  wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.wake = resolve;
      setTimeout(resolve, ms).unref();
    });
  }

  interrupt(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Stops reading while something else needs the source to stand still (a chunk read while streaming). */
  pause(): void {
    this.reader?.pause();
  }

  resumeIfLow(): void {
    if (this.queue.low) this.reader?.resume();
  }

  stop(): void {
    this.reader?.stop();
    this.queue.clear();
  }

  /**
   * Starts at the beginning of the resume file when no GTID position is stored, so zongji can
   * seed its GTID set from the file header; everything up to the resume point is skipped here.
   */
  private startAt(from: Position): StartAt {
    const gtidMode = this.parts.info.gtidMode;
    if (from.gtid !== undefined && gtidMode) return { gtidSet: from.gtid };
    return gtidMode ? { file: from.file, pos: 4 } : { file: from.file, pos: from.pos };
  }

  private async connect(from: Position): Promise<void> {
    const reader = new BinlogReader({
      source: this.parts.config.source,
      flavour: this.parts.info.identity.flavour,
      serverId: serverIdRange(this.parts.config).first,
      start: this.startAt(from),
      tables: this.parts.registry.tables.map((t) => ({ db: t.schema.db, table: t.schema.table })),
      spoolDir: spoolDirOf(this.parts.config.checkpoint.path),
      onTransaction: (tx) => this.push(tx),
      onPosition: (end, restart) => this.push({ end, restart }),
      onError: (err) => {
        if (this.failure) return;
        this.failure = err;
        this.queuedBeforeFailure = this.queue.length;
        this.interrupt();
      },
    });
    this.reader = reader;
    try {
      await reader.start();
    } catch (err) {
      reader.stop();
      throw err;
    }
  }

  private push(item: BinlogItem): void {
    this.queue.push(item);
    // Back-pressure: stop reading the socket while a commit is slower than the binlog.
    if (this.queue.full) this.reader?.pause();
    this.interrupt();
  }

  /**
   * The new connection resumes right after the last item handed out. What the old one queued beyond it is
   * dropped, not kept: a reader that failed mid-stream may have queued transactions past one it could not
   * read, and handing those out would move the position past the one never read.
   */
  private async reconnect(): Promise<void> {
    const err = this.failure!;
    this.failure = null;
    if (!isRetriable(err)) throw err;
    const { log, observer, signal } = this.parts;
    this.reader?.stop();
    this.queue.clear();
    observer?.disconnected?.();
    log('binlog connection lost; reconnecting', { error: err.message });
    const lostAt = Date.now();
    const tryAgain = (e: Error) => isRetriable(e) && !signal?.aborted;
    try {
      await pRetry(() => this.connect(this.restart ?? this.lastReceived), {
        forever: true,
        ...RECONNECT_BACKOFF,
        shouldRetry: tryAgain,
        // p-retry calls this also for an error it will not retry.
        onFailedAttempt: (e) => {
          if (tryAgain(e)) log('binlog reconnect failed; trying again', { error: errorOf(e).message, attempt: e.attemptNumber });
        },
        ...(signal ? { signal } : {}),
      });
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    }
    observer?.reconnected?.();
    log('binlog reconnected', { outageMs: Date.now() - lostAt });
  }
}
