/**
 * A self-describing table map (binlog_row_metadata=FULL) says which columns a row image has. They must be those
 * of the version the schema history has in force there, or a DDL statement was missed or misread, and rows would
 * be encoded with the wrong columns: the stream stops instead (ARCHITECTURE §4, schema history).
 */
import { SourceError } from '../../errors.js';
import type { MappedColumn } from '../../source/binlog.js';
import type { TableSchema } from '../../source/schema.js';

const verified = new WeakMap<MappedColumn[], TableSchema>();

/** Checks once per table map and version; throws a SourceError naming both column lists on a mismatch. */
export function checkRowImage(columns: MappedColumn[], schema: TableSchema, where: string): void {
  if (verified.get(columns) === schema) return;
  const problem = mismatch(columns, schema);
  if (problem) {
    throw new SourceError(
      `the binlog's row images of ${schema.db}.${schema.table} ${where} have the columns (${columns.map((c) => `${c.name} ${c.type}`).join(', ')}), ` +
        `but tidemark's schema history has (${schema.columns.map((c) => `${c.name} ${c.columnType}`).join(', ')}) there (${problem}): a DDL statement on the table was missed or misread. ` +
        'tidemark stopped rather than encode rows with the wrong columns. `tidemark reset` and a new snapshot start over from the server as it is.',
    );
  }
  verified.set(columns, schema);
}

/** What differs, or null. Types compare by kind: the table map has no display widths, and zongji rewrites text types. */
function mismatch(columns: MappedColumn[], schema: TableSchema): string | null {
  if (columns.length !== schema.columns.length) return `${columns.length} columns against ${schema.columns.length}`;
  for (let i = 0; i < columns.length; i++) {
    const mapped = columns[i]!;
    const known = schema.columns[i]!;
    if (mapped.name.toLowerCase() !== known.name.toLowerCase()) return `column ${i + 1} is ${mapped.name}, not ${known.name}`;
    if (kind(mapped.type) !== kind(known.dataType)) return `${known.name} is ${mapped.type}, not ${known.columnType}`;
  }
  return null;
}

const KINDS: Record<string, string> = {
  char: 'string',
  varchar: 'string',
  binary: 'string',
  varbinary: 'string',
  uuid: 'string',
  inet4: 'string',
  inet6: 'string',
  tinytext: 'long',
  text: 'long',
  mediumtext: 'long',
  longtext: 'long',
  tinyblob: 'long',
  blob: 'long',
  mediumblob: 'long',
  longblob: 'long',
  json: 'long',
  geometry: 'spatial',
  point: 'spatial',
  linestring: 'spatial',
  polygon: 'spatial',
  multipoint: 'spatial',
  multilinestring: 'spatial',
  multipolygon: 'spatial',
  geomcollection: 'spatial',
  geometrycollection: 'spatial',
};

function kind(type: string): string {
  const base = /^[a-z0-9]+/i.exec(type)?.[0]?.toLowerCase() ?? type;
  return KINDS[base] ?? base;
}
