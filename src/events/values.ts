import type { ConnectionOptions } from 'mysql2';
import { poisoned } from '../faults.js';
import type { ColumnInfo } from '../source/schema.js';
import { decoderFor } from './charsets.js';
import { renderMysqlJson } from './mysql-json.js';

/**
 * Canonical column values (ARCHITECTURE §5): the same JSON value for a row whether it was read by a snapshot
 * SELECT (mysql2 text protocol) or decoded from the binlog (zongji). Both readers are configured to hand over
 * every temporal, DECIMAL and BIGINT value as exact text; the chunk SELECT reads FLOAT widened and spatial
 * values as bytes (snapshotSelectList), and zongji hands over the bytes of the columns it would decode lossily
 * (keepRawBytes in src/source/binlog-columns.ts). The converters below turn those raw forms into one canonical form.
 */

export type RowOrigin = 'snapshot' | 'binlog';

/** Turns one raw column value into its canonical JSON-ready value. */
type Converter = (raw: unknown) => unknown;

/**
 * mysql2 options for snapshot connections. The text protocol already carries every value exactly; these keep
 * mysql2 from rounding it on the way in: temporal values stay server text (a Date would drop microseconds and
 * zero dates), BIGINT and DECIMAL stay strings, and JSON stays the text the server prints for the document.
 * utf8mb4 so the server never substitutes '?' for a character.
 * `timezone` only shapes Date parameters sent to the server; 'Z' matches the session time zone set by
 * SNAPSHOT_SESSION_SQL.
 */
export const SNAPSHOT_CONNECTION_OPTIONS = {
  charset: 'UTF8MB4_UNICODE_CI',
  dateStrings: true,
  timezone: 'Z',
  supportBigNumbers: true,
  bigNumberStrings: true,
  decimalNumbers: false,
  jsonStrings: true,
} as const satisfies ConnectionOptions;

/**
 * Options merged into the object given to `new ZongJi(...)`; zongji reads them from its mysql2 connection's
 * config. dateStrings keeps every fractional digit (its Date path keeps milliseconds only)
 * and zero dates; timezone 'Z' makes it render TIMESTAMP's UTC epoch in UTC. DECIMAL stays an exact string.
 * The charset matters when zongji falls back to reading ENUM/SET labels from INFORMATION_SCHEMA.
 */
export const BINLOG_CONNECTION_OPTIONS = {
  charset: 'UTF8MB4_UNICODE_CI',
  dateStrings: true,
  timezone: 'Z',
  decimalNumbers: false,
  jsonStrings: false,
} as const satisfies ConnectionOptions;

/** Run on every snapshot connection right after connecting: TIMESTAMP text then is UTC, as the binlog's epoch. */
export const SNAPSHOT_SESSION_SQL: readonly string[] = ["SET time_zone = '+00:00'"];

/**
 * The select list a snapshot reads a table's rows with, the rows the 'snapshot' converters expect: `*`, unless
 * the table has columns whose text form loses what the binlog has. FLOAT text has 6 significant digits, so it
 * is read widened to DOUBLE (`* 1e0` is exact, keeps -0 and, unlike CAST(… AS DOUBLE), needs no MySQL 8.0.17);
 * spatial values would be parsed by mysql2 into coordinates without their SRID, so they are read as their bytes.
 * Every column keeps its name and place.
 */
export function snapshotSelectList(columns: ColumnInfo[]): string {
  if (!columns.some((c) => c.dataType === 'float' || SPATIAL.has(c.dataType))) return '*';
  return columns
    .map((c) => {
      const name = `\`${c.name.replace(/`/g, '``')}\``;
      if (c.dataType === 'float') return `${name} * 1e0 AS ${name}`;
      return SPATIAL.has(c.dataType) ? `CAST(${name} AS BINARY) AS ${name}` : name;
    })
    .join(', ');
}

/** The spatial types' names as INFORMATION_SCHEMA gives them: their values are WKB plus an SRID (docs/values.md). */
export const SPATIAL = new Set([
  'geometry',
  'point',
  'linestring',
  'polygon',
  'multipoint',
  'multilinestring',
  'multipolygon',
  'geomcollection',
  'geometrycollection',
]);

/** A row's canonical JSON text, e.g. `{"id":7,"name":"x"}`: what the envelope's before/after hold. */
export type RowWriter = (raw: Record<string, unknown>) => string;

/**
 * Compiles the JSON writer for one table schema (or its key columns): raw reader row in, canonical JSON
 * text out. This is the snapshot's and the stream's hottest code: the generated function builds one
 * object literal of fixed shape, with each column's conversion chosen here, once, and hands it to
 * JSON.stringify, whose native serialiser beats assembling the text in JS (which leaves a tree of string
 * pieces for the collector). Columns missing from the raw row are left out (undefined is omitted).
 * JSON.stringify writes -0 as 0, so a table with FLOAT or DOUBLE columns checks those for -0 and writes
 * such a (rare) row piecewise.
 */
export function makeRowWriter(columns: ColumnInfo[], origin: RowOrigin): RowWriter {
  const converters = columns.map((c) => converterFor(c, origin));
  // Names go into the generated code only as JSON string literals, which are valid JS string literals.
  const names = columns.map((c) => JSON.stringify(c.name));
  const fields = columns.map((c, i) => {
    // Computed, so that a column named __proto__ is a field, not the literal's prototype.
    const name = names[i]!;
    return `[${name}]: ${passesUnchanged(c, origin) ? `r[${name}]` : `has(r, ${name}) ? C[${i}](r[${name}]) : undefined`}`;
  });
  const signedZeros = names.filter((_, i) => FLOATING.has(columns[i]!.dataType)).map((name) => `Object.is(o[${name}], -0)`);
  const body =
    signedZeros.length === 0 ? `return J({ ${fields.join(', ')} });` : `const o = { ${fields.join(', ')} }; return ${signedZeros.join(' || ')} ? Z(o) : J(o);`;
  const viaObject = new Function('has', 'J', 'C', 'Z', `return function writeRow(r) { ${body} };`)(
    Object.hasOwn,
    JSON.stringify,
    converters,
    writeWithNegativeZeros,
  ) as RowWriter;
  return poisoned(
    columns.map((c) => c.name),
    columns.every(isSmallInteger) ? integerWriter(columns, viaObject) : viaObject,
  );
}

const FLOATING = new Set(['float', 'double']);

/** JSON.stringify's text of a row object, except that -0 keeps its sign; fields in the same order as JSON.stringify's. */
function writeWithNegativeZeros(row: Record<string, unknown>): string {
  const fields: string[] = [];
  for (const [name, value] of Object.entries(row)) {
    if (value !== undefined) fields.push(`${JSON.stringify(name)}:${Object.is(value, -0) ? '-0' : JSON.stringify(value)}`);
  }
  return `{${fields.join(',')}}`;
}

/**
 * Integer-only column lists (the usual primary key) are written by concatenation, several times faster
 * than building an object for JSON.stringify; a row where one is not a number (NULL, missing) falls back.
 */
function integerWriter(columns: ColumnInfo[], fallback: RowWriter): RowWriter {
  const names = columns.map((c) => JSON.stringify(c.name));
  const reads = names.map((n, i) => `v${i} = r[${n}]`).join(', ');
  const allNumbers = names.map((_, i) => `typeof v${i} === 'number'`).join(' && ');
  const text = names.map((n, i) => `${JSON.stringify(`${i === 0 ? '{' : ','}${n}:`)} + v${i}`).join(' + ');
  return new Function('fallback', `return function writeIntegers(r) { const ${reads}; return ${allNumbers} ? ${text} + '}' : fallback(r); };`)(
    fallback,
  ) as RowWriter;
}

function isSmallInteger(column: ColumnInfo): boolean {
  return SMALL_INTEGERS.has(column.dataType);
}

/**
 * Whether the reader already hands over the canonical value (JS numbers for the small integers, the snapshot's
 * text for text), so the raw value can go to JSON.stringify as it is; undefined only for a missing column.
 * From the binlog, text comes as its bytes in the column's charset (keepRawBytes).
 */
function passesUnchanged(column: ColumnInfo, origin: RowOrigin): boolean {
  return isSmallInteger(column) || (TEXT.has(column.dataType) && origin === 'snapshot');
}

const SMALL_INTEGERS = new Set(['tinyint', 'smallint', 'mediumint', 'int']);
const TEXT = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);

const cachedConverters = { snapshot: new WeakMap<ColumnInfo, Converter>(), binlog: new WeakMap<ColumnInfo, Converter>() };

/** Canonical value of a single column, e.g. for building a key; the converter is cached per ColumnInfo. */
export function encodeValue(column: ColumnInfo, raw: unknown, origin: RowOrigin): unknown {
  const cache = cachedConverters[origin];
  let convert = cache.get(column);
  if (!convert) {
    convert = converterFor(column, origin);
    cache.set(column, convert);
  }
  return convert(raw);
}

function converterFor(column: ColumnInfo, origin: RowOrigin): Converter {
  const fromBinlog = origin === 'binlog';
  switch (column.dataType) {
    case 'tinyint':
    case 'smallint':
    case 'mediumint':
    case 'int':
      return orNull((v) => v);
    case 'bigint':
      return orNull(exactInteger);
    case 'decimal':
      return orNull((v) => asString(v, column, origin));
    case 'float':
      // The binlog's float32 as is; the snapshot's exact double widening of it (snapshotSelectList).
      return orNull((v) => shortestFloat32(Math.fround(asNumber(v, column, origin))));
    case 'double':
      return orNull((v) => v);
    case 'char':
    case 'varchar':
    case 'tinytext':
    case 'text':
    case 'mediumtext':
    case 'longtext':
      // MariaDB's JSON is a LONGTEXT alias: its stored text is already the document as the server prints it.
      return fromBinlog ? orNull(textDecoder(column)) : orNull((v) => v);
    case 'binary': {
      // The binlog drops a BINARY(n) value's trailing zero bytes.
      const width = binaryWidth(column);
      return orNull((v) => fixedWidth(asBuffer(v, column, origin), width).toString('base64'));
    }
    case 'varbinary':
    case 'tinyblob':
    case 'blob':
    case 'mediumblob':
    case 'longblob':
      return orNull((v) => asBuffer(v, column, origin).toString('base64'));
    case 'date':
      return orNull((v) => {
        const s = asString(v, column, origin);
        return hasZeroDatePart(s) ? null : s;
      });
    case 'datetime':
      return orNull((v) => {
        const s = asString(v, column, origin);
        return hasZeroDatePart(s) ? null : `${s.slice(0, 10)}T${s.slice(11)}`;
      });
    case 'timestamp':
      return orNull((v) => {
        const s = asString(v, column, origin);
        return hasZeroDatePart(s) ? null : `${s.slice(0, 10)}T${s.slice(11)}Z`;
      });
    case 'time':
      return orNull(fromBinlog ? (v) => repairNegativeTime(asString(v, column, origin)) : (v) => asString(v, column, origin));
    case 'year':
      // zongji adds 1900 to the stored byte, so YEAR 0000 (stored as 0) arrives as 1900, which YEAR cannot hold.
      return orNull(fromBinlog ? (v) => (v === 1900 ? 0 : v) : (v) => v);
    case 'json':
      // MySQL's JSON, as the text the server prints for it (snapshot) or rendered from the binary form (binlog).
      return orNull(fromBinlog ? (v) => renderMysqlJson(asBuffer(v, column, origin)) : (v) => asString(v, column, origin));
    case 'enum':
      // An invalid value stored in non-strict mode has index 0, the empty string; zongji looks it up as undefined.
      return (v) => (v === null ? null : v === undefined ? '' : v);
    case 'set':
      return orNull((v) => {
        const s = asString(v, column, origin);
        return s === '' ? [] : s.split(',');
      });
    case 'bit':
      return orNull(bitWidth(column) <= 53 ? (v) => bitsAsNumber(asBuffer(v, column, origin)) : (v) => asBuffer(v, column, origin).toString('base64'));
    case 'uuid':
    case 'inet4':
    case 'inet6': {
      // MariaDB's types: the server's text from the snapshot, the stored bytes from the binlog.
      const [width, print] = [binaryWidth(column), MARIADB_BINARY_TEXT[column.dataType]!];
      return orNull(fromBinlog ? (v) => print(fixedWidth(asBuffer(v, column, origin), width)) : (v) => v);
    }
    default:
      if (SPATIAL.has(column.dataType)) return orNull((v) => geometryValue(asBuffer(v, column, origin)));
      // Other MariaDB-specific types: binary forms as base64, whatever else the reader produced as is.
      return orNull((v) => (Buffer.isBuffer(v) ? v.toString('base64') : v));
  }
}

/**
 * A text column's binlog value: its bytes, decoded the way the server converts the column's charset to utf8mb4
 * (text as is from a binlog client that decodes text itself).
 */
function textDecoder(column: ColumnInfo): (v: unknown) => unknown {
  const decode = decoderFor(column.charset ?? 'utf8mb4');
  return (v) => (Buffer.isBuffer(v) ? decode(v) : v);
}

/** The server's stored spatial value: the SRID (4 bytes, little-endian), then the geometry's WKB. */
function geometryValue(stored: Buffer): { wkb: string; srid: number } {
  return { wkb: stored.subarray(4).toString('base64'), srid: stored.readUInt32LE(0) };
}

/** The byte width of BINARY(n) and of MariaDB's fixed-width binary types. */
function binaryWidth(column: ColumnInfo): number {
  if (column.dataType === 'inet4') return 4;
  if (column.dataType !== 'binary') return 16;
  return Number(/\((\d+)\)/.exec(column.columnType)?.[1] ?? 1);
}

/** The binlog drops trailing zero bytes of fixed-width binary values; pads them back to the type's width. */
function fixedWidth(bytes: Buffer, width: number): Buffer {
  if (bytes.length >= width) return bytes;
  const padded = Buffer.alloc(width);
  bytes.copy(padded);
  return padded;
}

const MARIADB_BINARY_TEXT: Readonly<Record<string, (bytes: Buffer) => string>> = {
  uuid: uuidText,
  inet4: (b) => b.join('.'),
  inet6: inet6Text,
};

function uuidText(b: Buffer): string {
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * INET6 as MariaDB prints it: RFC 5952 (lower-case hex groups, the leftmost longest run of two or more zero
 * groups as `::`), except that IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d, not :: or ::1)
 * addresses end in dotted IPv4.
 */
function inet6Text(b: Buffer): string {
  if (b.subarray(0, 10).every((byte) => byte === 0)) {
    const v4 = b.subarray(12).join('.');
    if (b[10] === 0xff && b[11] === 0xff) return `::ffff:${v4}`;
    if (b[10] === 0 && b[11] === 0 && b.readUInt32BE(12) > 1) return `::${v4}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = { start: -1, length: 1 };
  for (let i = 0; i < 8; i++) {
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > best.length) best = { start: i, length: end - i };
    i = end;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(':');
  if (best.start === -1) return hex(groups);
  return `${hex(groups.slice(0, best.start))}::${hex(groups.slice(best.start + best.length))}`;
}

function orNull(convert: (v: unknown) => unknown): Converter {
  return (v) => (v === null || v === undefined ? null : convert(v));
}

function asString(v: unknown, column: ColumnInfo, origin: RowOrigin): string {
  if (typeof v === 'string') return v;
  throw new TypeError(
    `column ${column.name} (${column.columnType}): expected text, got ${describe(v)}; was the ${origin} connection opened with ${origin.toUpperCase()}_CONNECTION_OPTIONS?`,
  );
}

function asBuffer(v: unknown, column: ColumnInfo, origin: RowOrigin): Buffer {
  if (Buffer.isBuffer(v)) return v;
  throw new TypeError(`column ${column.name} (${column.columnType}): expected bytes, got ${describe(v)}; ${READERS[origin]}`);
}

function asNumber(v: unknown, column: ColumnInfo, origin: RowOrigin): number {
  if (typeof v === 'number') return v;
  throw new TypeError(`column ${column.name} (${column.columnType}): expected a number, got ${describe(v)}; ${READERS[origin]}`);
}

const READERS: Readonly<Record<RowOrigin, string>> = {
  snapshot: 'was the row read with SNAPSHOT_CONNECTION_OPTIONS and snapshotSelectList?',
  binlog: 'was the row decoded by zongji with BINLOG_CONNECTION_OPTIONS and keepRawBytes?',
};

function describe(v: unknown): string {
  return v instanceof Date ? 'a Date' : typeof v;
}

/** BIGINT as a number when exactly representable, else its decimal text (mysql2 gives text, zongji either). */
function exactInteger(v: unknown): unknown {
  if (typeof v === 'number') return v;
  const s = String(v);
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : s;
}

/**
 * FLOAT rule: the shortest decimal that reads back as the same float32 (at most 9 significant digits), e.g.
 * 1.2345678 where the server prints 1.23457; of two equally short and near, the one with the even last digit
 * (as printf and Number#toString choose); -0 keeps its sign. Both readers get the exact float32 value: the
 * binlog as is, the snapshot widened to DOUBLE.
 */
export function shortestFloat32(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  // More digits are never farther from x, so the fewest that read back can be bisected for; 9 always do.
  const tieDigits = possibleTieDigits(x);
  let fewest = 1;
  let enough = 9;
  let found: string | undefined;
  while (fewest < enough) {
    const digits = (fewest + enough) >> 1;
    const decimal = roundedDecimal(x, digits, tieDigits);
    if (readsBackAsFloat32(decimal, x)) {
      enough = digits;
      found = decimal;
    } else {
      fewest = digits + 1;
    }
  }
  return Number(found ?? roundedDecimal(x, enough, tieDigits));
}

/**
 * x to `digits` significant digits, ties to even: Number#toPrecision breaks them away from zero. A tie at
 * `digits` needs x to be exactly a decimal of digits + 1 digits ending in 5, which is then also its shortest
 * double text: `tieDigits` is that text's digit count when it ends in 5.
 */
function roundedDecimal(x: number, digits: number, tieDigits: number): string {
  const rounded = x.toPrecision(digits);
  if (tieDigits !== digits + 1) return rounded;
  const finer = decimalParts(x.toPrecision(digits + 1));
  if (compareExact(finer, x) !== 0) return rounded;
  const down = finer.digits / 10n;
  return `${finer.negative ? '-' : ''}${down % 2n === 0n ? down : down + 1n}e${finer.exponent + 1}`;
}

/** The significant digits of x's shortest double text if it ends in 5, else 0. */
function possibleTieDigits(x: number): number {
  const text = String(x);
  const exponentAt = text.indexOf('e');
  const mantissa = exponentAt === -1 ? text : text.slice(0, exponentAt);
  if (!mantissa.endsWith('5')) return 0;
  return mantissa.replace(/^-?[0.]*/, '').replace('.', '').length;
}

/**
 * Whether a decimal rounds to the float32 x, as strtof would. Rounding it to a double first and that to
 * float32 (Math.fround) is the same, except when the double lands exactly halfway between two float32s while
 * the decimal itself lies to one side: then the side is settled on the exact values.
 */
function readsBackAsFloat32(decimal: string, x: number): boolean {
  const d = Number(decimal);
  const f = Math.fround(d);
  if (f === d) return f === x;
  const other = adjacentFloat32(f, Math.abs(d) > Math.abs(f));
  if ((f + other) / 2 !== d) return f === x;
  const side = compareExact(decimalParts(decimal), d);
  if (side === 0) return f === x;
  return (side > 0 ? Math.max(f, other) : Math.min(f, other)) === x;
}

function adjacentFloat32(f: number, awayFromZero: boolean): number {
  SINGLE[0] = f;
  SINGLE_BITS[0]! += awayFromZero ? 1 : -1;
  return SINGLE[0]!;
}

const SINGLE = new Float32Array(1);
const SINGLE_BITS = new Uint32Array(SINGLE.buffer);

/** A decimal text as sign, integer digits and power of ten: -1.25e+3 is -, 125, 1. */
function decimalParts(text: string): { negative: boolean; digits: bigint; exponent: number } {
  const [, sign, whole, fraction = '', exponent = '0'] = /^(-?)(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(text)!;
  return { negative: sign === '-', digits: BigInt(whole! + fraction), exponent: Number(exponent) - fraction.length };
}

/** The sign of (decimal - d) for a decimal and a double of the same sign, computed exactly: d as an integer times a power of two. */
function compareExact(decimal: { negative: boolean; digits: bigint; exponent: number }, d: number): number {
  const bits = new DataView(new Float64Array([Math.abs(d)]).buffer).getBigUint64(0, true);
  const biased = Number(bits >> 52n);
  const mantissa = (bits & 0xfffffffffffffn) | (biased === 0 ? 0n : 1n << 52n);
  const e2 = (biased === 0 ? 1 : biased) - 1075;
  const e10 = decimal.exponent;
  const left = decimal.digits * 10n ** BigInt(Math.max(e10, 0)) * 2n ** BigInt(Math.max(-e2, 0));
  const right = mantissa * 2n ** BigInt(Math.max(e2, 0)) * 10n ** BigInt(Math.max(-e10, 0));
  const magnitude = left === right ? 0 : left > right ? 1 : -1;
  return decimal.negative ? -magnitude : magnitude;
}

/** 'YYYY-MM-DD…' with a zero month or day: '0000-00-00' and the partial zero dates non-strict modes allow. */
function hasZeroDatePart(s: string): boolean {
  return (s.charCodeAt(5) === 0x30 && s.charCodeAt(6) === 0x30) || (s.charCodeAt(8) === 0x30 && s.charCodeAt(9) === 0x30);
}

/**
 * zongji decodes a negative TIME whose fraction is zero as the fields of (|t| - 1 second) with 1 added to the
 * seconds, so '-00:01:00' arrives as '-00:00:64' and '-10:00:00' as '-09:63:64'. The fields are still those
 * of TIME2's packed hour<<12 | minute<<6 | second, so re-packing and splitting gives back the stored value.
 */
export function repairNegativeTime(s: string): string {
  if (s.charCodeAt(0) !== 0x2d) return s;
  const colon = s.indexOf(':');
  const minute = Number(s.slice(colon + 1, colon + 3));
  const second = Number(s.slice(colon + 4, colon + 6));
  if (minute < 60 && second < 60) return s;
  const packed = Number(s.slice(1, colon)) * 4096 + minute * 64 + second;
  const h = Math.floor(packed / 4096);
  return `-${h > 99 ? h : two(h)}:${two((packed >> 6) & 63)}:${two(packed & 63)}${s.slice(colon + 6)}`;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function bitWidth(column: ColumnInfo): number {
  return column.numericPrecision ?? Number(/\((\d+)\)/.exec(column.columnType)?.[1] ?? 1);
}

function bitsAsNumber(b: Buffer): number {
  let n = 0;
  for (const byte of b) n = n * 256 + byte;
  return n;
}
