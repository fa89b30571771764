import type { Connection } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import type { ChunkRecord } from '../../src/checkpoint/store.js';
import type { RowEvent } from '../../src/events/event.js';
import type { BinlogTransaction, RowChange } from '../../src/source/binlog.js';
import { KeyOrder } from '../../src/source/key-order.js';
import type { Position } from '../../src/source/position.js';
import type { TableSchema } from '../../src/source/schema.js';
import { snapshotTable } from '../../src/source/snapshot.js';
import { HandoffFilter } from '../../src/sync/handoff.js';
import { type ResolvedChange, transactionEvents } from '../../src/sync/stream/transaction-events.js';
import type { CapturedTable } from '../../src/sync/table-registry.js';
import { col } from '../support/columns.js';

const schema: TableSchema = { db: 'shop', table: 'orders', columns: [col('id', 'int'), col('v', 'int')], primaryKey: ['id'], collation: null };
// Integer keys order numerically without asking a server, so no connection is needed.
const order = await KeyOrder.create({} as Connection, [schema.columns[0]!]);
const codec = snapshotTable(schema, [schema.columns[0]!], order);
const table: CapturedTable = { name: 'shop.orders', schema, chunkKey: ['id'] };

const at = (pos: number): Position => ({ file: 'binlog.000003', pos });

function chunk(idx: number, lo: number | null, hi: number | null, hw: number): ChunkRecord {
  return { table: 'shop.orders', idx, lo: lo === null ? null : [lo], hi: hi === null ? null : [hi], status: 'done', lw: at(hw), hw: at(hw), rows: 1 };
}

function tx(
  end: number,
  changes: Omit<RowChange, 'db' | 'table' | 'row' | 'pos' | 'columns'>[],
  truncate = false,
): { tx: BinlogTransaction; resolved: ResolvedChange[] } {
  const full = changes.map((c, row) => ({ ...c, db: 'shop', table: 'orders', row, pos: end, columns: undefined }));
  return {
    tx: { changes: full, truncates: truncate ? [{ db: 'shop', table: 'orders' }] : [], ddl: [], end: at(end), gtid: 'g:1', tsMs: 1000 },
    resolved: full.map((change) => ({ change, table: { table, codec } })),
  };
}

const insert = (id: number, v = 1) => ({ kind: 'insert' as const, before: null, after: { id, v } });
const update = (from: number, to: number, v = 2) => ({ kind: 'update' as const, before: { id: from, v: v - 1 }, after: { id: to, v } });
const remove = (id: number) => ({ kind: 'delete' as const, before: { id, v: 1 }, after: null });

/** Chunks [-inf, 100) with HW 500 and [100, +inf) with HW 900. */
async function filterWithTwoChunks(): Promise<HandoffFilter> {
  const f = new HandoffFilter();
  await f.addTable('shop.orders', [chunk(0, null, 100, 500), chunk(1, 100, null, 900)], order);
  return f;
}

const ops = (events: { op: string; key: string | null }[]) => events.map((e) => `${e.op}${e.key}`);

describe('transactionEvents', () => {
  it('without a filter, turns every change into an event numbered within its transaction, sharing one source', () => {
    const { tx: t, resolved } = tx(1000, [insert(1), update(1, 1), remove(1)]);
    const events = transactionEvents(t, resolved, new HandoffFilter(), 7, 'fail');
    expect(ops(events)).toEqual(['c{"id":1}', 'u{"id":1}', 'd{"id":1}']);
    expect(events.map((e) => e.row)).toEqual([0, 1, 2]);
    expect((events[1] as RowEvent).before).toBe('{"id":1,"v":1}');
    expect((events[1] as RowEvent).after).toBe('{"id":1,"v":2}');
    expect(new Set(events.map((e) => e.source)).size).toBe(1);
    expect(events[0]!.source).toEqual({ file: 'binlog.000003', pos: 1000, gtid: 'g:1', serverId: 7, tsMs: 1000, snapshot: false });
  });

  it('drops a change at or before its chunk high watermark and passes one after it', async () => {
    const f = await filterWithTwoChunks();
    // Key 5 lies in chunk 0 (HW 500), key 150 in chunk 1 (HW 900).
    const events = (t: ReturnType<typeof tx>) => ops(transactionEvents(t.tx, t.resolved, f, 1, 'fail'));
    expect(events(tx(500, [insert(5)]))).toEqual([]);
    expect(events(tx(600, [insert(5), insert(150)]))).toEqual(['c{"id":5}']);
    expect(events(tx(900, [insert(150)]))).toEqual([]);
    expect(events(tx(901, [insert(150)]))).toEqual(['c{"id":150}']);
  });

  it('judges a key change across chunks per side: the old key by its chunk, the new key by its own', async () => {
    const f = await filterWithTwoChunks();
    // At 700: key 150's chunk (HW 900) already holds the move, key 5's chunk (HW 500) does not.
    const move = tx(700, [update(150, 5)]);
    expect(ops(transactionEvents(move.tx, move.resolved, f, 1, 'fail'))).toEqual(['c{"id":5}']);
    const back = tx(700, [update(5, 150)]);
    expect(ops(transactionEvents(back.tx, back.resolved, f, 1, 'fail'))).toEqual(['d{"id":5}']);
    const after = tx(950, [update(5, 150)]);
    expect(ops(transactionEvents(after.tx, after.resolved, f, 1, 'fail'))).toEqual(['d{"id":5}', 'c{"id":150}']);
  });

  it('numbers only the events it emits, so rows stay consecutive after filtering', async () => {
    const f = await filterWithTwoChunks();
    const t = tx(600, [insert(150), insert(5), insert(151), insert(6)]);
    const events = transactionEvents(t.tx, t.resolved, f, 1, 'fail');
    expect(ops(events)).toEqual(['c{"id":5}', 'c{"id":6}']);
    expect(events.map((e) => e.row)).toEqual([0, 1]);
  });

  it('puts a truncate first, unfiltered, with an empty key', async () => {
    const f = await filterWithTwoChunks();
    const t = tx(600, [insert(5)], true);
    const events = transactionEvents(t.tx, t.resolved, f, 1, 'fail');
    expect(events.map((e) => [e.op, e.key, e.row])).toEqual([
      ['t', '{}', 0],
      ['c', '{"id":5}', 1],
    ]);
  });

  it('passes everything once the position is past the largest high watermark', async () => {
    const f = await filterWithTwoChunks();
    const t = tx(901, [insert(1), insert(500)]);
    expect(ops(transactionEvents(t.tx, t.resolved, f, 1, 'fail'))).toEqual(['c{"id":1}', 'c{"id":500}']);
  });

  it('while a first snapshot runs inside the stream, drops keys no done chunk covers yet', async () => {
    const f = new HandoffFilter();
    await f.addTable('shop.orders', [chunk(0, null, 100, 500)], order, true);
    const t = tx(600, [insert(5), insert(150)]);
    expect(ops(transactionEvents(t.tx, t.resolved, f, 1, 'fail'))).toEqual(['c{"id":5}']);
    f.finishTable('shop.orders');
    expect(ops(transactionEvents(t.tx, t.resolved, f, 1, 'fail'))).toEqual(['c{"id":5}', 'c{"id":150}']);
  });

  describe('a row that cannot be encoded', () => {
    const blobSchema: TableSchema = { db: 'shop', table: 'files', columns: [col('id', 'int'), col('b', 'blob')], primaryKey: ['id'], collation: null };
    const blobCodec = snapshotTable(blobSchema, [blobSchema.columns[0]!], order);
    const blobTable: CapturedTable = { name: 'shop.files', schema: blobSchema, chunkKey: ['id'] };
    // A blob the reader handed over as a number: no converter can make bytes of it.
    const bad = (id: number): ResolvedChange => ({
      change: {
        kind: 'update',
        db: 'shop',
        table: 'files',
        before: { id, b: Buffer.from('x') },
        after: { id: id + 100, b: 5 },
        row: 0,
        pos: 1,
        columns: undefined,
      },
      table: { table: blobTable, codec: blobCodec },
    });
    const good = tx(1000, [insert(1)]);

    it('becomes one dead letter in its place, with the whole change and its key, and the transaction goes on', () => {
      const events = transactionEvents(good.tx, [bad(7), ...good.resolved], new HandoffFilter(), 1, 'dead-letter');
      expect(events.map((e) => e.op)).toEqual(['dead', 'c']);
      expect(events.map((e) => e.row)).toEqual([0, 1]);
      const dead = events[0]!;
      if (dead.op !== 'dead') throw new Error('not a dead letter');
      expect(dead).toMatchObject({ db: 'shop', table: 'files', key: '{"id":107}', reason: 'decode' });
      expect(JSON.parse(dead.raw!)).toEqual({ before: { id: 7, b: 'eA==' }, after: { id: 107, b: 5 } });
      expect(dead.error).toMatch(/expected bytes/);
    });

    it('stops the run with errors.mode fail, naming the table, key, position and the setting', () => {
      expect(() => transactionEvents(good.tx, [bad(7)], new HandoffFilter(), 1, 'fail')).toThrow(
        /cannot encode a row of shop\.files with key \{"id":107\} in the binlog transaction ending at binlog\.000003:1000 \(GTID g:1\).*errors\.mode: dead-letter/,
      );
    });
  });
});
