import { describe, expect, it } from 'vitest';
import type { ChunkRecord, KeyTuple } from '../../src/checkpoint/store.js';
import type { KeyOrder } from '../../src/source/key-order.js';
import type { Position } from '../../src/source/position.js';
import { HandoffFilter } from '../../src/sync/handoff.js';

/** Numeric KeyOrder stand-in; records what it was asked to prepare. */
function fakeOrder() {
  const prepared: (KeyTuple | null)[][] = [];
  const order = {
    needsPrepare: false,
    async prepare(keys: Iterable<KeyTuple | null>) {
      prepared.push([...keys]);
    },
    compare(a: KeyTuple, b: KeyTuple) {
      return Number(a[0]) - Number(b[0]);
    },
  };
  return { order: order as unknown as KeyOrder, prepared };
}

const at = (file: string, pos: number): Position => ({ file, pos });

function chunk(idx: number, lo: number | null, hi: number | null, hw: Position | null): ChunkRecord {
  return {
    table: 'db.t',
    idx,
    lo: lo === null ? null : [lo],
    hi: hi === null ? null : [hi],
    status: hw ? 'done' : 'pending',
    lw: hw ? at(hw.file, 4) : null,
    hw,
    rows: hw ? 1 : null,
  };
}

// HWs deliberately not in chunk order, and spanning two files so file order matters.
const chunks = [chunk(0, null, 100, at('binlog.000009', 5000)), chunk(1, 100, 200, at('binlog.000010', 300)), chunk(2, 200, null, at('binlog.000009', 8000))];

describe('HandoffFilter', () => {
  it('drops a change at or before its chunk HW and passes one after it', async () => {
    const f = new HandoffFilter();
    const { order } = fakeOrder();
    await f.addTable('db.t', chunks, order);
    expect(f.active).toBe(true);

    // Chunk 0, HW binlog.000009:5000
    expect(f.passes('db.t', [50], at('binlog.000009', 4999))).toBe(false);
    expect(f.passes('db.t', [50], at('binlog.000009', 5000))).toBe(false);
    expect(f.passes('db.t', [50], at('binlog.000009', 5001))).toBe(true);
    expect(f.passes('db.t', [-7], at('binlog.000009', 5001))).toBe(true);

    // Chunk 1, HW binlog.000010:300: a later pos in an earlier file is still before it.
    expect(f.passes('db.t', [100], at('binlog.000009', 9_999_999))).toBe(false);
    expect(f.passes('db.t', [199], at('binlog.000010', 300))).toBe(false);
    expect(f.passes('db.t', [199], at('binlog.000010', 301))).toBe(true);

    // Chunk 2, HW binlog.000009:8000
    expect(f.passes('db.t', [200], at('binlog.000009', 8000))).toBe(false);
    expect(f.passes('db.t', [10_000], at('binlog.000009', 8001))).toBe(true);
    expect(f.passes('db.t', [200], at('binlog.000010', 4))).toBe(true);
  });

  it('passes everything past the largest HW, and drops the table from the filter there', async () => {
    const f = new HandoffFilter();
    const { order } = fakeOrder();
    await f.addTable('db.t', chunks, order);
    expect(f.needsLookup('db.t', at('binlog.000010', 300))).toBe(order);
    expect(f.active).toBe(true);
    expect(f.passes('db.t', [150], at('binlog.000010', 301))).toBe(true);
    expect(f.passes('db.t', [150], at('binlog.000011', 4))).toBe(true);
    expect(f.needsLookup('db.t', at('binlog.000010', 301))).toBeUndefined();
    expect(f.active).toBe(false);
    // Once dropped, even an old position passes: the stream never goes back.
    expect(f.passes('db.t', [150], at('binlog.000010', 4))).toBe(true);
  });

  it('passes every change of a table after its TRUNCATE, even one its chunk already holds', async () => {
    const f = new HandoffFilter();
    const { order } = fakeOrder();
    await f.addTable('db.t', chunks, order);
    await f.addTable('db.other', chunks, order);
    expect(f.passes('db.t', [150], at('binlog.000010', 200))).toBe(false);
    f.truncated('db.t');
    expect(f.passes('db.t', [150], at('binlog.000010', 200))).toBe(true);
    expect(f.passes('db.other', [150], at('binlog.000010', 200))).toBe(false);
  });

  it("keeps dropping uncovered keys after a TRUNCATE while the table's first snapshot runs inside the stream", async () => {
    const f = new HandoffFilter();
    const { order } = fakeOrder();
    await f.addTable('db.t', [chunks[0]!], order, true);
    f.truncated('db.t');
    expect(f.passes('db.t', [150], at('binlog.000010', 200))).toBe(false);
    expect(f.passes('db.t', [50], at('binlog.000009', 5001))).toBe(true);
  });

  it('always passes tables it was not given', async () => {
    const f = new HandoffFilter();
    const { order } = fakeOrder();
    await f.addTable('db.t', chunks, order);
    expect(f.passes('db.other', [50], at('binlog.000001', 4))).toBe(true);
    expect(f.needsLookup('db.other', at('binlog.000001', 4))).toBeUndefined();
  });

  it('ignores chunks without an HW and skips a table with none', async () => {
    const f = new HandoffFilter();
    const { order, prepared } = fakeOrder();
    await f.addTable('db.none', [chunk(0, null, 10, null), chunk(1, 10, null, null)], order);
    expect(f.active).toBe(false);
    expect(prepared).toEqual([]);
    expect(f.passes('db.none', [5], at('binlog.000001', 4))).toBe(true);

    await f.addTable('db.some', [chunk(0, null, 10, at('binlog.000002', 100)), chunk(1, 10, null, null)], order);
    expect(f.active).toBe(true);
    expect(prepared).toEqual([[null, [10]]]);
    expect(f.passes('db.some', [5], at('binlog.000002', 100))).toBe(false);
    expect(f.passes('db.some', [5], at('binlog.000002', 101))).toBe(true);
  });

  it('prepares the key order with the bounds of the done chunks, in one batch', async () => {
    const f = new HandoffFilter();
    const { order, prepared } = fakeOrder();
    await f.addTable('db.t', chunks, order);
    expect(prepared).toEqual([[null, [100], [100], [200], [200], null]]);
  });

  it('passes keys beyond the done chunks of a snapshot still in progress', async () => {
    const f = new HandoffFilter();
    const { order } = fakeOrder();
    await f.addChunk('db.t', chunk(0, null, 10, at('binlog.000001', 500)), order);
    expect(f.passes('db.t', [5], at('binlog.000001', 400))).toBe(false);
    expect(f.passes('db.t', [10], at('binlog.000001', 400))).toBe(true);
    await f.addChunk('db.t', chunk(1, 10, 20, at('binlog.000001', 700)), order);
    expect(f.passes('db.t', [15], at('binlog.000001', 600))).toBe(false);
    expect(f.passes('db.t', [5], at('binlog.000001', 600))).toBe(true);
    expect(f.passes('db.t', [25], at('binlog.000001', 600))).toBe(true);
  });

  it('keeps tables independent', async () => {
    const f = new HandoffFilter();
    const { order } = fakeOrder();
    await f.addTable('db.a', [chunk(0, null, null, at('binlog.000001', 100))], order);
    await f.addTable('db.b', [chunk(0, null, null, at('binlog.000001', 900))], order);
    expect(f.passes('db.a', [1], at('binlog.000001', 500))).toBe(true);
    expect(f.passes('db.b', [1], at('binlog.000001', 500))).toBe(false);
    expect(f.needsLookup('db.a', at('binlog.000001', 500))).toBeUndefined();
    expect(f.active).toBe(true);
    expect(f.needsLookup('db.b', at('binlog.000001', 901))).toBeUndefined();
    expect(f.active).toBe(false);
  });
});
