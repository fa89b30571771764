import { describe, expect, it } from 'vitest';
import { chunkWhere, keyColumnsOf, tupleCompare } from '../../src/source/chunker.js';
import type { TableSchema } from '../../src/source/schema.js';
import { col } from '../support/columns.js';

const id = col('id', 'bigint');
const a = col('a', 'int');
const s = col('s', 'varchar', { charset: 'utf8mb4', collation: 'utf8mb4_0900_ai_ci' });
const bin = col('h', 'varbinary');
const dt = col('at', 'datetime', { datetimePrecision: 6 });

describe('tupleCompare', () => {
  it('writes a one-column compare with the integer inlined', () => {
    expect(tupleCompare([id], [42], '>=')).toEqual({ text: '`id` >= 42', params: [] });
    expect(tupleCompare([id], [42], '<')).toEqual({ text: '`id` < 42', params: [] });
    expect(tupleCompare([id], ['-18446744073709551615'], '<')).toEqual({ text: '`id` < -18446744073709551615', params: [] });
  });

  it('expands a two-column tuple into OR/AND with the right strict operator', () => {
    expect(tupleCompare([a, s], [7, 'x'], '>=')).toEqual({
      text: '(`a` > 7 OR (`a` = 7 AND `s` >= ?))',
      params: ['x'],
    });
    expect(tupleCompare([a, s], [7, 'x'], '<')).toEqual({
      text: '(`a` < 7 OR (`a` = 7 AND `s` < ?))',
      params: ['x'],
    });
  });

  it('repeats a parameterised component for its strict and equality compare, in text order', () => {
    expect(tupleCompare([s, a, bin], ['k', 3, Buffer.from([1, 2]).toString('base64')], '>=')).toEqual({
      text: '(`s` > ? OR (`s` = ? AND (`a` > 3 OR (`a` = 3 AND `h` >= ?))))',
      params: ['k', 'k', Buffer.from([1, 2])],
    });
    expect(
      tupleCompare(
        [s, s, s].map((c, i) => ({ ...c, name: `c${i}` })),
        ['x', 'y', 'z'],
        '<',
      ),
    ).toEqual({
      text: '(`c0` < ? OR (`c0` = ? AND (`c1` < ? OR (`c1` = ? AND `c2` < ?))))',
      params: ['x', 'x', 'y', 'y', 'z'],
    });
  });

  it('quotes identifiers with backticks doubled', () => {
    expect(tupleCompare([col('we`ird', 'int')], [1], '<').text).toBe('`we``ird` < 1');
  });

  it('inlines DECIMAL and YEAR keys and rejects non-numeric text for numeric columns', () => {
    expect(tupleCompare([col('d', 'decimal')], ['-12.500'], '>=')).toEqual({ text: '`d` >= -12.500', params: [] });
    expect(tupleCompare([col('y', 'year')], [2024], '<')).toEqual({ text: '`y` < 2024', params: [] });
    expect(() => tupleCompare([id], ['1; DROP TABLE t'], '>=')).toThrow('bad numeric key value for id: 1; DROP TABLE t');
    expect(() => tupleCompare([id], ['0x10'], '>=')).toThrow('bad numeric key value for id: 0x10');
    expect(() => tupleCompare([id], [''], '>=')).toThrow('bad numeric key value for id: ');
    expect(() => tupleCompare([id], [null], '>=')).toThrow('bad numeric key value for id: null');
    expect(() => tupleCompare([id], [1e21], '>=')).toThrow('bad numeric key value for id: 1e+21');
    // A bad value in a later column is caught too, not only the first.
    expect(() => tupleCompare([a, col('b', 'smallint')], [1, 'x'], '<')).toThrow('bad numeric key value for b: x');
  });

  it('passes binary keys as bytes decoded from base64', () => {
    const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80]);
    const sql = tupleCompare([bin], [bytes.toString('base64')], '>=');
    expect(sql.text).toBe('`h` >= ?');
    expect(sql.params).toHaveLength(1);
    expect(Buffer.isBuffer(sql.params[0])).toBe(true);
    expect(sql.params[0]).toEqual(bytes);
    for (const t of ['binary', 'tinyblob', 'blob', 'mediumblob', 'longblob']) {
      expect(tupleCompare([col('b', t)], ['AQI='], '<').params).toEqual([Buffer.from([1, 2])]);
    }
  });

  it('turns DATETIME and TIMESTAMP keys back into the server literal form', () => {
    expect(tupleCompare([dt], ['2024-02-29T23:59:59.123456'], '>=')).toEqual({ text: '`at` >= ?', params: ['2024-02-29 23:59:59.123456'] });
    expect(tupleCompare([col('ts', 'timestamp')], ['2024-02-29T23:59:59Z'], '<')).toEqual({ text: '`ts` < ?', params: ['2024-02-29 23:59:59'] });
  });

  it('passes other key types as they are', () => {
    expect(tupleCompare([col('d', 'date')], ['2024-01-31'], '<')).toEqual({ text: '`d` < ?', params: ['2024-01-31'] });
    expect(tupleCompare([s], ['Ünïcode'], '>=')).toEqual({ text: '`s` >= ?', params: ['Ünïcode'] });
  });
});

describe('chunkWhere', () => {
  it('selects everything when both bounds are open', () => {
    expect(chunkWhere([id], null, null)).toEqual({ text: '1=1', params: [] });
  });

  it('drops the missing side of a half-open chunk', () => {
    expect(chunkWhere([id], null, [100])).toEqual({ text: '`id` < 100', params: [] });
    expect(chunkWhere([id], [100], null)).toEqual({ text: '`id` >= 100', params: [] });
  });

  it('joins lower and upper bound with AND, lower bound parameters first', () => {
    expect(chunkWhere([id], [100], [200])).toEqual({ text: '`id` >= 100 AND `id` < 200', params: [] });
    expect(chunkWhere([s, a], ['lo', 1], ['hi', 2])).toEqual({
      text: '(`s` > ? OR (`s` = ? AND `a` >= 1)) AND (`s` < ? OR (`s` = ? AND `a` < 2))',
      params: ['lo', 'lo', 'hi', 'hi'],
    });
  });

  it('keeps parameters aligned for a three-column key with mixed types', () => {
    const lo = [5, 'AQ==', '2024-01-01T00:00:00.000000'];
    const hi = [5, 'Ag==', '2023-01-01T00:00:00.000000'];
    const sql = chunkWhere([a, bin, dt], lo, hi);
    expect(sql.text).toBe(
      '(`a` > 5 OR (`a` = 5 AND (`h` > ? OR (`h` = ? AND `at` >= ?)))) AND ' + '(`a` < 5 OR (`a` = 5 AND (`h` < ? OR (`h` = ? AND `at` < ?))))',
    );
    expect(sql.params).toEqual([
      Buffer.from([1]),
      Buffer.from([1]),
      '2024-01-01 00:00:00.000000',
      Buffer.from([2]),
      Buffer.from([2]),
      '2023-01-01 00:00:00.000000',
    ]);
    // One '?' per parameter.
    expect(sql.text.split('?').length - 1).toBe(sql.params.length);
  });
});

describe('keyColumnsOf', () => {
  const table: TableSchema = { db: 'shop', table: 'orders', columns: [id, a, s], primaryKey: ['id'], collation: null };

  it('returns the named columns in the order asked for', () => {
    expect(keyColumnsOf(table, ['s', 'id'])).toEqual([s, id]);
  });

  it('rejects a column the table does not have', () => {
    expect(() => keyColumnsOf(table, ['nope'])).toThrow('chunk key column nope is not a column of shop.orders');
  });
});
