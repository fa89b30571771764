import type { Connection } from 'mysql2/promise';

/** One column as INFORMATION_SCHEMA.COLUMNS describes it; the value encoder works from this. */
export interface ColumnInfo {
  name: string;
  /** DATA_TYPE, lower case: 'int', 'bigint', 'varchar', 'datetime', 'json', 'enum', ... */
  dataType: string;
  /** COLUMN_TYPE, lower case: 'bigint unsigned', "enum('a','b')", 'datetime(6)', 'decimal(65,30)', 'bit(12)' */
  columnType: string;
  unsigned: boolean;
  nullable: boolean;
  charset: string | null;
  collation: string | null;
  numericPrecision: number | null;
  numericScale: number | null;
  datetimePrecision: number | null;
  /** A JSON column; on MariaDB JSON is a LONGTEXT alias known only by its json_valid() check. */
  isJson: boolean;
}

export interface TableSchema {
  db: string;
  table: string;
  /** In ordinal order. */
  columns: ColumnInfo[];
  /** Primary key columns in key order; empty when the table has none. */
  primaryKey: string[];
  /** The table's default collation (and so charset), which a column added without one takes. */
  collation: string | null;
}

interface ColumnRow {
  TABLE_NAME: string;
  COLUMN_NAME: string;
  DATA_TYPE: string;
  COLUMN_TYPE: string;
  IS_NULLABLE: string;
  CHARACTER_SET_NAME: string | null;
  COLLATION_NAME: string | null;
  NUMERIC_PRECISION: number | string | null;
  NUMERIC_SCALE: number | string | null;
  DATETIME_PRECISION: number | string | null;
  COLUMN_KEY: string;
}

const num = (v: number | string | null): number | null => (v === null ? null : Number(v));

/** Loads the column lists and primary keys of the given tables of one database. */
export async function loadTableSchemas(conn: Connection, db: string, tables: string[]): Promise<Map<string, TableSchema>> {
  const result = new Map<string, TableSchema>();
  if (tables.length === 0) return result;
  const [cols] = await conn.query(
    `SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME,
            NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, COLUMN_KEY
       FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?) ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [db, tables],
  );
  const [keys] = await conn.query(
    `SELECT TABLE_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.KEY_COLUMN_USAGE
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?) AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_NAME, ORDINAL_POSITION`,
    [db, tables],
  );
  for (const c of cols as ColumnRow[]) {
    let t = result.get(c.TABLE_NAME);
    if (!t) {
      t = { db, table: c.TABLE_NAME, columns: [], primaryKey: [], collation: null };
      result.set(c.TABLE_NAME, t);
    }
    const columnType = c.COLUMN_TYPE.toLowerCase();
    t.columns.push({
      name: c.COLUMN_NAME,
      dataType: c.DATA_TYPE.toLowerCase(),
      columnType,
      unsigned: /\bunsigned\b/.test(columnType),
      nullable: c.IS_NULLABLE === 'YES',
      charset: c.CHARACTER_SET_NAME,
      collation: c.COLLATION_NAME,
      numericPrecision: num(c.NUMERIC_PRECISION),
      numericScale: num(c.NUMERIC_SCALE),
      datetimePrecision: num(c.DATETIME_PRECISION),
      isJson: c.DATA_TYPE.toLowerCase() === 'json',
    });
  }
  for (const k of keys as { TABLE_NAME: string; COLUMN_NAME: string }[]) result.get(k.TABLE_NAME)?.primaryKey.push(k.COLUMN_NAME);
  const [collations] = await conn.query('SELECT TABLE_NAME, TABLE_COLLATION FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)', [
    db,
    tables,
  ]);
  for (const t of collations as { TABLE_NAME: string; TABLE_COLLATION: string | null }[]) {
    const schema = result.get(t.TABLE_NAME);
    if (schema) schema.collation = t.TABLE_COLLATION;
  }
  for (const { table, column } of await mariadbJsonColumns(conn, db, tables)) {
    const c = result.get(table)?.columns.find((col) => col.name === column);
    if (c) c.isJson = true;
  }
  return result;
}

/** MariaDB declares a JSON column as LONGTEXT with a `json_valid(col)` check constraint named after the column. */
async function mariadbJsonColumns(conn: Connection, db: string, tables: string[]): Promise<{ table: string; column: string }[]> {
  try {
    const [rows] = await conn.query(
      `SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM INFORMATION_SCHEMA.CHECK_CONSTRAINTS
        WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME IN (?) AND CHECK_CLAUSE LIKE 'json_valid(%'`,
      [db, tables],
    );
    return (rows as { TABLE_NAME: string; CHECK_CLAUSE: string }[]).flatMap((r) => {
      const m = /^json_valid\(`?([^`)]+)`?\)$/i.exec(r.CHECK_CLAUSE.trim());
      return m ? [{ table: r.TABLE_NAME, column: m[1]! }] : [];
    });
  } catch {
    // MySQL's CHECK_CONSTRAINTS has no TABLE_NAME column; its JSON columns already say 'json'.
    return [];
  }
}

/** Unique indexes of each table as column lists in index order; functional index parts have no column and are left out. */
export async function uniqueIndexes(conn: Connection, db: string, tables: string[]): Promise<Map<string, string[][]>> {
  const [rows] = await conn.query(
    `SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM INFORMATION_SCHEMA.STATISTICS
      WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?) AND NON_UNIQUE = 0 ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`,
    [db, tables],
  );
  const indexes = new Map<string, { table: string; columns: (string | null)[] }>();
  for (const r of rows as { TABLE_NAME: string; INDEX_NAME: string; COLUMN_NAME: string | null }[]) {
    const id = `${r.TABLE_NAME}\0${r.INDEX_NAME}`;
    const index = indexes.get(id) ?? { table: r.TABLE_NAME, columns: [] };
    index.columns.push(r.COLUMN_NAME);
    indexes.set(id, index);
  }
  const out = new Map<string, string[][]>();
  for (const { table, columns } of indexes.values()) {
    if (columns.every((c): c is string => c !== null)) out.set(table, [...(out.get(table) ?? []), columns]);
  }
  return out;
}

/** Why a configured chunk key can't be used, in the words sync would refuse it with; null when it can. */
export function chunkKeyProblem(schema: TableSchema, key: string[], unique: string[][]): string | null {
  for (const k of key) {
    const col = schema.columns.find((c) => c.name === k);
    if (!col) return `has no column ${k}`;
    if (col.nullable) return `column ${k} is nullable; a chunk key must be NOT NULL`;
  }
  if (!unique.some((cols) => cols.join('\0') === key.join('\0'))) return `(${key.join(', ')}) is not a unique index`;
  return null;
}

/** The server's charsets and collations: which collation a charset defaults to, and which charset a collation is of. */
export interface ServerCharsets {
  defaultCollation: Map<string, string>;
  charsetOf: Map<string, string>;
}

export async function loadCharsets(conn: Connection): Promise<ServerCharsets> {
  const [sets] = await conn.query('SELECT CHARACTER_SET_NAME AS cs, DEFAULT_COLLATE_NAME AS coll FROM INFORMATION_SCHEMA.CHARACTER_SETS');
  const [colls] = await conn.query('SELECT COLLATION_NAME AS coll, CHARACTER_SET_NAME AS cs FROM INFORMATION_SCHEMA.COLLATIONS');
  // MariaDB lists collations that apply to several charsets with none.
  const pairs = (rows: unknown, from: 'cs' | 'coll', to: 'cs' | 'coll'): [string, string][] =>
    (rows as Record<'cs' | 'coll', string | null>[]).flatMap((r) =>
      r[from] && r[to] ? [[r[from]!.toLowerCase(), r[to]!.toLowerCase()] as [string, string]] : [],
    );
  return { defaultCollation: new Map(pairs(sets, 'cs', 'coll')), charsetOf: new Map(pairs(colls, 'coll', 'cs')) };
}
