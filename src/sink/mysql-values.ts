import mysql from 'mysql2';
import { SPATIAL } from '../events/values.js';
import type { ColumnInfo } from '../source/schema.js';

/**
 * MySQL and MariaDB target types for source columns, and each canonical value (docs/values.md) as an SQL literal
 * that stores exactly the source's value. Types stay the source's, except: text is utf8mb4 with the binary
 * collation that does not pad (every source value fits, and two keys the source tells apart stay apart); ENUM and
 * SET are text (the server's column type, the only place their labels are listed, lower-cases them and turns
 * characters beyond the BMP into '?', and an ENUM's invalid value '' fits no strict ENUM); and the types one
 * flavour lacks.
 */

const TEXT = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext']);
const BYTES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);
const NUMBERS = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'bigint', 'decimal', 'year']);

export type Flavour = 'mysql' | 'mariadb';

/** The binary collation without PAD SPACE, by target flavour. */
export const BINARY_COLLATION: Record<Flavour, string> = { mysql: 'utf8mb4_0900_bin', mariadb: 'utf8mb4_nopad_bin' };

export function mysqlType(c: ColumnInfo, target: Flavour): string {
  // MariaDB's JSON is a LONGTEXT with a json_valid check; either flavour's JSON type reads the text.
  if (c.isJson) return 'json';
  const utf8 = `CHARACTER SET utf8mb4 COLLATE ${BINARY_COLLATION[target]}`;
  if (TEXT.has(c.dataType)) return `${c.columnType} ${utf8}`;
  // An ENUM label is at most 255 characters.
  if (c.dataType === 'enum') return `varchar(255) ${utf8}`;
  if (c.dataType === 'set') return `text ${utf8}`;
  if (target === 'mysql') {
    if (c.dataType === 'uuid') return 'char(36)';
    if (c.dataType === 'inet4') return 'varchar(15)';
    if (c.dataType === 'inet6') return 'varchar(45)';
  }
  if (target === 'mariadb' && c.dataType === 'geomcollection') return 'geometrycollection';
  return c.columnType;
}

/** A canonical value (never null) as an SQL literal. */
export type MysqlLiteral = (value: unknown) => string;

const quote = (s: string): string => mysql.escape(s);
const hexLiteral = (bytes: Buffer): string => (bytes.length === 0 ? "''" : `X'${bytes.toString('hex')}'`);
const NUMERIC = /^-?\d+(\.\d+)?$/;

export function mysqlLiteral(c: ColumnInfo): MysqlLiteral {
  if (c.isJson) return (v) => quote(String(v));
  if (NUMBERS.has(c.dataType)) return (v) => (NUMERIC.test(String(v)) ? String(v) : quote(String(v)));
  switch (c.dataType) {
    // The float32 itself, written as the double that equals it: the server reads a FLOAT literal as a double and
    // refuses one beyond the float range before rounding (3.4028235e38, FLT_MAX's shortest text, is just above it).
    case 'float':
      return (v) => (Object.is(v, -0) ? '-0e0' : String(Math.fround(v as number)));
    case 'double':
      return (v) => (Object.is(v, -0) ? '-0e0' : String(v));
    case 'datetime':
      return (v) => quote((v as string).replace('T', ' '));
    // The session's time zone is UTC, as the canonical value's.
    case 'timestamp':
      return (v) => quote((v as string).replace('T', ' ').replace(/Z$/, ''));
    case 'set':
      return (v) => quote((v as string[]).join(','));
    case 'bit':
      return (v) => (typeof v === 'number' ? String(v) : hexLiteral(Buffer.from(v as string, 'base64')));
  }
  if (BYTES.has(c.dataType)) return (v) => hexLiteral(Buffer.from(v as string, 'base64'));
  if (SPATIAL.has(c.dataType)) {
    // The server's own form of a spatial value: the SRID (4 bytes, little-endian), then the WKB.
    return (v) => {
      const { wkb, srid } = v as { wkb: string; srid: number };
      const head = Buffer.alloc(4);
      head.writeUInt32LE(srid);
      return hexLiteral(Buffer.concat([head, Buffer.from(wkb, 'base64')]));
    };
  }
  return (v) => quote(typeof v === 'string' ? v : JSON.stringify(v));
}

/** An identifier, quoted. */
export const quoteName = (name: string): string => `\`${name.replace(/`/g, '``')}\``;
