import { type ParseOptions, parse as parseLossless } from 'lossless-json';
import type { ConnectionOptions } from 'mysql2';
import type { ColumnInfo } from '../source/schema.js';

/**
 * Canonical column values (ARCHITECTURE §5): the same JSON value for a row whether it was read by a snapshot
 * SELECT (mysql2 text protocol) or decoded from the binlog (zongji). Both readers are configured to hand over
 * every temporal, DECIMAL and BIGINT value as exact text, and the converters below turn those raw forms into
 * one canonical form, undoing the few places where the two readers disagree.
 */

export type RowOrigin = 'snapshot' | 'binlog';

/** Turns one raw column value into its canonical JSON-ready value. */
type Converter = (raw: unknown) => unknown;

/**
 * mysql2 options for snapshot connections. The text protocol already carries every value exactly; these keep
 * mysql2 from rounding it on the way in: temporal values stay server text (a Date would drop microseconds and
 * zero dates), BIGINT and DECIMAL stay strings, and JSON stays text so that integers beyond 2^53 survive
 * (mysql2 only parses them exactly on Node 22+). utf8mb4 so the server never substitutes '?' for a character.
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
 * config. dateStrings keeps every fractional digit (its Date path keeps milliseconds only) and zero dates;
 * timezone 'Z' makes it render TIMESTAMP's UTC epoch in UTC. DECIMAL stays an exact string and JSON is
 * decoded by zongji itself, which already keeps 64-bit integers exact (strings beyond 2^53). The charset
 * matters when zongji falls back to reading ENUM/SET labels from INFORMATION_SCHEMA.
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

/** A row's canonical JSON text, e.g. `{"id":7,"name":"x"}`: what the envelope's before/after hold. */
export type RowWriter = (raw: Record<string, unknown>) => string;

/**
 * Compiles the JSON writer for one table schema (or its key columns): raw reader row in, canonical JSON
 * text out. This is the snapshot's and the stream's hottest code: the generated function builds one
 * object literal of fixed shape, with each column's conversion chosen here, once, and hands it to
 * JSON.stringify, whose native serialiser beats assembling the text in JS (which leaves a tree of string
 * pieces for the collector). Columns missing from the raw row are left out (undefined is omitted).
 */
export function makeRowWriter(columns: ColumnInfo[], origin: RowOrigin): RowWriter {
  const converters = columns.map((c) => converterFor(c, origin));
  const fields = columns.map((c, i) => {
    // Names go into the generated code only as JSON string literals, which are valid JS string literals;
    // computed, so that a column named __proto__ is a field, not the literal's prototype.
    const name = JSON.stringify(c.name);
    return `[${name}]: ${passesUnchanged(c) ? `r[${name}]` : `has(r, ${name}) ? C[${i}](r[${name}]) : undefined`}`;
  });
  const viaObject = new Function('has', 'J', 'C', `return function writeRow(r) { return J({ ${fields.join(', ')} }); };`)(
    Object.hasOwn,
    JSON.stringify,
    converters,
  ) as RowWriter;
  return columns.every(isSmallInteger) ? integerWriter(columns, viaObject) : viaObject;
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
 * Whether both readers already hand over the canonical value (JS numbers for the small integers, text
 * for text), so the raw value can go to JSON.stringify as it is; undefined only for a missing column.
 */
function passesUnchanged(column: ColumnInfo): boolean {
  return isSmallInteger(column) || (TEXT.has(column.dataType) && !column.isJson);
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
      return orNull(fromBinlog ? (v) => float32AsDisplayed(v as number) : noNegativeZero);
    case 'double':
      return orNull(noNegativeZero);
    case 'char':
    case 'varchar':
    case 'tinytext':
    case 'text':
    case 'mediumtext':
    case 'longtext':
      // MariaDB's JSON is a LONGTEXT alias; both readers deliver it as text.
      return column.isJson ? orNull((v) => parseJsonExact(asString(v, column, origin))) : orNull((v) => v);
    case 'binary':
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
      return orNull(fromBinlog ? (v) => v : (v) => parseJsonExact(asString(v, column, origin)));
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
    default:
      // Spatial and MariaDB-specific types: binary forms as base64, whatever else the reader produced as is.
      return orNull((v) => (Buffer.isBuffer(v) ? v.toString('base64') : v));
  }
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
  throw new TypeError(
    `column ${column.name} (${column.columnType}): expected bytes, got ${describe(v)}; was the ${origin} connection opened with ${origin.toUpperCase()}_CONNECTION_OPTIONS?`,
  );
}

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

function noNegativeZero(v: unknown): unknown {
  return v === 0 ? 0 : v;
}

/**
 * FLOAT rule: the stored float32 rounded to 6 significant digits, ties to even — exactly the text both MySQL
 * and MariaDB send for a FLOAT column (my_gcvt with FLT_DIG digits). The snapshot only ever sees that text,
 * so the binlog's exact float32 has to be rounded the same way; precision beyond 6 digits is lost from both.
 * Number#toPrecision breaks ties away from zero, so exact ties (e.g. 1234565, 12345.25) are settled here.
 */
export function float32AsDisplayed(x: number): number {
  if (x === 0) return 0;
  const s7 = x.toPrecision(7);
  const exp = s7.indexOf('e');
  const last = (exp === -1 ? s7.length : exp) - 1;
  if (s7.charCodeAt(last) === 0x35 && Number(s7) === x && isExactDecimal(x)) {
    const kept = s7.charCodeAt(s7[last - 1] === '.' ? last - 2 : last - 1);
    if ((kept & 1) === 0) return Number(`${s7.slice(0, last)}0${s7.slice(last + 1)}`);
  }
  return Number(x.toPrecision(6));
}

/** Whether x's exact binary value has no significant digit past the 7th (100 digits cover any float32). */
function isExactDecimal(x: number): boolean {
  const digits = x.toPrecision(100).replace(/e.*$/, '').replace(/[-.]/g, '').replace(/^0+/, '');
  return /^0*$/.test(digits.slice(7));
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

/**
 * JSON.parse, except that integers beyond ±(2^53-1) become their exact decimal text, as zongji delivers them
 * from the binlog (and as BIGINT columns are encoded). Text without a 16-digit run cannot hold such an
 * integer, so it takes the native parser.
 */
export function parseJsonExact(text: string): unknown {
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return parseLossless(text, null, EXACT_JSON);
}

const EXACT_JSON: ParseOptions = {
  parseNumber: (text) => {
    const n = Number(text);
    return Number.isSafeInteger(n) || !/^-?\d+$/.test(text) ? n : text;
  },
  // MariaDB's JSON is text and may repeat a key; the last one wins, as in JSON.parse.
  onDuplicateKey: ({ newValue }) => newValue,
};
