import type { Row } from './consistency.js';

/**
 * A table with one column of every type ARCHITECTURE §5 names, its edge-value rows and their
 * canonical values: the values tests check the encoder and `tidemark sync` against the same data.
 */
export const ALL_TYPES_DDL = `CREATE TABLE t (
  id INT PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED, i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED,
  i32 INT, u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), dec10 DECIMAL(10,4), f FLOAT, d DOUBLE,
  ch CHAR(10), vc VARCHAR(50), tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB,
  dt DATE, dt0 DATETIME(0), dt3 DATETIME(3), dt6 DATETIME(6), ts0 TIMESTAMP(0) NULL, ts6 TIMESTAMP(6) NULL,
  tm0 TIME(0), tm6 TIME(6), y YEAR, j JSON, e ENUM('a','b','c😀'), s SET('a','b','c'),
  b1 BIT(1), b12 BIT(12), b64 BIT(64)
) DEFAULT CHARSET utf8mb4`;

const NINES = `${'9'.repeat(35)}.${'9'.repeat(30)}`;
const JSON_TEXT = '{"a":{"b":[1,2.5,"😀",null,true]},"big":18446744073709551615,"neg":-9223372036854775808,"safe":9007199254740991,"s":"ü €"}';

// Written in a +05:30 session with a permissive sql_mode, so TIMESTAMP literals are local time and zero dates and
// the invalid ENUM index 0 are accepted. Parameterised by id so the binlog copies are written by the very same
// literals (and the same session time zone) as the snapshotted originals.
export const ALL_TYPES_INSERTS: ((id: number) => string)[] = [
  (id) => `INSERT INTO t VALUES (${id}, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
    '${NINES}', 999999.9999, 1.2345678, 0.1e0 + 0.2e0,
    'é😀', 'x😀y', 'tëxt 😀', X'00FF8000', X'FFFE00', X'80818283C3',
    '9999-12-31', '9999-12-31 23:59:59', '2024-02-29 23:59:59.999', '9999-12-31 23:59:59.999999', '1970-01-01 05:30:01', '2038-01-19 08:44:07.999999',
    '838:59:59', '838:59:58.999999', 2155, '${JSON_TEXT}', 'c😀', 'a,b,c',
    b'1', b'111111111111', b'1111111111111111111111111111111111111111111111111111111111111111')`,
  (id) => `INSERT INTO t VALUES (${id}, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
    '-${NINES}', -12.34, -1234565, -1.7976931348623157e308,
    '', '', '', X'FF', X'', X'',
    '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.000001', '2000-01-01 05:30:00', '2000-01-01 05:29:59.000001',
    '-838:59:59', '-838:59:59.000000', 1901, '[]', 'a', '',
    b'0', b'0', b'0')`,
  (id) => `INSERT INTO t (id) VALUES (${id})`,
  (id) => `INSERT INTO t (id, i64, u64, dec65, dec10, f, d, ch, bn, dt, dt0, dt3, dt6, ts0, ts6, tm0, tm6, y, j, e, s, b12, b64) VALUES
    (${id}, 9007199254740992, 9007199254740991, '0.000000000000000000000000000001', -0.5, 12345.25, 2.2250738585072014e-308, 'ab  ', X'C0C1F5FF',
     '0000-00-00', '0000-00-00 00:00:00', '2024-02-29 00:00:00.5', '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000',
     '-00:01:00', '-10:00:00', 0, '"just text"', 9, 'b', b'101010101010', b'1000000000000000000000000000000000000000000000000000000000000001')`,
];

const NULL_ROW = {
  i8: null, u8: null, i16: null, u16: null, i24: null, u24: null, i32: null, u32: null, i64: null, u64: null,
  dec65: null, dec10: null, f: null, d: null, ch: null, vc: null, tx: null, bn: null, vb: null, bl: null,
  dt: null, dt0: null, dt3: null, dt6: null, ts0: null, ts6: null, tm0: null, tm6: null, y: null, j: null, e: null, s: null,
  b1: null, b12: null, b64: null,
};

/** The canonical values of rows 1..N, without `id` (the copies differ only there). */
export function expectedAllTypesRows(): Row[] {
  // MariaDB's JSON is a LONGTEXT recognised by its json_valid() check, and parsed like MySQL's, so one table serves both.
  return [
    {
      i8: 127, u8: 255, i16: 32767, u16: 65535, i24: 8388607, u24: 16777215, i32: 2147483647, u32: 4294967295,
      i64: '9223372036854775807', u64: '18446744073709551615',
      dec65: NINES, dec10: '999999.9999', f: 1.23457, d: 0.30000000000000004,
      ch: 'é😀', vc: 'x😀y', tx: 'tëxt 😀', bn: 'AP+AAA==', vb: '//4A', bl: 'gIGCg8M=',
      dt: '9999-12-31', dt0: '9999-12-31T23:59:59', dt3: '2024-02-29T23:59:59.999', dt6: '9999-12-31T23:59:59.999999',
      ts0: '1970-01-01T00:00:01Z', ts6: '2038-01-19T03:14:07.999999Z',
      tm0: '838:59:59', tm6: '838:59:58.999999', y: 2155,
      j: { a: { b: [1, 2.5, '😀', null, true] }, big: '18446744073709551615', neg: '-9223372036854775808', safe: 9007199254740991, s: 'ü €' },
      e: 'c😀', s: ['a', 'b', 'c'], b1: 1, b12: 4095, b64: '//////////8=',
    },
    {
      i8: -128, u8: 0, i16: -32768, u16: 0, i24: -8388608, u24: 0, i32: -2147483648, u32: 0,
      i64: '-9223372036854775808', u64: 0,
      dec65: `-${NINES}`, dec10: '-12.3400', f: -1234560, d: -1.7976931348623157e308,
      ch: '', vc: '', tx: '', bn: '/wAAAA==', vb: '', bl: '',
      dt: '1000-01-01', dt0: '1000-01-01T00:00:00', dt3: '1000-01-01T00:00:00.000', dt6: '1000-01-01T00:00:00.000001',
      ts0: '2000-01-01T00:00:00Z', ts6: '1999-12-31T23:59:59.000001Z',
      tm0: '-838:59:59', tm6: '-838:59:59.000000', y: 1901, j: [],
      e: 'a', s: [], b1: 0, b12: 0, b64: 'AAAAAAAAAAA=',
    },
    { ...NULL_ROW },
    {
      ...NULL_ROW,
      i64: '9007199254740992', u64: 9007199254740991,
      dec65: '0.000000000000000000000000000001', dec10: '-0.5000', f: 12345.2, d: 2.2250738585072014e-308,
      ch: 'ab', bn: 'wMH1/w==',
      dt: null, dt0: null, dt3: '2024-02-29T00:00:00.500', dt6: null, ts0: null, ts6: null,
      tm0: '-00:01:00', tm6: '-10:00:00.000000', y: 0, j: 'just text',
      e: '', s: ['b'], b12: 2730, b64: 'gAAAAAAAAAE=',
    },
  ];
}
