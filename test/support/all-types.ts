import type { Row } from './consistency.js';
import type { Flavour } from './db.js';

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
  i8: null,
  u8: null,
  i16: null,
  u16: null,
  i24: null,
  u24: null,
  i32: null,
  u32: null,
  i64: null,
  u64: null,
  dec65: null,
  dec10: null,
  f: null,
  d: null,
  ch: null,
  vc: null,
  tx: null,
  bn: null,
  vb: null,
  bl: null,
  dt: null,
  dt0: null,
  dt3: null,
  dt6: null,
  ts0: null,
  ts6: null,
  tm0: null,
  tm6: null,
  y: null,
  j: null,
  e: null,
  s: null,
  b1: null,
  b12: null,
  b64: null,
};

/** JSON_TEXT as the server prints it: MySQL reformats the stored binary document, MariaDB keeps the text it stored. */
const JSON_TEXT_PRINTED: Record<Flavour, string> = {
  mysql: '{"a": {"b": [1, 2.5, "😀", null, true]}, "s": "ü €", "big": 18446744073709551615, "neg": -9223372036854775808, "safe": 9007199254740991}',
  mariadb: JSON_TEXT,
};

/** The canonical values of rows 1..N, without `id` (the copies differ only there). */
export function expectedAllTypesRows(flavour: Flavour): Row[] {
  // MariaDB's JSON is a LONGTEXT recognised by its json_valid() check; both flavours' documents come out as their text.
  return [
    {
      i8: 127,
      u8: 255,
      i16: 32767,
      u16: 65535,
      i24: 8388607,
      u24: 16777215,
      i32: 2147483647,
      u32: 4294967295,
      i64: '9223372036854775807',
      u64: '18446744073709551615',
      dec65: NINES,
      dec10: '999999.9999',
      f: 1.2345678,
      d: 0.30000000000000004,
      ch: 'é😀',
      vc: 'x😀y',
      tx: 'tëxt 😀',
      bn: 'AP+AAA==',
      vb: '//4A',
      bl: 'gIGCg8M=',
      dt: '9999-12-31',
      dt0: '9999-12-31T23:59:59',
      dt3: '2024-02-29T23:59:59.999',
      dt6: '9999-12-31T23:59:59.999999',
      ts0: '1970-01-01T00:00:01Z',
      ts6: '2038-01-19T03:14:07.999999Z',
      tm0: '838:59:59',
      tm6: '838:59:58.999999',
      y: 2155,
      j: JSON_TEXT_PRINTED[flavour],
      e: 'c😀',
      s: ['a', 'b', 'c'],
      b1: 1,
      b12: 4095,
      b64: '//////////8=',
    },
    {
      i8: -128,
      u8: 0,
      i16: -32768,
      u16: 0,
      i24: -8388608,
      u24: 0,
      i32: -2147483648,
      u32: 0,
      i64: '-9223372036854775808',
      u64: 0,
      dec65: `-${NINES}`,
      dec10: '-12.3400',
      f: -1234565,
      d: -1.7976931348623157e308,
      ch: '',
      vc: '',
      tx: '',
      bn: '/wAAAA==',
      vb: '',
      bl: '',
      dt: '1000-01-01',
      dt0: '1000-01-01T00:00:00',
      dt3: '1000-01-01T00:00:00.000',
      dt6: '1000-01-01T00:00:00.000001',
      ts0: '2000-01-01T00:00:00Z',
      ts6: '1999-12-31T23:59:59.000001Z',
      tm0: '-838:59:59',
      tm6: '-838:59:59.000000',
      y: 1901,
      j: '[]',
      e: 'a',
      s: [],
      b1: 0,
      b12: 0,
      b64: 'AAAAAAAAAAA=',
    },
    { ...NULL_ROW },
    {
      ...NULL_ROW,
      i64: '9007199254740992',
      u64: 9007199254740991,
      dec65: '0.000000000000000000000000000001',
      dec10: '-0.5000',
      f: 12345.25,
      d: 2.2250738585072014e-308,
      ch: 'ab',
      bn: 'wMH1/w==',
      dt: null,
      dt0: null,
      dt3: '2024-02-29T00:00:00.500',
      dt6: null,
      ts0: null,
      ts6: null,
      tm0: '-00:01:00',
      tm6: '-10:00:00.000000',
      y: 0,
      j: '"just text"',
      e: '',
      s: ['b'],
      b12: 2730,
      b64: 'gAAAAAAAAAE=',
    },
  ];
}

/** A table of the values tests: its DDL, its rows' INSERTs by id, and the canonical values of rows 1..N without `id`. */
export interface ValuesTable {
  name: string;
  ddl: string;
  inserts: ((id: number) => string)[];
  expected(): Row[];
}

/** The all-types table above, as a ValuesTable. */
export function allTypesTable(flavour: Flavour): ValuesTable {
  return { name: 't', ddl: ALL_TYPES_DDL, inserts: ALL_TYPES_INSERTS, expected: () => expectedAllTypesRows(flavour) };
}

/**
 * The second table: what one reader used to lose or decode differently from the other. JSON documents (on MySQL
 * built by SQL so that they hold DECIMALs, temporal and opaque values; MariaDB keeps the text it is given), JSON
 * null beside SQL NULL, spatial values with their SRID, FLOAT at float32's limits, DOUBLE -0 (MariaDB stores +0),
 * text in non-UTF-8 charsets holding the bytes whose conversion differs between the server and iconv-lite, text
 * and bytes after spatial columns (which shift the charsets zongji reads from MariaDB's binlog metadata), and
 * MariaDB's UUID/INET4/INET6 (with trailing zero bytes, which the binlog drops).
 */
export function flavourTypesTable(flavour: Flavour): ValuesTable {
  const rows = flavour === 'mysql' ? MYSQL_ROWS : MARIADB_ROWS;
  const columns = Object.keys(rows[0]!.expected);
  return {
    name: 't2',
    ddl: flavour === 'mysql' ? MYSQL_DDL : MARIADB_DDL,
    inserts: rows.map(
      ({ sql }) =>
        (id) =>
          `INSERT INTO t2 (id${Object.keys(sql)
            .map((c) => `, ${c}`)
            .join('')}) VALUES (${id}${Object.values(sql)
            .map((v) => `, ${v}`)
            .join('')})`,
    ),
    expected: () => rows.map(({ expected }) => ({ ...Object.fromEntries(columns.map((c) => [c, null])), ...expected })),
  };
}

const CHARSET_COLUMNS = `l1 VARCHAR(20) CHARACTER SET latin1, l1t TEXT CHARACTER SET latin1, l1c CHAR(8) CHARACTER SET latin1,
  cp VARCHAR(10) CHARACTER SET cp1251, sj VARCHAR(10) CHARACTER SET sjis, b5 VARCHAR(10) CHARACTER SET big5, eu VARCHAR(10) CHARACTER SET ujis,
  u16 VARCHAR(10) CHARACTER SET utf16, u32 TEXT CHARACTER SET utf32, tx VARCHAR(20), bn BINARY(4)`;

const MYSQL_DDL = `CREATE TABLE t2 (
  id INT PRIMARY KEY, j JSON, g GEOMETRY, pt POINT SRID 4326, f FLOAT, d DOUBLE,
  ${CHARSET_COLUMNS}, gb VARCHAR(10) CHARACTER SET gb18030
) DEFAULT CHARSET utf8mb4`;

const MARIADB_DDL = `CREATE TABLE t2 (
  id INT PRIMARY KEY, j JSON, g GEOMETRY, pt POINT REF_SYSTEM_ID=4326, f FLOAT, d DOUBLE,
  ${CHARSET_COLUMNS}, u UUID, i4 INET4, i6 INET6
) DEFAULT CHARSET utf8mb4`;

const geometry = (hex: string, srid: number) => ({ wkb: Buffer.from(hex, 'hex').toString('base64'), srid });

const POINT_1_2 = '0101000000000000000000f03f0000000000000040';
const LINESTRING = '01020000000200000000000000000000000000000000000000000000000000f03f000000000000f03f';
const POLYGON =
  '0103000000010000000400000000000000000000000000000000000000000000000000f03f0000000000000000000000000000f03f000000000000f03f00000000000000000000000000000000';
const EMPTY_COLLECTION = '010700000000000000';
const MULTIPOINT = '0104000000020000000101000000000000000000f03f000000000000f03f010100000000000000000000400000000000000040';

const BIG_TEXT = 'x'.repeat(70000);

/** Columns both flavours' rows share, by row: SQL and canonical value. */
const SHARED: { sql: Record<string, string>; expected: Row }[] = [
  {
    sql: {
      g: "ST_GeomFromText('POINT(1 2)')",
      f: '1.2345678',
      d: '0.1e0',
      l1: "X'41818D8F909D80FF'",
      l1t: "X'8190'",
      l1c: "X'8D8F'",
      cp: "X'CFF0E8E2E5F2'",
      sj: "X'815F8160817C'",
      b5: "X'A145A1C2'",
      eu: "X'A1C0F5A1'",
      u16: "'é😀'",
      u32: "'😀x'",
      tx: "'é😀'",
      bn: "X'FF'",
    },
    expected: {
      g: geometry(POINT_1_2, 0),
      f: 1.2345678,
      d: 0.1,
      l1: 'A\u0081\u008d\u008f\u0090\u009d€ÿ',
      l1t: '\u0081\u0090',
      l1c: '\u008d\u008f',
      cp: 'Привет',
      sj: '\\\u301c\u2212',
      b5: '\u2022\u203e',
      eu: '\\\ue000',
      u16: 'é😀',
      u32: '😀x',
      tx: 'é😀',
      bn: '/wAAAA==',
    },
  },
  {
    sql: { g: "ST_GeomFromText('LINESTRING(0 0, 1 1)', 3857)", f: '3.4028234e38', d: '5e-324', l1: "'plain'" },
    expected: { g: geometry(LINESTRING, 3857), f: 3.4028235e38, d: 5e-324, l1: 'plain' },
  },
  {
    sql: { g: "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", f: '-0e0', d: '-0e0' },
    expected: { g: geometry(POLYGON, 0) },
  },
  { sql: {}, expected: {} },
  {
    sql: { g: "ST_GeomFromText('GEOMETRYCOLLECTION EMPTY')", f: '1e-45', d: '1.7976931348623157e308' },
    expected: { g: geometry(EMPTY_COLLECTION, 0), f: 1e-45, d: 1.7976931348623157e308 },
  },
  {
    sql: { g: "ST_GeomFromText('MULTIPOINT(1 1, 2 2)')", f: '16777217', d: '-2.5e0' },
    expected: { g: geometry(MULTIPOINT, 0), f: 16777216, d: -2.5 },
  },
  { sql: { f: '1.17549435e-38', d: '123456789.125e0' }, expected: { f: 1.1754944e-38, d: 123456789.125 } },
];

/**
 * MySQL keeps DOUBLE and FLOAT -0 and stores a geographic SRS's points longitude first (x = 20 for
 * POINT(10 20) in SRID 4326, whose WKT is latitude first).
 */
const MYSQL_ROWS = withShared([
  {
    sql: {
      j: "JSON_OBJECT('price', CAST(12.50 AS DECIMAL(10,2)), 'big', CAST('123456789012345678901234567890' AS DECIMAL(30,0)), 'frac', CAST('-1234567890123456789012345678.90' AS DECIMAL(30,2)))",
      pt: "ST_GeomFromText('POINT(10 20)', 4326)",
      gb: "X'A3A081308130'",
    },
    expected: {
      j: '{"big": 123456789012345678901234567890, "frac": -1234567890123456789012345678.90, "price": 12.50}',
      pt: geometry('010100000000000000000034400000000000002440', 4326),
      gb: '\ue5e5\u0080',
    },
  },
  {
    sql: {
      j: "CAST('[18446744073709551615, -9223372036854775808, 9007199254740993, 18446744073709551616, -0.0, 1.0, 1e16, 0.1, 12.50, 3938927522752580.5, 1e-7]' AS JSON)",
    },
    expected: {
      j: '[18446744073709551615, -9223372036854775808, 9007199254740993, 1.8446744073709552e19, -0.0, 1.0, 1e16, 0.1, 12.5, 3938927522752580.5, 0.0000001]',
    },
  },
  { sql: { j: "CAST('null' AS JSON)" }, expected: { j: 'null', f: -0, d: -0 } },
  { sql: {}, expected: {} },
  {
    sql: {
      j: "JSON_ARRAY(DATE'2024-02-29', CAST('2024-02-29 23:59:59.999999' AS DATETIME(6)), CAST('-838:59:59' AS TIME), X'00FF', 'a\"b\\\\c\\n😀\\té', TRUE, FALSE, JSON_OBJECT())",
    },
    expected: { j: '["2024-02-29", "2024-02-29 23:59:59.999999", "-838:59:59.000000", "base64:type15:AP8=", "a\\"b\\\\c\\n😀\\té", true, false, {}]' },
  },
  {
    sql: { j: "JSON_OBJECT('n', 100000, 'k', REPEAT('x', 70000), 'm', -100000)" },
    expected: { j: `{"k": "${BIG_TEXT}", "m": -100000, "n": 100000}` },
  },
  { sql: { j: `CAST('"just text"' AS JSON)` }, expected: { j: '"just text"' } },
]);

/** MariaDB stores a JSON document's text as given and a DOUBLE or FLOAT -0 as 0. */
const MARIADB_ROWS = withShared([
  {
    sql: {
      j: `'{"price": 12.50, "big": 123456789012345678901234567890, "frac": -1234567890123456789012345678.90}'`,
      pt: "ST_GeomFromText('POINT(10 20)', 4326)",
      u: "'6ccd780c-baba-1026-9564-5b8c656024db'",
      i4: "'192.168.0.1'",
      i6: "'2001:db8::ff00:42:8329'",
    },
    expected: {
      j: '{"price": 12.50, "big": 123456789012345678901234567890, "frac": -1234567890123456789012345678.90}',
      pt: geometry('010100000000000000000024400000000000003440', 4326),
      u: '6ccd780c-baba-1026-9564-5b8c656024db',
      i4: '192.168.0.1',
      i6: '2001:db8::ff00:42:8329',
    },
  },
  {
    sql: {
      j: "'[18446744073709551615, -9223372036854775808, 9007199254740993, 18446744073709551616, -0.0, 1.0, 1e16, 0.1, 12.50]'",
      u: "'12345678-1234-1234-8234-123456780000'",
      i4: "'10.0.0.0'",
      i6: "'::ffff:1.2.3.4'",
    },
    expected: {
      j: '[18446744073709551615, -9223372036854775808, 9007199254740993, 18446744073709551616, -0.0, 1.0, 1e16, 0.1, 12.50]',
      u: '12345678-1234-1234-8234-123456780000',
      i4: '10.0.0.0',
      i6: '::ffff:1.2.3.4',
    },
  },
  {
    sql: { j: "'null'", u: "'00000000-0000-0000-0000-000000000000'", i4: "'0.0.0.0'", i6: "'::'" },
    expected: { j: 'null', f: 0, d: 0, u: '00000000-0000-0000-0000-000000000000', i4: '0.0.0.0', i6: '::' },
  },
  { sql: {}, expected: {} },
  {
    sql: { j: `' { "spaced" : [ 1 , 2 ] , "esc": "a\\\\"b\\\\\\\\c\\\\n\\\\u00e9" } '`, i6: "'::1.2.3.4'", u: "'01234567-89ab-4def-8123-456789abcdef'" },
    expected: { j: ' { "spaced" : [ 1 , 2 ] , "esc": "a\\"b\\\\c\\n\\u00e9" } ', i6: '::1.2.3.4', u: '01234567-89ab-4def-8123-456789abcdef' },
  },
  {
    sql: { j: `CONCAT('{"k": "', REPEAT('x', 70000), '"}')`, i6: "'fe80::'", i4: "'1.0.0.0'" },
    expected: { j: `{"k": "${BIG_TEXT}"}`, i6: 'fe80::', i4: '1.0.0.0' },
  },
  { sql: { j: `'"just text"'`, i6: "'::1'" }, expected: { j: '"just text"', i6: '::1' } },
]);

function withShared(rows: { sql: Record<string, string>; expected: Row }[]): { sql: Record<string, string>; expected: Row }[] {
  return rows.map((row, i) => ({ sql: { ...SHARED[i]!.sql, ...row.sql }, expected: { ...SHARED[i]!.expected, ...row.expected } }));
}
