import { describe, expect, it } from 'vitest';
import {
  BINLOG_CONNECTION_OPTIONS,
  encodeValue,
  makeRowWriter,
  repairNegativeTime,
  SNAPSHOT_CONNECTION_OPTIONS,
  SNAPSHOT_SESSION_SQL,
  shortestFloat32,
  snapshotSelectList,
} from '../../src/events/values.js';
import type { ColumnInfo } from '../../src/source/schema.js';
import { col as column } from '../support/columns.js';

/** The shared column builder, taking the column type (e.g. 'bigint unsigned', 'datetime(6)') third. */
function col(name: string, dataType: string, columnType = dataType, extra: Partial<ColumnInfo> = {}): ColumnInfo {
  return column(name, dataType, { columnType, unsigned: columnType.includes('unsigned'), ...extra });
}

const both = ['snapshot', 'binlog'] as const;

describe('connection options', () => {
  it('keep temporal values as text and UTC on both readers', () => {
    expect(SNAPSHOT_CONNECTION_OPTIONS).toMatchObject({ dateStrings: true, timezone: 'Z', supportBigNumbers: true, bigNumberStrings: true, jsonStrings: true });
    expect(BINLOG_CONNECTION_OPTIONS).toMatchObject({ dateStrings: true, timezone: 'Z', decimalNumbers: false, jsonStrings: false });
    expect(SNAPSHOT_SESSION_SQL).toContain("SET time_zone = '+00:00'");
  });
});

describe('makeRowWriter', () => {
  const columns = [col('id', 'int'), col('name', 'varchar', 'varchar(20)'), col('constructor', 'int')];

  it('leaves out columns the raw row does not have, even ones named like Object members', () => {
    const write = makeRowWriter(columns, 'binlog');
    expect(write({ id: 1 })).toBe('{"id":1}');
    expect(write({ id: 2, name: null, constructor: 3 })).toBe('{"id":2,"name":null,"constructor":3}');
  });

  it('writes a column named __proto__ as a field', () => {
    const write = makeRowWriter([col('__proto__', 'int'), col('x', 'varchar', 'varchar(5)')], 'snapshot');
    expect(write(JSON.parse('{"__proto__": 5, "x": "a"}') as Record<string, unknown>)).toBe('{"__proto__":5,"x":"a"}');
  });

  it('writes integer-only keys by concatenation, falling back for NULL and missing values', () => {
    const write = makeRowWriter([col('a', 'int'), col('b', 'smallint')], 'binlog');
    expect(write({ a: -7, b: 0 })).toBe('{"a":-7,"b":0}');
    expect(write({ a: null, b: 3 })).toBe('{"a":null,"b":3}');
    expect(write({ b: 3 })).toBe('{"b":3}');
  });

  it('is exactly JSON.stringify of the canonical values, in column order', () => {
    const mixed = [
      col('i', 'int'),
      col('big', 'bigint'),
      col('s', 'varchar', 'varchar(50)'),
      col('dt', 'datetime', 'datetime(6)'),
      col('j', 'json'),
      col('set', 'set', "set('a','b')"),
      col('bin', 'varbinary', 'varbinary(4)'),
      col('f', 'double'),
    ];
    const raw = {
      i: 1,
      big: '9007199254740993',
      s: 'quote " backslash \\ newline \n 😀',
      dt: '2024-02-29 23:59:59.000001',
      j: '{"k": [1, 2.5]}',
      set: 'a,b',
      bin: Buffer.from([1, 2]),
      f: -0,
    };
    const canonical = Object.fromEntries(mixed.map((c) => [c.name, encodeValue(c, raw[c.name as keyof typeof raw], 'snapshot')]));
    // JSON.stringify writes the DOUBLE's -0 as 0; the writer keeps its sign.
    expect(makeRowWriter(mixed, 'snapshot')(raw)).toBe(JSON.stringify(canonical).replace('"f":0}', '"f":-0}'));
  });
});

describe('integers', () => {
  const bigint = col('b', 'bigint');
  const unsigned = col('u', 'bigint', 'bigint unsigned');

  it.each(both)('BIGINT from %s: numbers while exact, decimal text beyond 2^53-1', (origin) => {
    expect(encodeValue(bigint, '9007199254740991', origin)).toBe(9007199254740991);
    expect(encodeValue(bigint, '-9007199254740991', origin)).toBe(-9007199254740991);
    expect(encodeValue(bigint, '9007199254740992', origin)).toBe('9007199254740992');
    expect(encodeValue(bigint, '-9223372036854775808', origin)).toBe('-9223372036854775808');
    expect(encodeValue(unsigned, '18446744073709551615', origin)).toBe('18446744073709551615');
    expect(encodeValue(unsigned, '0', origin)).toBe(0);
    expect(encodeValue(unsigned, 42, origin)).toBe(42);
  });

  it('passes the smaller integer types through', () => {
    expect(encodeValue(col('t', 'tinyint'), -128, 'binlog')).toBe(-128);
    expect(encodeValue(col('i', 'int', 'int unsigned'), 4294967295, 'snapshot')).toBe(4294967295);
  });
});

describe('DECIMAL', () => {
  it('keeps the exact text', () => {
    expect(encodeValue(col('d', 'decimal', 'decimal(10,4)'), '-12.3400', 'snapshot')).toBe('-12.3400');
  });

  it('refuses a number, which means the connection rounded it', () => {
    expect(() => encodeValue(col('d', 'decimal', 'decimal(10,4)'), 1.5, 'binlog')).toThrow(/BINLOG_CONNECTION_OPTIONS/);
  });
});

describe('FLOAT and DOUBLE', () => {
  it('writes the float32 as the shortest decimal that reads back as it', () => {
    expect(shortestFloat32(Math.fround(1.2345678))).toBe(1.2345678);
    expect(shortestFloat32(Math.fround(16777217))).toBe(16777216);
    expect(shortestFloat32(Math.fround(0.1))).toBe(0.1);
    expect(shortestFloat32(Math.fround(3.40282e38))).toBe(3.40282e38);
    expect(shortestFloat32(Math.fround(3.4028234e38))).toBe(3.4028235e38);
    expect(shortestFloat32(Math.fround(1e-45))).toBe(1e-45);
    expect(shortestFloat32(Math.fround(1.17549435e-38))).toBe(1.1754944e-38);
    expect(Object.is(shortestFloat32(-0), -0)).toBe(true);
  });

  it('keeps the float32 values the server rounds to 6 digits exact', () => {
    for (const v of [1234565, -1234565, 1234575, 12345.25, 12345.75, 123456.5, 10000050]) expect(shortestFloat32(v)).toBe(v);
  });

  it('is idempotent', () => {
    for (const v of [1.2345678, 16777216, -1234565, 12345.25, 1e-45, 3.4028235e38]) expect(shortestFloat32(Math.fround(v))).toBe(v);
  });

  it('settles a decimal whose double lies exactly halfway between two float32s on its exact value', () => {
    // 7.038531e-26 rounds to a double halfway between two float32s, and Math.fround's tie goes to this float; the
    // decimal itself lies below that double, so strtof reads it as the float32 below: 8 digits are needed.
    const x = Math.fround(7.0385313e-26);
    expect(Math.fround(7.038531e-26)).toBe(x);
    expect(shortestFloat32(x)).toBe(7.0385313e-26);
  });

  it('encodes FLOAT from either origin to the same number: the binlog float32, the snapshot widened to DOUBLE', () => {
    const f = col('f', 'float');
    expect(encodeValue(f, Math.fround(1.2345678), 'binlog')).toBe(1.2345678);
    expect(encodeValue(f, 1.2345677614212036, 'snapshot')).toBe(1.2345678);
    expect(() => encodeValue(f, '1.23457', 'snapshot')).toThrow(/snapshotSelectList/);
  });

  it('keeps DOUBLE as is, negative zero included', () => {
    const d = col('d', 'double');
    expect(encodeValue(d, 0.30000000000000004, 'binlog')).toBe(0.30000000000000004);
    expect(Object.is(encodeValue(d, -0, 'snapshot'), -0)).toBe(true);
  });

  it('writes -0 with its sign, and the rest of such a row as JSON.stringify would', () => {
    const columns = [col('id', 'int'), col('d', 'double'), col('f', 'float'), col('s', 'varchar', 'varchar(9)')];
    const write = makeRowWriter(columns, 'binlog');
    expect(write({ id: 1, d: -0, f: 1.5, s: 'a"b' })).toBe('{"id":1,"d":-0,"f":1.5,"s":"a\\"b"}');
    expect(write({ id: 2, d: 0, f: -0 })).toBe('{"id":2,"d":0,"f":-0}');
    expect(write({ id: 3, d: null, f: 2.5, s: null })).toBe('{"id":3,"d":null,"f":2.5,"s":null}');
    expect(JSON.parse(write({ id: 4, d: -0, f: -0, s: 'x' }))).toStrictEqual({ id: 4, d: -0, f: -0, s: 'x' });
  });
});

describe('snapshotSelectList', () => {
  it('reads the table with * when no column needs more than its text', () => {
    expect(snapshotSelectList([col('id', 'int'), col('d', 'double'), col('j', 'json')])).toBe('*');
  });

  it('widens FLOAT exactly and reads spatial values as bytes, every column in its place under its name', () => {
    const columns = [col('id', 'int'), col('f', 'float'), col('we`ird', 'varchar', 'varchar(3)'), col('g', 'point')];
    expect(snapshotSelectList(columns)).toBe('`id`, `f` * 1e0 AS `f`, `we``ird`, CAST(`g` AS BINARY) AS `g`');
  });
});

describe('strings and bytes', () => {
  it('keeps text', () => {
    expect(encodeValue(col('t', 'text'), 'tëxt😀', 'binlog')).toBe('tëxt😀');
  });

  it.each(['binary', 'varbinary', 'blob', 'longblob'])('%s as base64', (type) => {
    expect(encodeValue(col('b', type), Buffer.from([0x00, 0xff, 0x80, 0x00]), 'snapshot')).toBe('AP+AAA==');
  });

  it('restores the trailing zero bytes of BINARY(n) the binlog drops', () => {
    expect(encodeValue(col('b', 'binary', 'binary(4)'), Buffer.from([0xff]), 'binlog')).toBe('/wAAAA==');
    expect(encodeValue(col('b', 'binary', 'binary(4)'), Buffer.from([0xff, 0, 0, 0]), 'snapshot')).toBe('/wAAAA==');
  });
});

describe('temporal types', () => {
  const date = col('d', 'date');
  const dt6 = col('dt', 'datetime', 'datetime(6)', { datetimePrecision: 6 });
  const dt0 = col('dt', 'datetime', 'datetime');
  const ts6 = col('ts', 'timestamp', 'timestamp(6)', { datetimePrecision: 6 });
  const time = col('t', 'time', 'time(6)', { datetimePrecision: 6 });

  it.each(both)('DATE, DATETIME and TIMESTAMP from %s as ISO-8601 with the fraction as given', (origin) => {
    expect(encodeValue(date, '2024-02-29', origin)).toBe('2024-02-29');
    expect(encodeValue(dt0, '2024-02-29 23:59:59', origin)).toBe('2024-02-29T23:59:59');
    expect(encodeValue(dt6, '9999-12-31 23:59:59.999999', origin)).toBe('9999-12-31T23:59:59.999999');
    expect(encodeValue(ts6, '2038-01-19 03:14:07.999999', origin)).toBe('2038-01-19T03:14:07.999999Z');
  });

  it.each(both)('zero dates from %s become null', (origin) => {
    expect(encodeValue(date, '0000-00-00', origin)).toBeNull();
    expect(encodeValue(date, '2024-00-10', origin)).toBeNull();
    expect(encodeValue(date, '2024-01-00', origin)).toBeNull();
    expect(encodeValue(dt6, '0000-00-00 00:00:00.000000', origin)).toBeNull();
    expect(encodeValue(ts6, '0000-00-00 00:00:00.000000', origin)).toBeNull();
    expect(encodeValue(date, '0000-01-01', origin)).toBe('0000-01-01');
  });

  it('refuses a Date, which would have lost the microseconds', () => {
    expect(() => encodeValue(dt6, new Date(0), 'snapshot')).toThrow(/got a Date.*SNAPSHOT_CONNECTION_OPTIONS/);
  });

  it('repairs the negative TIME zongji derives from (|t| - 1s) + 1', () => {
    expect(repairNegativeTime('-00:00:64')).toBe('-00:01:00');
    expect(repairNegativeTime('-09:63:64.000000')).toBe('-10:00:00.000000');
    expect(repairNegativeTime('-837:63:64')).toBe('-838:00:00');
    expect(repairNegativeTime('-838:59:59.000000')).toBe('-838:59:59.000000');
    expect(repairNegativeTime('838:59:59.999999')).toBe('838:59:59.999999');
    expect(encodeValue(time, '-00:00:64.000000', 'binlog')).toBe('-00:01:00.000000');
    expect(encodeValue(time, '-00:01:00.000000', 'snapshot')).toBe('-00:01:00.000000');
  });

  it('reads YEAR 0000, which zongji reports as 1900', () => {
    const year = col('y', 'year');
    expect(encodeValue(year, 1900, 'binlog')).toBe(0);
    expect(encodeValue(year, 0, 'snapshot')).toBe(0);
    expect(encodeValue(year, 2155, 'binlog')).toBe(2155);
  });
});

describe('ENUM, SET, BIT', () => {
  it('ENUM as its label; the invalid index 0 as the empty string', () => {
    const e = col('e', 'enum', "enum('a','b')");
    expect(encodeValue(e, 'b', 'snapshot')).toBe('b');
    expect(encodeValue(e, undefined, 'binlog')).toBe('');
    expect(encodeValue(e, '', 'snapshot')).toBe('');
    expect(encodeValue(e, null, 'binlog')).toBeNull();
  });

  it.each(both)('SET from %s as a list of labels', (origin) => {
    const s = col('s', 'set', "set('a','b','c')");
    expect(encodeValue(s, 'a,c', origin)).toEqual(['a', 'c']);
    expect(encodeValue(s, '', origin)).toEqual([]);
  });

  it('BIT(n <= 53) as a number, wider as base64 of the big-endian bytes', () => {
    expect(encodeValue(col('b', 'bit', 'bit(1)', { numericPrecision: 1 }), Buffer.from([1]), 'snapshot')).toBe(1);
    expect(encodeValue(col('b', 'bit', 'bit(12)', { numericPrecision: 12 }), Buffer.from([0x0a, 0xaa]), 'binlog')).toBe(2730);
    expect(encodeValue(col('b', 'bit', 'bit(53)', { numericPrecision: 53 }), Buffer.from([0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 'binlog')).toBe(
      2 ** 53 - 1,
    );
    expect(encodeValue(col('b', 'bit', 'bit(64)', { numericPrecision: 64 }), Buffer.alloc(8, 0xff), 'snapshot')).toBe('//////////8=');
  });
});

describe('JSON', () => {
  const json = col('j', 'json');

  it("keeps MySQL's snapshot text, the document as the server prints it, numbers and all", () => {
    const text = '{"big": 18446744073709551615, "neg": -9223372036854775808, "dec": 12.50, "d": 1.0, "z": -0.0}';
    expect(encodeValue(json, text, 'snapshot')).toBe(text);
  });

  it('renders the binlog binary document as the same text', () => {
    const doc = Buffer.from(
      [
        '02', // small array
        '0200', // 2 elements
        '1b00', // 27 bytes
        '0f0a00', // opaque at offset 10
        '0a1300', // UINT64 at offset 19
        'f6070a028000000c32', // DECIMAL (field type 246), 7 bytes: DECIMAL(10,2) 12.50
        'ffffffffffffffff', // 18446744073709551615
      ].join(''),
      'hex',
    );
    expect(encodeValue(json, doc, 'binlog')).toBe('[12.50, 18446744073709551615]');
  });

  it('tells the JSON null document from SQL NULL', () => {
    expect(encodeValue(json, 'null', 'snapshot')).toBe('null');
    expect(encodeValue(json, Buffer.from('0400', 'hex'), 'binlog')).toBe('null');
    expect(encodeValue(json, null, 'snapshot')).toBeNull();
    expect(encodeValue(json, null, 'binlog')).toBeNull();
  });

  it('refuses what zongji decoded itself, which lost the numbers', () => {
    expect(() => encodeValue(json, { big: '18446744073709551615' }, 'binlog')).toThrow(/keepRawBytes/);
  });

  it('leaves MariaDB JSON, a LONGTEXT, as text', () => {
    expect(encodeValue(col('j', 'longtext'), '{"a":1}', 'snapshot')).toBe('{"a":1}');
    expect(encodeValue(col('j', 'longtext', 'longtext', { isJson: true, charset: 'utf8mb4' }), ' [1.0, 12.50] ', 'binlog')).toBe(' [1.0, 12.50] ');
  });
});

describe('text in other charsets', () => {
  const latin1 = col('l', 'varchar', 'varchar(9)', { charset: 'latin1' });

  it('decodes the binlog bytes the way the server converts the charset', () => {
    expect(encodeValue(latin1, Buffer.from('41818d8f909d', 'hex'), 'binlog')).toBe('A\u0081\u008d\u008f\u0090\u009d');
    expect(encodeValue(col('t', 'text', 'text', { charset: 'sjis' }), Buffer.from('815f', 'hex'), 'binlog')).toBe('\\');
  });

  it('keeps the text the snapshot connection already converted', () => {
    expect(encodeValue(latin1, 'A\u0081', 'snapshot')).toBe('A\u0081');
  });

  it('decodes every charset in the binlog writer, UTF-8 included, and passes the snapshot text through', () => {
    const columns = [col('u', 'varchar', 'varchar(9)', { charset: 'utf8mb4' }), latin1];
    expect(makeRowWriter(columns, 'binlog')({ u: Buffer.from('é'), l: Buffer.from('e9', 'hex') })).toBe('{"u":"é","l":"é"}');
    expect(makeRowWriter(columns, 'snapshot')({ u: 'é', l: 'é' })).toBe('{"u":"é","l":"é"}');
  });
});

describe('spatial values', () => {
  // POINT(1 2) with SRID 4326: the SRID, little-endian, then the WKB.
  const stored = Buffer.from('e61000000101000000000000000000f03f0000000000000040', 'hex');

  it.each(both)('from %s as the WKB and the SRID', (origin) => {
    expect(encodeValue(col('p', 'point'), stored, origin)).toEqual({ wkb: 'AQEAAAAAAAAAAADwPwAAAAAAAABA', srid: 4326 });
    expect(encodeValue(col('g', 'geometry'), stored, origin)).toEqual({ wkb: 'AQEAAAAAAAAAAADwPwAAAAAAAABA', srid: 4326 });
  });
});

describe("MariaDB's UUID, INET4 and INET6", () => {
  const uuid = col('u', 'uuid');
  const inet4 = col('i', 'inet4');
  const inet6 = col('i', 'inet6');
  const bytes = (h: string) => Buffer.from(h, 'hex');

  it('keeps the snapshot text', () => {
    expect(encodeValue(uuid, '6ccd780c-baba-1026-9564-5b8c656024db', 'snapshot')).toBe('6ccd780c-baba-1026-9564-5b8c656024db');
    expect(encodeValue(inet6, '::ffff:1.2.3.4', 'snapshot')).toBe('::ffff:1.2.3.4');
  });

  it('prints the binlog bytes as the server does, restoring the trailing zero bytes the binlog drops', () => {
    expect(encodeValue(uuid, bytes('6ccd780cbaba102695645b8c656024db'), 'binlog')).toBe('6ccd780c-baba-1026-9564-5b8c656024db');
    expect(encodeValue(uuid, bytes('123456781234123482341234567800'), 'binlog')).toBe('12345678-1234-1234-8234-123456780000');
    expect(encodeValue(inet4, bytes('0a'), 'binlog')).toBe('10.0.0.0');
    expect(encodeValue(inet4, bytes('c0a80001'), 'binlog')).toBe('192.168.0.1');
  });

  it.each([
    ['20010db8000000000000ff0000428329', '2001:db8::ff00:42:8329'],
    ['00000000000000000000ffff01020304', '::ffff:1.2.3.4'],
    ['00000000000000000000000001020304', '::1.2.3.4'],
    ['00000000000000000000000000000001', '::1'],
    ['', '::'],
    ['fe8', 'fe80::'],
    ['00010000000100000000000000000001', '1:0:1::1'],
    ['00010002000300040005000600070008', '1:2:3:4:5:6:7:8'],
  ])('INET6 %s as %s', (hex, text) => {
    expect(encodeValue(inet6, bytes(hex.length % 2 === 0 ? hex : `${hex}0`), 'binlog')).toBe(text);
  });
});
