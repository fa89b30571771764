import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import type { ChunkRecord } from '../../src/checkpoint/store.js';
import { KeyOrder } from '../../src/source/key-order.js';
import type { Position } from '../../src/source/position.js';
import { loadTableSchemas } from '../../src/source/schema.js';
import { HandoffFilter } from '../../src/sync/handoff.js';
import { FLAVOURS, freshDatabase, urlOf } from '../support/db.js';

const at = (pos: number): Position => ({ file: 'binlog.000001', pos });

// The hand-off filter of a string-keyed table compares keys by server sort weights, cached in memory. The cache
// is bounded; clearing it must not drop the chunk bounds' weights, or every later lookup throws.
describe.each(FLAVOURS)('sort weights of string chunk keys on %s', (flavour) => {
  it('keeps chunk bound weights when the weight cache overflows on a long stream', async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'weights');
    try {
      await conn.query('CREATE TABLE t (code VARCHAR(40) PRIMARY KEY) DEFAULT CHARSET utf8mb4');
      const schema = (await loadTableSchemas(conn, db, ['t'])).get('t')!;
      const pool = mysql.createPool({ uri: urlOf(flavour), connectionLimit: 2 });
      try {
        const order = await KeyOrder.create(pool, schema.columns);
        const chunk = (idx: number, lo: string | null, hi: string | null, hw: number): ChunkRecord => ({
          table: `${db}.t`,
          idx,
          lo: lo === null ? null : [lo],
          hi: hi === null ? null : [hi],
          status: 'done',
          lw: at(hw),
          hw: at(hw),
          rows: 1,
        });
        const filter = new HandoffFilter();
        await filter.addTable(`${db}.t`, [chunk(0, null, 'Mango', 500), chunk(1, 'Mango', null, 900)], order);
        // More distinct keys than the cache holds, as a stream of changes over hours would bring.
        const keys = Array.from({ length: 201_000 }, (_, i) => [`key ${i}`]);
        for (let i = 0; i < keys.length; i += 20_000) await filter.needsLookup(`${db}.t`, at(600))!.prepare(keys.slice(i, i + 20_000));
        await filter.needsLookup(`${db}.t`, at(600))!.prepare([['apple'], ['zebra']]);
        // 'apple' < 'Mango' (case-insensitive) lies in chunk 0, read at 500: passes at 600. 'zebra' in chunk 1 (900) does not.
        expect(filter.passes(`${db}.t`, ['apple'], at(600))).toBe(true);
        expect(filter.passes(`${db}.t`, ['zebra'], at(600))).toBe(false);
      } finally {
        await pool.end();
      }
    } finally {
      await conn.end();
    }
  });
});
