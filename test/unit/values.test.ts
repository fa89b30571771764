import { describe, expect, it } from 'vitest';
import {
  BINLOG_CONNECTION_OPTIONS,
  encodeValue,
  float32AsDisplayed,
  makeRowWriter,
  parseJsonExact,
  repairNegativeTime,
  SNAPSHOT_CONNECTION_OPTIONS,
  SNAPSHOT_SESSION_SQL,
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
    expect(makeRowWriter(mixed, 'snapshot')(raw)).toBe(JSON.stringify(canonical));
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
  it('rounds the binlog float32 to the 6 significant digits the server prints', () => {
    expect(float32AsDisplayed(Math.fround(1.2345678))).toBe(1.23457);
    expect(float32AsDisplayed(Math.fround(16777217))).toBe(16777200);
    expect(float32AsDisplayed(Math.fround(0.1))).toBe(0.1);
    expect(float32AsDisplayed(Math.fround(3.40282e38))).toBe(3.40282e38);
    expect(float32AsDisplayed(Math.fround(1e-45))).toBe(1.4013e-45);
    expect(float32AsDisplayed(-0)).toBe(0);
  });

  it('breaks exact ties to even, as the server does', () => {
    expect(float32AsDisplayed(1234565)).toBe(1234560);
    expect(float32AsDisplayed(-1234565)).toBe(-1234560);
    expect(float32AsDisplayed(1234575)).toBe(1234580);
    expect(float32AsDisplayed(12345.25)).toBe(12345.2);
    expect(float32AsDisplayed(12345.75)).toBe(12345.8);
    expect(float32AsDisplayed(123456.5)).toBe(123456);
    expect(float32AsDisplayed(10000050)).toBe(10000000);
  });

  it('is idempotent on the 6-digit values a snapshot delivers', () => {
    for (const v of [1.23457, 16777200, -1234560, 12345.2, 1.4013e-45]) expect(float32AsDisplayed(v)).toBe(v);
  });

  it('encodes FLOAT from either origin to the same number', () => {
    const f = col('f', 'float');
    expect(encodeValue(f, Math.fround(1.2345678), 'binlog')).toBe(encodeValue(f, 1.23457, 'snapshot'));
  });

  it('keeps DOUBLE as is, without negative zero', () => {
    const d = col('d', 'double');
    expect(encodeValue(d, 0.30000000000000004, 'binlog')).toBe(0.30000000000000004);
    expect(Object.is(encodeValue(d, -0, 'snapshot'), 0)).toBe(true);
  });
});

describe('strings and bytes', () => {
  it('keeps text', () => {
    expect(encodeValue(col('t', 'text'), 'tëxt😀', 'binlog')).toBe('tëxt😀');
  });

  it.each(['binary', 'varbinary', 'blob', 'longblob'])('%s as base64', (type) => {
    expect(encodeValue(col('b', type), Buffer.from([0x00, 0xff, 0x80, 0x00]), 'snapshot')).toBe('AP+AAA==');
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

  it('parses snapshot text, keeping integers beyond 2^53 exact as text', () => {
    expect(encodeValue(json, '{"a": {"b": [1, 2.5, "😀"]}, "big": 18446744073709551615, "neg": -9223372036854775808}', 'snapshot')).toEqual({
      a: { b: [1, 2.5, '😀'] },
      big: '18446744073709551615',
      neg: '-9223372036854775808',
    });
  });

  it('takes the binlog value as zongji decoded it', () => {
    const decoded = { big: '18446744073709551615' };
    expect(encodeValue(json, decoded, 'binlog')).toBe(decoded);
  });

  it('agrees with JSON.parse wherever no integer is beyond 2^53', () => {
    const texts = [
      '[0.30000000000000004, 1e16, 9.007199254740992e15, 9007199254740991, -9007199254740991, -1.5e-300, 123]',
      '{"s": "12345678901234567890 \\" \\\\ \\u00e9", "t": true, "f": false, "n": null, "e": {}, "a": []}',
      ' "1234567890123456" ',
    ];
    for (const text of texts) expect(parseJsonExact(text)).toEqual(JSON.parse(text));
    expect(parseJsonExact('12345678901234567')).toBe('12345678901234567');
  });

  it('keeps a "__proto__" member as data', () => {
    const parsed = parseJsonExact('{"__proto__": {"x": 1}, "n": 12345678901234567890}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.keys(parsed)).toEqual(['__proto__', 'n']);
    expect(parsed.n).toBe('12345678901234567890');
  });

  it('rejects malformed text', () => {
    for (const text of ['{"a": 12345678901234567', '[12345678901234567,]', '12345678901234567 x']) expect(() => parseJsonExact(text)).toThrow(SyntaxError);
  });

  it('leaves MariaDB JSON, a LONGTEXT, as text', () => {
    expect(encodeValue(col('j', 'longtext'), '{"a":1}', 'snapshot')).toBe('{"a":1}');
  });
});
