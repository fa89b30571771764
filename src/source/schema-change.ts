/**
 * A table's next column version from a parsed DDL statement, the way the server itself would describe the
 * columns in INFORMATION_SCHEMA: the schema history is built from these, so a stream behind an ALTER still
 * encodes each row with the columns of its time.
 */
import type { AlterOp, ColumnDef, ColumnPosition } from './ddl.js';
import type { ColumnInfo, ServerCharsets, TableSchema } from './schema.js';

/** A statement tidemark reads but cannot turn into columns (a column of a type it does not know, say). */
export class UnappliedDdl extends Error {}

export interface SchemaContext {
  flavour: 'mysql' | 'mariadb';
  charsets: ServerCharsets;
}

/** Names the parser may give a type, and the DATA_TYPE the server reports for it. */
const TYPE_ALIASES: Record<string, string> = {
  INTEGER: 'int',
  INT4: 'int',
  INT8: 'bigint',
  INT1: 'tinyint',
  INT2: 'smallint',
  INT3: 'mediumint',
  MIDDLEINT: 'mediumint',
  BOOL: 'tinyint',
  BOOLEAN: 'tinyint',
  DEC: 'decimal',
  NUMERIC: 'decimal',
  FIXED: 'decimal',
  REAL: 'double',
  'DOUBLE PRECISION': 'double',
  FLOAT4: 'float',
  FLOAT8: 'double',
  CHARACTER: 'char',
  'CHARACTER VARYING': 'varchar',
  NCHAR: 'char',
  NVARCHAR: 'varchar',
  'NATIONAL CHAR': 'char',
  'NATIONAL VARCHAR': 'varchar',
  'LONG VARCHAR': 'mediumtext',
  LONG: 'mediumtext',
};

const KNOWN = new Set([
  'tinyint',
  'smallint',
  'mediumint',
  'int',
  'bigint',
  'decimal',
  'float',
  'double',
  'bit',
  'char',
  'varchar',
  'tinytext',
  'text',
  'mediumtext',
  'longtext',
  'binary',
  'varbinary',
  'tinyblob',
  'blob',
  'mediumblob',
  'longblob',
  'enum',
  'set',
  'date',
  'datetime',
  'timestamp',
  'time',
  'year',
  'json',
  'uuid',
  'inet4',
  'inet6',
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

const TEXT_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);
const INTEGER_PRECISION: Record<string, [number, number]> = {
  tinyint: [3, 3],
  smallint: [5, 5],
  mediumint: [7, 8],
  int: [10, 10],
  bigint: [19, 20],
};

/** ColumnInfo of a column definition in a table whose default collation is `tableCollation`. */
export function columnInfo(def: ColumnDef, tableCollation: string | null, ctx: SchemaContext, inPrimaryKey: boolean): ColumnInfo {
  const upper = def.type.toUpperCase();
  let dataType = TYPE_ALIASES[upper] ?? upper.toLowerCase();
  if (!KNOWN.has(dataType)) throw new UnappliedDdl(`column ${def.name} has the type ${def.type}, which tidemark does not know`);
  // MariaDB's JSON is an alias of LONGTEXT, known as JSON only by its json_valid() check.
  const mariadbJson = dataType === 'json' && ctx.flavour === 'mariadb';
  if (mariadbJson) dataType = 'longtext';
  const nullable = def.nullable ?? !(def.primaryKey || inPrimaryKey);
  const { charset, collation } = mariadbJson ? { charset: 'utf8mb4', collation: 'utf8mb4_bin' } : textCharset(def, dataType, tableCollation, ctx);
  const [precision, scale] = numeric(def, dataType);
  const temporal = dataType === 'datetime' || dataType === 'timestamp' || dataType === 'time';
  return {
    name: def.name,
    dataType,
    columnType: columnType(def, dataType),
    unsigned: def.unsigned,
    nullable,
    charset,
    collation,
    numericPrecision: precision,
    numericScale: scale,
    datetimePrecision: temporal ? (def.length ?? 0) : null,
    isJson: dataType === 'json' || mariadbJson,
  };
}

function textCharset(
  def: ColumnDef,
  dataType: string,
  tableCollation: string | null,
  ctx: SchemaContext,
): { charset: string | null; collation: string | null } {
  if (!TEXT_TYPES.has(dataType)) return { charset: null, collation: null };
  const { charsetOf, defaultCollation } = ctx.charsets;
  // A charset named without a collation takes the charset's default collation, not the table's.
  const collation = def.collation ?? (def.charset ? defaultCollation.get(def.charset) : tableCollation) ?? null;
  const charset = def.charset ?? (collation ? charsetOf.get(collation) : undefined) ?? null;
  return { charset, collation };
}

function numeric(def: ColumnDef, dataType: string): [number | null, number | null] {
  const integer = INTEGER_PRECISION[dataType];
  if (integer) return [def.unsigned ? integer[1] : integer[0], 0];
  if (dataType === 'decimal') return [def.length ?? 10, def.scale ?? 0];
  if (dataType === 'float') return [12, def.scale ?? null];
  if (dataType === 'double') return [22, def.scale ?? null];
  if (dataType === 'bit') return [def.length ?? 1, null];
  return [null, null];
}

function columnType(def: ColumnDef, dataType: string): string {
  const quoted = (v: string) => `'${v.replace(/'/g, "''")}'`;
  let t = dataType;
  if (dataType === 'enum' || dataType === 'set') t = `${dataType}(${(def.values ?? []).map(quoted).join(',')})`;
  else if (dataType === 'decimal') t = `decimal(${def.length ?? 10},${def.scale ?? 0})`;
  else if (['char', 'varchar', 'binary', 'varbinary', 'bit'].includes(dataType)) t = `${dataType}(${def.length ?? 1})`;
  else if (def.length !== undefined && ['datetime', 'timestamp', 'time'].includes(dataType) && def.length > 0) t = `${dataType}(${def.length})`;
  return def.unsigned ? `${t} unsigned` : t;
}

/** The table after an ALTER TABLE, or an UnappliedDdl naming what tidemark cannot follow. */
export function applyAlter(schema: TableSchema, ops: AlterOp[], ctx: SchemaContext): TableSchema {
  let columns = [...schema.columns];
  let primaryKey = [...schema.primaryKey];
  const at = (name: string): number => {
    const i = columns.findIndex((c) => c.name.toLowerCase() === name.toLowerCase());
    if (i < 0) throw new UnappliedDdl(`${schema.db}.${schema.table} has no column ${name}`);
    return i;
  };
  const place = (column: ColumnInfo, position: ColumnPosition, replacing?: number): void => {
    if (replacing !== undefined && position === undefined) {
      columns[replacing] = column;
      return;
    }
    if (replacing !== undefined) columns.splice(replacing, 1);
    if (position === undefined) columns.push(column);
    else if ('first' in position) columns.unshift(column);
    else columns.splice(at(position.after) + 1, 0, column);
  };
  const info = (def: ColumnDef) =>
    columnInfo(
      def,
      schema.collation,
      ctx,
      primaryKey.some((k) => k.toLowerCase() === def.name.toLowerCase()),
    );
  for (const op of ops) {
    switch (op.op) {
      case 'add':
        place(info(op.column), op.position);
        if (op.column.primaryKey) primaryKey = [op.column.name];
        break;
      case 'drop': {
        const i = at(op.column);
        columns = columns.filter((_, j) => j !== i);
        primaryKey = primaryKey.filter((k) => k.toLowerCase() !== op.column.toLowerCase());
        break;
      }
      case 'modify':
        place(info(op.column), op.position, at(op.column.name));
        break;
      case 'change': {
        const i = at(op.from);
        place(info(op.column), op.position, i);
        primaryKey = primaryKey.map((k) => (k.toLowerCase() === op.from.toLowerCase() ? op.column.name : k));
        break;
      }
      case 'rename-column': {
        const i = at(op.from);
        columns[i] = { ...columns[i]!, name: op.to };
        primaryKey = primaryKey.map((k) => (k.toLowerCase() === op.from.toLowerCase() ? op.to : k));
        break;
      }
      case 'drop-primary-key':
        primaryKey = [];
        break;
      case 'add-primary-key':
        primaryKey = op.columns.map((c) => columns[at(c)]!.name);
        // Primary key columns are NOT NULL.
        columns = columns.map((c) => (primaryKey.includes(c.name) ? { ...c, nullable: false } : c));
        break;
      case 'none':
        break;
    }
  }
  return { ...schema, columns, primaryKey };
}

/** The table a CREATE TABLE defines (not a CREATE TABLE … LIKE, which copies another table's version). */
export function createdSchema(db: string, table: string, defs: ColumnDef[], primaryKey: string[], collation: string | null, ctx: SchemaContext): TableSchema {
  const key = primaryKey.map((k) => k.toLowerCase());
  const columns = defs.map((d) => columnInfo(d, collation, ctx, key.includes(d.name.toLowerCase())));
  return { db, table, columns, primaryKey: primaryKey.map((k) => columns.find((c) => c.name.toLowerCase() === k.toLowerCase())?.name ?? k), collation };
}
