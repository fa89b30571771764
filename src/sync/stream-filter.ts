import type { ChunkRecord, KeyTuple } from '../checkpoint/store.js';
import { findChunk, type KeyOrder } from '../source/key-order.js';
import { comparePositions, maxPosition, type Position } from '../source/position.js';

interface TableFilter {
  chunks: ChunkRecord[];
  order: KeyOrder;
  maxHw: Position;
}

/**
 * The hand-off from snapshot to stream (ARCHITECTURE §3): a change at position p on a key whose
 * chunk was read with high watermark HW is already in the snapshot output when p <= HW, so only
 * changes after their chunk's HW pass. Past a table's largest HW every change passes.
 */
export class StreamFilter {
  private readonly tables = new Map<string, TableFilter>();

  async addTable(name: string, chunks: ChunkRecord[], order: KeyOrder): Promise<void> {
    const done = chunks.filter((c) => c.hw !== null);
    const maxHw = maxPosition(done.map((c) => c.hw!));
    if (!maxHw) return;
    await order.prepare(done.map((c) => c.lo));
    this.tables.set(name, { chunks: done, order, maxHw });
  }

  /** Whether keys of this table at position p need a chunk lookup (and so sort weights). */
  needsLookup(table: string, p: Position): KeyOrder | undefined {
    const t = this.tables.get(table);
    if (!t) return undefined;
    if (comparePositions(p, t.maxHw) > 0) {
      this.tables.delete(table);
      return undefined;
    }
    return t.order;
  }

  passes(table: string, key: KeyTuple, p: Position): boolean {
    const t = this.tables.get(table);
    if (!t || comparePositions(p, t.maxHw) > 0) return true;
    const chunk = findChunk(t.chunks, key, t.order);
    return !chunk || comparePositions(p, chunk.hw!) > 0;
  }

  get active(): boolean {
    return this.tables.size > 0;
  }
}
