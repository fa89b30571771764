import type { Connection } from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import type { KeyTuple } from '../../src/checkpoint/store.js';
import { findChunk, KeyOrder } from '../../src/source/key-order.js';
import { col } from '../support/columns.js';

/** Plain numeric tuple order: enough to exercise the search on its own. */
const numeric = {
  calls: 0,
  compare(a: KeyTuple, b: KeyTuple): number {
    this.calls++;
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = Number(a[i]) - Number(b[i]);
      if (d !== 0) return d < 0 ? -1 : 1;
    }
    return 0;
  },
};

/** Only the sign of a comparison is its contract. */
const sgn = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);

const chunksFrom = (bounds: number[]) => [{ lo: null, id: 0 }, ...bounds.map((b, i) => ({ lo: [b] as KeyTuple, id: i + 1 }))];

describe('findChunk', () => {
  // Chunks: #0 (-inf, 10), #1 [10, 20), #2 [20, 30), #3 [30, +inf)
  const chunks = chunksFrom([10, 20, 30]);

  it('puts keys below the first bound in the open first chunk', () => {
    expect(findChunk(chunks, [9], numeric)?.id).toBe(0);
    expect(findChunk(chunks, [-1_000_000], numeric)?.id).toBe(0);
  });

  it('puts a key equal to a lower bound in the chunk starting there', () => {
    expect(findChunk(chunks, [10], numeric)?.id).toBe(1);
    expect(findChunk(chunks, [20], numeric)?.id).toBe(2);
    expect(findChunk(chunks, [30], numeric)?.id).toBe(3);
  });

  it('puts keys between bounds in the chunk below them', () => {
    expect(findChunk(chunks, [11], numeric)?.id).toBe(1);
    expect(findChunk(chunks, [19], numeric)?.id).toBe(1);
    expect(findChunk(chunks, [29], numeric)?.id).toBe(2);
  });

  it('puts keys after the last bound in the open last chunk', () => {
    expect(findChunk(chunks, [31], numeric)?.id).toBe(3);
    expect(findChunk(chunks, [1e12], numeric)?.id).toBe(3);
  });

  it('handles a single open chunk and no chunks', () => {
    expect(findChunk([{ lo: null, id: 'only' }], [5], numeric)?.id).toBe('only');
    expect(findChunk([], [5], numeric)).toBeUndefined();
  });

  it('finds nothing below the first bound when the first chunk has one', () => {
    // StreamFilter passes only done chunks; if chunk 0 were missing, keys below chunk 1 belong to none.
    const withoutFirst = chunks.slice(1);
    expect(findChunk(withoutFirst, [5], numeric)).toBeUndefined();
    expect(findChunk(withoutFirst, [10], numeric)?.id).toBe(1);
  });

  it('compares composite keys as tuples', () => {
    const composite = [
      { lo: null, id: 0 },
      { lo: [1, 100] as KeyTuple, id: 1 },
      { lo: [2, 0] as KeyTuple, id: 2 },
      { lo: [2, 50] as KeyTuple, id: 3 },
    ];
    expect(findChunk(composite, [1, 99], numeric)?.id).toBe(0);
    expect(findChunk(composite, [1, 100], numeric)?.id).toBe(1);
    expect(findChunk(composite, [1, 1_000_000], numeric)?.id).toBe(1);
    expect(findChunk(composite, [2, 49], numeric)?.id).toBe(2);
    expect(findChunk(composite, [2, 50], numeric)?.id).toBe(3);
    expect(findChunk(composite, [3, 0], numeric)?.id).toBe(3);
  });

  it('finds the right chunk among thousands with a logarithmic number of comparisons', () => {
    const n = 5000;
    const many = chunksFrom(Array.from({ length: n }, (_, i) => (i + 1) * 10)); // #k covers [10k, 10k+10)
    for (const key of [0, 9, 10, 15, 12_345, 25_000, 49_999, 50_000, 50_001, 1e9]) {
      numeric.calls = 0;
      const expected = Math.min(Math.floor(key / 10), n);
      expect(findChunk(many, [key], numeric)?.id, `key ${key}`).toBe(expected);
      expect(numeric.calls, `comparisons for key ${key}`).toBeLessThanOrEqual(Math.ceil(Math.log2(n + 1)) + 1);
    }
    // Every bound and every key just below it, exhaustively.
    for (let k = 1; k <= n; k++) {
      expect(findChunk(many, [k * 10], numeric)?.id).toBe(k);
      expect(findChunk(many, [k * 10 - 1], numeric)?.id).toBe(k - 1);
    }
  });
});

/**
 * KeyOrder.create only talks to the server for collated columns (their pad attribute and sort
 * weights), so numeric, binary and temporal keys can be ordered with a connection that throws on use.
 */
const noServer = new Proxy(
  {},
  {
    get: (_t, prop) => () => {
      throw new Error(`unexpected server call: ${String(prop)}`);
    },
  },
) as unknown as Connection;

describe('KeyOrder without collated columns', () => {
  it('orders integers exactly, including BIGINT UNSIGNED beyond 2^53 as strings', async () => {
    const order = await KeyOrder.create(noServer, [col('id', 'bigint', { unsigned: true })]);
    expect(order.needsPrepare).toBe(false);
    expect(sgn(order.compare([9], [10]))).toBe(-1);
    expect(sgn(order.compare([10], [9]))).toBe(1);
    expect(sgn(order.compare([-5], [3]))).toBe(-1);
    expect(sgn(order.compare([7], ['7']))).toBe(0);
    // Adjacent values that a double cannot tell apart.
    expect(sgn(order.compare(['18446744073709551614'], ['18446744073709551615']))).toBe(-1);
    expect(sgn(order.compare(['9007199254740993'], [9007199254740992]))).toBe(1);
  });

  it('orders DECIMAL strings exactly, ignoring trailing fractional zeros', async () => {
    const order = await KeyOrder.create(noServer, [col('d', 'decimal')]);
    expect(sgn(order.compare(['1.50'], ['1.5']))).toBe(0);
    expect(sgn(order.compare(['9.99'], ['10.00']))).toBe(-1);
    expect(sgn(order.compare(['10'], ['9.5']))).toBe(1);
    expect(sgn(order.compare(['-1.5'], ['-1.25']))).toBe(-1);
    expect(sgn(order.compare(['-10.1'], ['-9.9']))).toBe(-1);
    expect(sgn(order.compare(['-0.5'], ['0.25']))).toBe(-1);
    expect(sgn(order.compare(['0.001'], ['0.0009']))).toBe(1);
    expect(sgn(order.compare(['12345678901234567890.000000001'], ['12345678901234567890']))).toBe(1);
  });

  it('orders binary keys bytewise from their base64 form', async () => {
    const order = await KeyOrder.create(noServer, [col('b', 'varbinary')]);
    const b64 = (...bytes: number[]) => Buffer.from(bytes).toString('base64');
    expect(sgn(order.compare([b64(0x01)], [b64(0x02)]))).toBe(-1);
    expect(sgn(order.compare([b64(0xff)], [b64(0x01, 0x00)]))).toBe(1);
    expect(sgn(order.compare([b64(0x01)], [b64(0x01, 0x00)]))).toBe(-1);
    expect(sgn(order.compare([b64(0x7f, 0x80)], [b64(0x7f, 0x80)]))).toBe(0);
  });

  it('orders BIT keys, which are canonical numbers up to 53 bits, numerically', async () => {
    const order = await KeyOrder.create(noServer, [col('flags', 'bit', { columnType: 'bit(16)', numericPrecision: 16 })]);
    expect(sgn(order.compare([2], [3]))).toBe(-1);
    expect(sgn(order.compare([255], [256]))).toBe(-1);
    expect(sgn(order.compare([300], [7]))).toBe(1);
  });

  it('orders FLOAT/DOUBLE keys numerically, also when JavaScript prints them in exponent form', async () => {
    const order = await KeyOrder.create(noServer, [col('x', 'double')]);
    expect(sgn(order.compare([0.25], [0.5]))).toBe(-1);
    expect(sgn(order.compare([-2.5], [1.25]))).toBe(-1);
    // String(1e-7) is '1e-7': read as digits it looks larger than 0.5.
    expect(sgn(order.compare([1e-7], [0.5]))).toBe(-1);
    expect(sgn(order.compare([0.5], [1e-7]))).toBe(1);
  });

  it('orders DATETIME keys by their ISO text', async () => {
    const order = await KeyOrder.create(noServer, [col('t', 'datetime')]);
    expect(sgn(order.compare(['2024-01-02T03:04:05.000001'], ['2024-01-02T03:04:05.000002']))).toBe(-1);
    expect(sgn(order.compare(['2025-01-01T00:00:00'], ['2024-12-31T23:59:59']))).toBe(1);
  });

  it('compares composite keys column by column and tests [lo, hi) membership', async () => {
    const order = await KeyOrder.create(noServer, [col('a', 'int'), col('b', 'bigint')]);
    expect(sgn(order.compare([1, '99999999999999999999'], [2, 0]))).toBe(-1);
    expect(sgn(order.compare([2, 10], [2, 9]))).toBe(1);
    expect(order.inRange([2, 5], [2, 5], [3, 0])).toBe(true);
    expect(order.inRange([3, 0], [2, 5], [3, 0])).toBe(false);
    expect(order.inRange([2, 4], [2, 5], null)).toBe(false);
    expect(order.inRange([-100, 0], null, [2, 5])).toBe(true);
    expect(order.inRange([1e9, 0], null, null)).toBe(true);
  });

  it('prepare is a no-op without collated columns', async () => {
    const order = await KeyOrder.create(noServer, [col('id', 'int')]);
    await expect(order.prepare([[1], null, [2]])).resolves.toBeUndefined();
  });
});

describe('KeyOrder with a collated column (scripted connection)', () => {
  function scripted(pad: 'PAD SPACE' | 'NO PAD', weights: Record<string, string>) {
    const queries: { sql: string; params: unknown[] }[] = [];
    const conn = {
      async query(q: string | { sql: string }, params: unknown[] = []) {
        const sql = typeof q === 'string' ? q : q.sql;
        queries.push({ sql, params });
        if (sql.includes('PAD_ATTRIBUTE')) return [[{ pad }], []];
        return [
          [
            params.map((v) => {
              const w = weights[String(v)];
              if (w === undefined) throw new Error(`no scripted weight for ${String(v)}`);
              return w;
            }),
          ],
          [],
        ];
      },
    } as unknown as Connection;
    return { conn, queries };
  }

  it('compares by the server weights fetched in prepare, and refuses keys it has no weight for', async () => {
    // 'a' and 'A' weigh the same under a _ci collation; 'b' weighs more.
    const { conn, queries } = scripted('NO PAD', { a: '0041', A: '0041', b: '0042' });
    const order = await KeyOrder.create(conn, [col('s', 'varchar', { charset: 'utf8mb4', collation: 'utf8mb4_0900_ai_ci' })]);
    expect(order.needsPrepare).toBe(true);
    expect(() => order.compare(['a'], ['b'])).toThrow('key order: no sort weight prepared for "a"');
    await order.prepare([['a'], ['A'], null, ['b'], ['a']]);
    expect(sgn(order.compare(['a'], ['A']))).toBe(0);
    expect(sgn(order.compare(['A'], ['b']))).toBe(-1);
    const weightQueries = queries.filter((q) => q.sql.includes('WEIGHT_STRING'));
    expect(weightQueries).toHaveLength(1);
    expect(weightQueries[0]!.params).toEqual(['a', 'A', 'b']);
    expect(weightQueries[0]!.sql).toBe(
      'SELECT HEX(WEIGHT_STRING(CONVERT(? USING utf8mb4) COLLATE utf8mb4_0900_ai_ci)), ' +
        'HEX(WEIGHT_STRING(CONVERT(? USING utf8mb4) COLLATE utf8mb4_0900_ai_ci)), ' +
        'HEX(WEIGHT_STRING(CONVERT(? USING utf8mb4) COLLATE utf8mb4_0900_ai_ci))',
    );
    // Known weights are not fetched again.
    await order.prepare([['a'], ['b']]);
    expect(queries.filter((q) => q.sql.includes('WEIGHT_STRING'))).toHaveLength(1);
  });

  it('drops trailing spaces before looking up weights under a PAD SPACE collation', async () => {
    const { conn, queries } = scripted('PAD SPACE', { x: '0058' });
    const order = await KeyOrder.create(conn, [col('s', 'char', { charset: 'utf8mb4', collation: 'utf8mb4_general_ci' })]);
    await order.prepare([['x  '], ['x']]);
    expect(queries.filter((q) => q.sql.includes('WEIGHT_STRING')).map((q) => q.params)).toEqual([['x']]);
    expect(sgn(order.compare(['x   '], ['x']))).toBe(0);
  });

  it('fetches weights in batches of 500', async () => {
    const values = Array.from({ length: 1201 }, (_, i) => `v${String(i).padStart(5, '0')}`);
    const { conn, queries } = scripted('NO PAD', Object.fromEntries(values.map((v) => [v, Buffer.from(v).toString('hex')])));
    const order = await KeyOrder.create(conn, [col('s', 'varchar', { charset: 'utf8mb4', collation: 'utf8mb4_bin' })]);
    await order.prepare(values.map((v) => [v]));
    expect(queries.filter((q) => q.sql.includes('WEIGHT_STRING')).map((q) => q.params.length)).toEqual([500, 500, 201]);
    expect(sgn(order.compare(['v00007'], ['v01200']))).toBe(-1);
  });
});
