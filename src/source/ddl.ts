/**
 * DDL statements from the binlog, read with node-sql-parser into what they do to tables: the schema history
 * (ARCHITECTURE §4) is built from this, not from the server's current definitions, which are right only for a
 * stream that is not behind.
 */
import sqlParser from 'node-sql-parser';

export interface TableRef {
  db: string;
  table: string;
}

/** A column as a DDL statement defines it; absent fields take the table's or the server's defaults. */
export interface ColumnDef {
  name: string;
  /** Upper case, as written: INT, INTEGER, VARCHAR, DECIMAL, ENUM, ... */
  type: string;
  length?: number;
  scale?: number;
  unsigned: boolean;
  /** ENUM and SET labels. */
  values?: string[];
  charset?: string;
  collation?: string;
  /** Undefined: not said (nullable, unless part of the primary key). */
  nullable?: boolean;
  primaryKey: boolean;
}

export type ColumnPosition = { first: true } | { after: string } | undefined;

export type AlterOp =
  | { op: 'add'; column: ColumnDef; position: ColumnPosition }
  | { op: 'drop'; column: string }
  | { op: 'modify'; column: ColumnDef; position: ColumnPosition }
  | { op: 'change'; from: string; column: ColumnDef; position: ColumnPosition }
  | { op: 'rename-column'; from: string; to: string }
  | { op: 'drop-primary-key' }
  | { op: 'add-primary-key'; columns: string[] }
  /** Indexes, algorithm, comments, table options: nothing a row image shows. */
  | { op: 'none' };

export type DdlChange =
  | { kind: 'alter'; table: TableRef; ops: AlterOp[]; renameTo?: TableRef }
  | { kind: 'create'; table: TableRef; columns: ColumnDef[]; primaryKey: string[]; like?: TableRef; charset?: string; collation?: string }
  | { kind: 'drop'; tables: TableRef[] }
  | { kind: 'rename'; pairs: [TableRef, TableRef][] }
  | { kind: 'truncate'; tables: TableRef[] }
  /** A statement that changes no table's columns (CREATE INDEX, a view, a grant, ...). */
  | { kind: 'none' }
  /** The parser could not read it; `mentions` are the tables its text names, as far as a plain search can tell. */
  | { kind: 'unparsed'; mentions: (db: string, table: string) => boolean; error: string };

const parser = new sqlParser.Parser();

/** Statements that can change a table; everything else in a query event (BEGIN, XA, grants, ...) is not DDL. */
const DDL = /^(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b/i;

/** Leading comments and spaces, which MySQL keeps in the binlog's statement text. */
const LEADING = /^(?:\s+|\/\*[\s\S]*?\*\/|#[^\n]*\n|--[ \t][^\n]*\n)*/;

export function isDdl(sql: string): boolean {
  return DDL.test(sql.replace(LEADING, ''));
}

/** What a DDL statement does to tables; unqualified names are in `defaultDb` (the query event's database). */
export function parseDdl(sql: string, defaultDb: string, flavour: 'mysql' | 'mariadb'): DdlChange {
  let ast: unknown;
  const text = sql.replace(LEADING, '');
  try {
    ast = astify(text, flavour === 'mariadb' ? ['MariaDB', 'MySQL'] : ['MySQL', 'MariaDB']);
  } catch (err) {
    return { kind: 'unparsed', mentions: mentionedIn(sql, defaultDb), error: (err as Error).message.split('\n')[0]! };
  }
  const node = (Array.isArray(ast) ? ast[0] : ast) as Node;
  const ref = (t: Node): TableRef => ({ db: (t.db as string | null) ?? defaultDb, table: t.table as string });
  switch (node.type) {
    case 'alter': {
      const table = ref((node.table as Node[])[0]!);
      const exprs = (node.expr as Node[]) ?? [];
      const renameTo = exprs.find((e) => e.action === 'rename' && e.resource === 'table');
      return {
        kind: 'alter',
        table,
        ops: exprs.filter((e) => e !== renameTo).map(alterOp),
        ...(renameTo ? { renameTo: renameTarget(renameTo.table, table) } : {}),
      };
    }
    case 'create': {
      if (node.keyword !== 'table') return { kind: 'none' };
      const table = ref((node.table as Node[])[0]!);
      const like = node.like as Node | undefined;
      if (like) return { kind: 'create', table, columns: [], primaryKey: [], like: ref((like.table as Node[])[0]!) };
      const defs = (node.create_definitions as Node[] | null) ?? [];
      const columns = defs.filter((d) => d.resource === 'column').map(columnDef);
      const keyDef = defs.find((d) => d.resource === 'constraint' && d.constraint_type === 'primary key');
      const primaryKey = keyDef ? keyColumns(keyDef) : columns.filter((c) => c.primaryKey).map((c) => c.name);
      return { kind: 'create', table, columns, primaryKey, ...tableOptions(node.table_options as Node[] | null) };
    }
    case 'drop':
      return node.keyword === 'table' ? { kind: 'drop', tables: (node.name as Node[]).map(ref) } : { kind: 'none' };
    case 'rename':
      return { kind: 'rename', pairs: (node.table as Node[][]).map(([from, to]) => [ref(from!), ref(to!)]) };
    case 'truncate':
      return { kind: 'truncate', tables: (node.name as Node[]).map(ref) };
    default:
      return { kind: 'none' };
  }
}

type Node = Record<string, unknown>;

/**
 * Each grammar of node-sql-parser reads statements the other refuses (its MariaDB one has no
 * `ADD PRIMARY KEY`, its MySQL one no UUID type), so the other flavour's is tried second.
 */
function astify(text: string, grammars: string[]): unknown {
  let first: unknown;
  for (const database of grammars) {
    try {
      return parser.astify(text, { database });
    } catch (err) {
      first ??= err;
    }
  }
  throw first;
}

function renameTarget(target: unknown, from: TableRef): TableRef {
  if (typeof target === 'string') return { db: from.db, table: target };
  const t = target as Node;
  return { db: (t.db as string | null) ?? from.db, table: t.table as string };
}

function alterOp(e: Node): AlterOp {
  const position = positionOf(e.suffix);
  if (e.resource === 'column') {
    switch (e.action) {
      case 'add':
        return { op: 'add', column: columnDef(e), position };
      case 'drop':
        return { op: 'drop', column: columnName(e.column) };
      case 'modify':
        return { op: 'modify', column: columnDef(e), position };
      case 'change':
        return { op: 'change', from: columnName(e.old_column), column: columnDef(e), position };
      case 'rename':
        return { op: 'rename-column', from: columnName(e.old_column), to: columnName(e.column) };
    }
  }
  if (e.resource === 'key' && e.action === 'drop' && e.keyword === 'primary key') return { op: 'drop-primary-key' };
  const constraint = e.create_definitions as Node | undefined;
  if (e.action === 'add' && constraint?.constraint_type === 'primary key') return { op: 'add-primary-key', columns: keyColumns(constraint) };
  return { op: 'none' };
}

function positionOf(suffix: unknown): ColumnPosition {
  const s = suffix as Node | null | undefined;
  if (!s || typeof s !== 'object' || Array.isArray(s)) return undefined;
  if (String(s.keyword).toUpperCase() === 'FIRST') return { first: true };
  if (String(s.keyword).toUpperCase() === 'AFTER') return { after: columnName(s.expr) };
  return undefined;
}

const columnName = (c: unknown): string => {
  const col = (c as Node).column;
  return typeof col === 'string' ? col : String(((col as Node).expr as Node)?.value ?? col);
};

function keyColumns(def: Node): string[] {
  return (def.definition as Node[]).map((c) => columnName(c));
}

function columnDef(e: Node): ColumnDef {
  const def = e.definition as Node;
  const suffix = ((def.suffix as unknown[] | null) ?? []).map((s) => String(s).toUpperCase());
  // The parser keeps a label's quoting as written ('y''z', 'y\\'z').
  const values = def.expr
    ? ((def.expr as Node).value as Node[]).map((v) => String(v.value).replace(/''|\\(.)/g, (_m, c: string | undefined) => c ?? "'"))
    : undefined;
  const nullable = e.nullable as Node | null | undefined;
  const charset = ((e.character_set as Node | null)?.value as Node | undefined)?.value;
  const collate = (e.collate as Node | null)?.collate as Node | undefined;
  return {
    name: columnName(e.column),
    type: String(def.dataType).toUpperCase(),
    ...(typeof def.length === 'number' ? { length: def.length } : {}),
    ...(typeof def.scale === 'number' ? { scale: def.scale } : {}),
    unsigned: suffix.includes('UNSIGNED'),
    ...(values ? { values } : {}),
    ...(typeof charset === 'string' ? { charset: charset.toLowerCase() } : {}),
    ...(typeof collate?.name === 'string' ? { collation: collate.name.toLowerCase() } : {}),
    ...(nullable ? { nullable: nullable.type !== 'not null' } : {}),
    primaryKey: e.primary_key === 'primary key',
  };
}

function tableOptions(options: Node[] | null): { charset?: string; collation?: string } {
  const out: { charset?: string; collation?: string } = {};
  for (const o of options ?? []) {
    const keyword = String(o.keyword).toUpperCase();
    const raw = o.value as Node | string;
    const value = String(typeof raw === 'object' && raw !== null ? raw.value : raw).toLowerCase();
    if (keyword.includes('CHARACTER SET') || keyword.includes('CHARSET')) out.charset = value;
    else if (keyword.includes('COLLATE')) out.collation = value;
  }
  return out;
}

/** For a statement the parser cannot read: whether its text names db.table, qualified or in its default database. */
function mentionedIn(sql: string, defaultDb: string): (db: string, table: string) => boolean {
  return (db, table) => {
    const word = (s: string) => new RegExp(`(^|[^\\w$])\`?${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\`?([^\\w$]|$)`, 'i');
    return word(table).test(sql) && (db === defaultDb || word(db).test(sql));
  };
}
