import type { ColumnInfo } from '../../src/source/schema.js';

/** A column as INFORMATION_SCHEMA would describe it: NOT NULL, no charset, unless `extra` says otherwise. */
export function col(name: string, dataType: string, extra: Partial<ColumnInfo> = {}): ColumnInfo {
  return {
    name,
    dataType,
    columnType: dataType,
    unsigned: false,
    nullable: false,
    charset: null,
    collation: null,
    numericPrecision: null,
    numericScale: null,
    datetimePrecision: null,
    isJson: dataType === 'json',
    ...extra,
  };
}
