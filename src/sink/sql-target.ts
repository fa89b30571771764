import type { SinkConfig } from '../config/schema.js';
import type { DeadLetterValue } from '../events/dead-letter.js';
import type { ColumnInfo, TableSchema } from '../source/schema.js';

export type SqlSinkConfig = Extract<SinkConfig, { type: 'postgres' | 'mysql' }>;

/**
 * What a database sink learns about the source's tables, from whoever owns them: the sink needs their columns to
 * create target tables and to add columns, and nothing else.
 */
export interface SourceSchemas {
  /** The captured tables as the source has them now. */
  tables(): TableSchema[];
  /** The newest columns tidemark knows for db.table (a chunk read after an ALTER has them before the stream does). */
  current(db: string, table: string): Promise<TableSchema | undefined>;
}

export interface Endpoint {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** The sink's url, or its host/port/user/password/database keys; the config schema already checked either. */
export function sqlEndpoint(config: SqlSinkConfig): Endpoint {
  const defaultPort = config.type === 'postgres' ? 5432 : 3306;
  if (config.url === undefined) {
    return {
      host: config.host ?? '127.0.0.1',
      port: config.port ?? defaultPort,
      user: config.user ?? '',
      password: config.password ?? '',
      database: config.database ?? '',
    };
  }
  const url = new URL(config.url);
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? defaultPort : Number(url.port),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
  };
}

/** The target table's name for a source table, from `sink.tableName` (`<db>` and `<table>` replaced). */
export const targetTableName = (template: string, db: string, table: string): string => template.replaceAll('<db>', db).replaceAll('<table>', table);

/** The commit state a target holds for one connector (its row in `tidemark_offsets`). */
export interface OffsetsRow {
  /** The sink's own commit number: what `holds` compares. It keeps counting across a checkpoint reset. */
  commit: number;
  /** The checkpoint's commit sequence number it was committed with. */
  seq: number;
  file: string | null;
  pos: number | null;
  gtid: string | null;
  committedAt: string;
}

export interface TargetColumn {
  name: string;
  nullable: boolean;
  hasDefault: boolean;
}

/** A target table as the database describes it. */
export interface TargetTable {
  columns: Map<string, TargetColumn>;
  /** Column sets of its primary key and unique indexes. */
  uniqueKeys: string[][];
}

/** A row as canonical values (docs/values.md), by column name. */
export type Row = Record<string, unknown>;

/**
 * One database as a sink target: its connection, its SQL and how its values are written. The generic part
 * (SqlSink) decides what to write; a target only knows how.
 */
export interface SqlTarget {
  readonly kind: 'postgres' | 'mysql';
  /** `postgres 127.0.0.1:5432/db, schema public`, for messages (no password). */
  readonly where: string;
  /** PostgreSQL's DDL is transactional; MySQL commits before and after each DDL statement by itself. */
  readonly transactionalDdl: boolean;
  /** Connects if not connected (again after a lost connection); idempotent. */
  connect(): Promise<void>;
  /** Drops the connection after an error that may have left it unusable. */
  reset(): Promise<void>;
  close(): Promise<void>;
  begin(): Promise<void>;
  commit(): Promise<void>;
  rollback(): Promise<void>;
  savepoint(name: string): Promise<void>;
  rollbackTo(name: string): Promise<void>;
  release(name: string): Promise<void>;
  /** Creates tidemark's own tables when missing: offsets, aligned table versions, dead letters. */
  ensureMetaTables(): Promise<void>;
  readOffsets(connector: string): Promise<OffsetsRow | undefined>;
  writeOffsets(connector: string, row: OffsetsRow): Promise<void>;
  /** The source version a target table was last aligned with, by `db.table` (tidemark_tables). */
  readAligned(connector: string, sourceTable: string): Promise<TableSchema | undefined>;
  writeAligned(connector: string, sourceTable: string, targetTable: string, schema: TableSchema | null): Promise<void>;
  describe(table: string): Promise<TargetTable | undefined>;
  /** The target type a source column gets (what a CREATE or ADD COLUMN writes). */
  columnType(column: ColumnInfo): string;
  createTable(table: string, schema: TableSchema, key: string[]): Promise<void>;
  addColumn(table: string, column: ColumnInfo): Promise<void>;
  truncate(table: string): Promise<void>;
  deleteRows(table: string, key: ColumnInfo[], keys: Row[]): Promise<void>;
  /**
   * `rows`: JSON text of canonical values, each an object of exactly `columns`, in that order. `fresh`: the rows are
   * snapshot reads, probably new to the table, so a plain bulk load may be tried first.
   */
  upsertRows(table: string, columns: ColumnInfo[], key: string[], rows: string[], fresh: boolean): Promise<void>;
  writeDeadLetters(letters: DeadLetterValue[]): Promise<void>;
  /** Whether trying the same again can succeed: a lost connection, a deadlock, a serialization failure. */
  isTransient(err: unknown): boolean;
}

/** The longest identifier the target keeps whole (PostgreSQL cuts longer ones silently). */
export const MAX_IDENTIFIER = { postgres: 63, mysql: 64 } as const;
