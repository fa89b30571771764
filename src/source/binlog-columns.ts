import type ZongJi from '@vlasky/zongji';
import type { AnyBinlogEvent, TableMapEvent } from '@vlasky/zongji';

/** zongji's column type codes (MySQL's enum_field_types) that this file reads or writes. */
const TYPE = {
  VARCHAR: 15,
  VARCHAR_COMPRESSED: 141,
  BLOB_COMPRESSED: 140,
  JSON: 245,
  TINY_BLOB: 249,
  MEDIUM_BLOB: 250,
  LONG_BLOB: 251,
  BLOB: 252,
  VAR_STRING: 253,
  STRING: 254,
  GEOMETRY: 255,
} as const;

const LENGTH_PREFIXED = new Set<number>([TYPE.VARCHAR, TYPE.VARCHAR_COMPRESSED, TYPE.VAR_STRING, TYPE.STRING]);
const BLOBS = new Set<number>([TYPE.TINY_BLOB, TYPE.MEDIUM_BLOB, TYPE.LONG_BLOB, TYPE.BLOB, TYPE.BLOB_COMPRESSED]);

/**
 * Makes zongji hand over, as a Buffer of the row image's bytes, every column whose decoding loses what the
 * value encoder needs (src/events/values.ts decodes them): MySQL's binary JSON (zongji's JS values forget
 * 1.0 against 1 and DECIMAL against text), spatial values (zongji keeps coordinates, not the SRID or the
 * type), and every string column. zongji decodes text with iconv-lite tables that are not the server's, and
 * by charsets it cannot be trusted with: from MariaDB's binlog metadata, which lists spatial columns among the
 * character columns, it gives every column after one the charset of another (a UTF-8 column decoded as
 * latin1). The encoder decodes text by the column's own charset instead, and needs the bytes of MariaDB's
 * UUID/INET4/INET6, which zongji prints only when it read the column types from INFORMATION_SCHEMA.
 *
 * zongji emits each TableMap event before it decodes the row events that use it, so the columns are switched
 * there, in zongji's cached table map: a JSON or spatial column becomes a charsetless BLOB (the same
 * length-prefixed layout, read as bytes), a CHAR, VARCHAR, BINARY or VARBINARY column a VARBINARY, a TEXT or
 * BLOB column a charsetless one. Needs 'tablemap' among the included events (without it zongji decodes no rows).
 */
export function keepRawBytes(zongji: ZongJi): void {
  zongji.on('binlog', (evt: AnyBinlogEvent) => {
    if (evt.getEventName() === 'tablemap') switchColumns(evt as TableMapEvent);
  });
}

function switchColumns(evt: TableMapEvent): void {
  const table = evt.tableMap[evt.tableId];
  if (!table?.columns) return;
  table.columns.forEach((column, i) => {
    if (column.type === TYPE.JSON || column.type === TYPE.GEOMETRY) {
      column.type = TYPE.BLOB;
      column.charset = null;
    } else if (LENGTH_PREFIXED.has(column.type)) {
      table.columnSchemas[i]!.COLUMN_TYPE = 'varbinary';
    } else if (BLOBS.has(column.type)) {
      column.charset = null;
    }
  });
}
