import { SPATIAL } from '../events/values.js';
import type { ColumnInfo } from '../source/schema.js';
import { valueEnd } from './json-rows.js';

/**
 * PostgreSQL types for MySQL and MariaDB columns, chosen so that no value changes (docs/sinks.md, Database sinks),
 * and each canonical value (docs/values.md) as the text PostgreSQL's input function of that type reads back exactly.
 * The same text goes into COPY and into the arrays of the upsert statements.
 */

const TEXT = new Set(['tinytext', 'text', 'mediumtext', 'longtext']);
const BYTES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);

const lengthOf = (c: ColumnInfo): number => Number(/\((\d+)/.exec(c.columnType)?.[1] ?? 0);
const fraction = (c: ColumnInfo): number => c.datetimePrecision ?? 0;

export function postgresType(c: ColumnInfo): string {
  if (c.isJson) return 'jsonb';
  switch (c.dataType) {
    case 'tinyint':
      return 'smallint';
    case 'smallint':
      return c.unsigned ? 'integer' : 'smallint';
    case 'mediumint':
      return 'integer';
    case 'int':
      return c.unsigned ? 'bigint' : 'integer';
    case 'bigint':
      return c.unsigned ? 'numeric(20,0)' : 'bigint';
    case 'decimal':
      return `numeric(${c.numericPrecision ?? 10},${c.numericScale ?? 0})`;
    case 'float':
      return 'real';
    case 'double':
      return 'double precision';
    case 'char':
    case 'varchar':
      return lengthOf(c) > 0 ? `varchar(${lengthOf(c)})` : 'text';
    case 'date':
      return 'date';
    case 'datetime':
      return `timestamp(${fraction(c)})`;
    case 'timestamp':
      return `timestamptz(${fraction(c)})`;
    // MySQL's TIME is a duration from -838:59:59 to 838:59:59, beyond what PostgreSQL's time of day holds.
    case 'time':
      return `interval(${fraction(c)})`;
    case 'year':
      return 'smallint';
    case 'enum':
      return 'text';
    case 'set':
      return 'text[]';
    case 'bit':
      return `bit(${c.numericPrecision ?? (lengthOf(c) || 1)})`;
    case 'uuid':
      return 'uuid';
    case 'inet4':
    case 'inet6':
      return 'inet';
  }
  if (TEXT.has(c.dataType)) return 'text';
  if (BYTES.has(c.dataType) || SPATIAL.has(c.dataType)) return 'bytea';
  return 'text';
}

/** A canonical value (never null) as PostgreSQL input text. */
export type PostgresText = (value: unknown) => string;

/** Most types: a string is its own input text (the canonical value of a number, a date, a decimal ...). */
const plainText: PostgresText = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

const hex = (bytes: Buffer): string => `\\x${bytes.toString('hex')}`;

export function postgresText(c: ColumnInfo): PostgresText {
  if (c.isJson) return String;
  switch (c.dataType) {
    case 'float':
    case 'double':
      // String(-0) is "0"; the canonical value keeps the sign, and so does float4/float8 input.
      return (v) => (Object.is(v, -0) ? '-0' : String(v));
    case 'set':
      return (v) => `{${(v as string[]).map((label) => `"${label.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
    case 'bit': {
      const width = c.numericPrecision ?? (lengthOf(c) || 1);
      return (v) => bits(v, width);
    }
  }
  if (BYTES.has(c.dataType)) return (v) => hex(Buffer.from(v as string, 'base64'));
  if (SPATIAL.has(c.dataType)) return (v) => hex(ewkb(v as { wkb: string; srid: number }));
  return plainText;
}

/** BIT(n) as n binary digits: the canonical value is a number up to 53 bits, base64 of the bytes beyond. */
function bits(v: unknown, width: number): string {
  if (typeof v === 'number') return v.toString(2).padStart(width, '0');
  let text = '';
  for (const byte of Buffer.from(v as string, 'base64')) text += byte.toString(2).padStart(8, '0');
  return text.slice(-width).padStart(width, '0');
}

/**
 * The SRID and WKB of a spatial value as EWKB, which PostGIS reads (ST_GeomFromEWKB, or a cast of the bytea to
 * geometry): the type gets the SRID flag and the SRID follows it, in the WKB's byte order. SRID 0 stays plain WKB.
 */
export function ewkb({ wkb, srid }: { wkb: string; srid: number }): Buffer {
  const bytes = Buffer.from(wkb, 'base64');
  if (srid === 0 || bytes.length < 5) return bytes;
  const little = bytes[0] === 1;
  const head = Buffer.alloc(9);
  head[0] = bytes[0]!;
  const type = little ? bytes.readUInt32LE(1) : bytes.readUInt32BE(1);
  if (little) {
    head.writeUInt32LE((type | 0x20000000) >>> 0, 1);
    head.writeUInt32LE(srid, 5);
  } else {
    head.writeUInt32BE((type | 0x20000000) >>> 0, 1);
    head.writeUInt32BE(srid, 5);
  }
  return Buffer.concat([head, bytes.subarray(5)]);
}

/** COPY's text format: backslash, tab, newline and carriage return escaped; NULL is \N. */
export function copyField(text: string): string {
  return COPY_SPECIAL.test(text) ? text.replace(COPY_ESCAPES, (ch) => COPY_ESCAPED[ch]!) : text;
}

/**
 * One row's line of COPY text (without its newline), read from the row's JSON text, whose keys must be those of
 * `heads` (rowHeads) in order; undefined when they are not. The same text as `copyField(texts[i](value))` for each
 * value of JSON.parse(json), and \N for null, but without building the row: a string of a plain column without
 * escapes is copied as it stands, since JSON text holds no raw tab, newline or carriage return.
 */
export function copyLine(json: string, heads: readonly string[], texts: readonly PostgresText[]): string | undefined {
  let line = '';
  let at = 0;
  // The next backslash at or after `at`, or -1: found once, so a row is searched for them only once.
  let slash = json.indexOf('\\');
  for (let i = 0; i < heads.length; i++) {
    const head = heads[i]!;
    if (!json.startsWith(head, at)) return undefined;
    at += head.length;
    const end = valueEnd(json, at);
    if (end < 0) return undefined;
    const text = texts[i]!;
    let field: string;
    if (json.charCodeAt(at) === 0x22) {
      if (slash >= 0 && slash < at) slash = json.indexOf('\\', at);
      const raw = slash < 0 || slash >= end ? json.slice(at + 1, end - 1) : undefined;
      if (raw !== undefined && text === plainText) field = raw;
      else field = copyField(text(raw ?? JSON.parse(json.slice(at, end))));
    } else {
      const token = json.slice(at, end);
      if (token === 'null') field = '\\N';
      else if (text === plainText && isPlainInteger(token)) field = token;
      else field = copyField(text(JSON.parse(token)));
    }
    line += i === 0 ? field : `\t${field}`;
    at = end;
  }
  return at === json.length - 1 && json.charCodeAt(at) === 0x7d ? line : undefined;
}

/** An integer that JSON.stringify writes as it stands: at most 15 digits, no leading zero, no minus zero. */
export function isPlainInteger(token: string): boolean {
  const digits = token.charCodeAt(0) === 0x2d ? 1 : 0;
  const n = token.length - digits;
  if (n < 1 || n > 15) return false;
  const first = token.charCodeAt(digits);
  if (first === 0x30) return n === 1 && digits === 0;
  for (let i = digits; i < token.length; i++) {
    const d = token.charCodeAt(i);
    if (d < 0x30 || d > 0x39) return false;
  }
  return true;
}

const COPY_SPECIAL = /[\\\t\n\r]/;
const COPY_ESCAPES = /[\\\t\n\r]/g;
const COPY_ESCAPED: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** An identifier, quoted. */
export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
