import { type BinlogTransaction, releaseChanges } from '../../source/binlog.js';
import type { Position } from '../../source/position.js';

/** A transaction boundary reached with nothing captured; `restart` as in BinlogTransaction. */
export interface PositionReached {
  end: Position;
  restart?: Position | undefined;
}

/** What the binlog reader hands over: a whole transaction, or a boundary reached with nothing captured. */
export type BinlogItem = BinlogTransaction | PositionReached;

/** Reading stops above these; a source transaction can hold any number of row changes, so they are counted, not only items. */
export const BACKLOG_FULL = { changes: 20_000, items: 10_000 };
/** ... and resumes below these, well before the backlog runs dry, so the socket refills while the rest is processed. */
export const BACKLOG_LOW = { changes: 10_000, items: 5000 };

/** Received but not yet processed binlog items, with the counts back-pressure is decided on. */
export class BinlogQueue {
  private items: BinlogItem[] = [];
  private changes = 0;

  push(item: BinlogItem): void {
    this.items.push(item);
    if ('changes' in item) this.changes += item.changes.length;
  }

  shift(): BinlogItem | undefined {
    const item = this.items.shift();
    if (item && 'changes' in item) this.changes -= item.changes.length;
    return item;
  }

  /** Forgets everything received: a reconnect reads it again from the last item handed out. */
  clear(): void {
    for (const item of this.items) if ('changes' in item) releaseChanges(item);
    this.items = [];
    this.changes = 0;
  }

  get length(): number {
    return this.items.length;
  }

  get full(): boolean {
    return this.changes > BACKLOG_FULL.changes || this.items.length > BACKLOG_FULL.items;
  }

  get low(): boolean {
    return this.changes < BACKLOG_LOW.changes && this.items.length < BACKLOG_LOW.items;
  }
}
