import { describe, expect, it } from 'vitest';
import type { BinlogTransaction } from '../../src/source/binlog.js';
import { BACKLOG_FULL, BACKLOG_LOW, BinlogQueue } from '../../src/sync/stream/binlog-queue.js';

function tx(changes: number): BinlogTransaction {
  const change = { kind: 'insert' as const, db: 'd', table: 't', before: null, after: {}, row: 0, pos: 0 };
  return { changes: new Array(changes).fill(change), truncates: [], ddl: [], end: { file: 'f.000001', pos: 1 }, gtid: null, tsMs: 0 };
}

describe('BinlogQueue back-pressure', () => {
  it('is full above the row-change limit, whatever the number of transactions', () => {
    const q = new BinlogQueue();
    q.push(tx(BACKLOG_FULL.changes));
    expect(q.full).toBe(false);
    q.push(tx(1));
    expect(q.full).toBe(true);
    expect(q.length).toBe(2);
  });

  it('is full above the item limit, counting positions too', () => {
    const q = new BinlogQueue();
    for (let i = 0; i < BACKLOG_FULL.items; i++) q.push({ end: { file: 'f.000001', pos: i } });
    expect(q.full).toBe(false);
    q.push({ end: { file: 'f.000001', pos: 1 } });
    expect(q.full).toBe(true);
  });

  it('is low again only well below full, so reading resumes before the backlog runs dry', () => {
    const q = new BinlogQueue();
    q.push(tx(BACKLOG_LOW.changes));
    q.push(tx(BACKLOG_FULL.changes - BACKLOG_LOW.changes + 1));
    expect(q.full).toBe(true);
    q.shift();
    expect(q.full).toBe(false);
    expect(q.low).toBe(false);
    q.shift();
    expect(q.low).toBe(true);
    expect(q.shift()).toBeUndefined();
  });

  it('forgets everything on clear, counts included', () => {
    const q = new BinlogQueue();
    q.push(tx(BACKLOG_FULL.changes + 1));
    q.clear();
    expect(q.length).toBe(0);
    expect(q.full).toBe(false);
    expect(q.low).toBe(true);
    expect(q.shift()).toBeUndefined();
  });

  it('hands items out in the order they arrived', () => {
    const q = new BinlogQueue();
    const a = tx(1);
    const p = { end: { file: 'f.000001', pos: 9 } };
    q.push(a);
    q.push(p);
    expect(q.shift()).toBe(a);
    expect(q.shift()).toBe(p);
  });
});
