import mysql from 'mysql2/promise';
import { isConnectionLoss } from '../errors.js';
import type { DeadLetterValue } from '../events/dead-letter.js';
import type { ColumnInfo, TableSchema } from '../source/schema.js';
import { BINARY_COLLATION, type Flavour, type MysqlLiteral, mysqlLiteral, mysqlType, quoteName } from './mysql-values.js';
import { type Endpoint, type OffsetsRow, type Row, type SqlSinkConfig, type SqlTarget, sqlEndpoint, type TargetTable } from './sql-target.js';

export type MysqlSinkConfig = Extract<SqlSinkConfig, { type: 'mysql' }>;

// An upsert or delete statement is cut at about this much SQL text, well under any max_allowed_packet.
const STATEMENT_CHARS = 4 << 20;
const TRANSIENT_CODES = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', 'ER_CON_COUNT_ERROR', 'ER_TOO_MANY_USER_CONNECTIONS']);
// Strict, so that a value the target cannot hold is refused rather than changed; UTC, as the canonical TIMESTAMP values.
const SESSION_SQL = "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'";

interface Statements {
  head: string;
  tail: string;
  literals: MysqlLiteral[];
}

/** MySQL 8+ or MariaDB 10.6+ as a sink target (mysql2). */
export class MysqlTarget implements SqlTarget {
  readonly kind = 'mysql';
  readonly transactionalDdl = false;
  readonly where: string;
  private conn: mysql.Connection | null = null;
  private readonly endpoint: Endpoint;
  flavour: Flavour = 'mysql';
  private readonly statements = new Map<string, Statements>();

  constructor(private readonly config: MysqlSinkConfig) {
    this.endpoint = sqlEndpoint(config);
    this.where = `mysql ${this.endpoint.host}:${this.endpoint.port}/${this.endpoint.database}`;
  }

  async connect(): Promise<void> {
    if (this.conn) return;
    const { host, port, user, password, database } = this.endpoint;
    const ssl = this.config.ssl === true ? {} : this.config.ssl === false ? undefined : (this.config.ssl as mysql.SslOptions | undefined);
    const conn = await mysql.createConnection({
      host,
      port,
      user,
      password,
      database,
      ssl,
      charset: 'UTF8MB4_UNICODE_CI',
      connectTimeout: 10_000,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
    });
    conn.on('error', () => {
      if (this.conn === conn) this.conn = null;
    });
    const [rows] = await conn.query({ sql: 'SELECT VERSION()', rowsAsArray: true });
    this.flavour = /mariadb/i.test(String((rows as unknown[][])[0]![0])) ? 'mariadb' : 'mysql';
    await conn.query(SESSION_SQL);
    this.conn = conn;
  }

  async reset(): Promise<void> {
    const conn = this.conn;
    this.conn = null;
    if (conn) conn.destroy();
  }

  async close(): Promise<void> {
    const conn = this.conn;
    this.conn = null;
    await conn?.end().catch(() => conn.destroy());
  }

  private get db(): mysql.Connection {
    if (!this.conn) throw Object.assign(new Error('not connected'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true });
    return this.conn;
  }

  async query(sql: string, params?: unknown[]): Promise<unknown> {
    const [rows] = await this.db.query(sql, params);
    return rows;
  }

  async begin(): Promise<void> {
    await this.query('BEGIN');
  }

  async commit(): Promise<void> {
    await this.query('COMMIT');
  }

  async rollback(): Promise<void> {
    if (this.conn) await this.query('ROLLBACK');
  }

  async savepoint(name: string): Promise<void> {
    await this.query(`SAVEPOINT ${name}`);
  }

  async rollbackTo(name: string): Promise<void> {
    await this.query(`ROLLBACK TO SAVEPOINT ${name}`);
  }

  async release(name: string): Promise<void> {
    await this.query(`RELEASE SAVEPOINT ${name}`);
  }

  async ensureMetaTables(): Promise<void> {
    const charset = `DEFAULT CHARSET utf8mb4 COLLATE ${BINARY_COLLATION[this.flavour]}`;
    await this.query(
      `CREATE TABLE IF NOT EXISTS tidemark_offsets (connector VARCHAR(255) PRIMARY KEY, commit_number BIGINT NOT NULL, seq BIGINT NOT NULL,
         source_file VARCHAR(255), source_pos BIGINT, source_gtid LONGTEXT, committed_at DATETIME(6) NOT NULL) ENGINE=InnoDB ${charset}`,
    );
    await this.query(
      `CREATE TABLE IF NOT EXISTS tidemark_tables (connector VARCHAR(255) NOT NULL, source_table VARCHAR(200) NOT NULL, target_table VARCHAR(64) NOT NULL,
         source_schema LONGTEXT NOT NULL, PRIMARY KEY (connector, source_table)) ENGINE=InnoDB ${charset}`,
    );
    await this.query(
      `CREATE TABLE IF NOT EXISTS tidemark_dead_letters (id BIGINT AUTO_INCREMENT PRIMARY KEY, connector VARCHAR(255) NOT NULL, db VARCHAR(64) NOT NULL,
         \`table\` VARCHAR(64) NOT NULL, \`key\` LONGTEXT, position LONGTEXT NOT NULL, reason VARCHAR(20) NOT NULL, error LONGTEXT NOT NULL, \`row\` LONGTEXT,
         ts DATETIME(6) NOT NULL) ENGINE=InnoDB ${charset}`,
    );
  }

  async readOffsets(connector: string): Promise<OffsetsRow | undefined> {
    const rows = (await this.query('SELECT commit_number, seq, source_file, source_pos, source_gtid, committed_at FROM tidemark_offsets WHERE connector = ?', [
      connector,
    ])) as Record<string, unknown>[];
    const r = rows[0];
    if (!r) return undefined;
    return {
      commit: Number(r.commit_number),
      seq: Number(r.seq),
      file: (r.source_file as string | null) ?? null,
      pos: r.source_pos === null ? null : Number(r.source_pos),
      gtid: (r.source_gtid as string | null) ?? null,
      committedAt: `${String(r.committed_at).replace(' ', 'T')}Z`,
    };
  }

  async writeOffsets(connector: string, o: OffsetsRow): Promise<void> {
    await this.query(
      `INSERT INTO tidemark_offsets (connector, commit_number, seq, source_file, source_pos, source_gtid, committed_at) VALUES (?, ?, ?, ?, ?, ?, ?)
       ${this.onDuplicate(['commit_number', 'seq', 'source_file', 'source_pos', 'source_gtid', 'committed_at'])}`,
      [connector, o.commit, o.seq, o.file, o.pos, o.gtid, o.committedAt.replace('T', ' ').replace('Z', '')],
    );
  }

  async readAligned(connector: string, sourceTable: string): Promise<TableSchema | undefined> {
    const rows = (await this.query('SELECT source_schema FROM tidemark_tables WHERE connector = ? AND source_table = ?', [connector, sourceTable])) as {
      source_schema: string;
    }[];
    return rows[0] ? (JSON.parse(rows[0].source_schema) as TableSchema) : undefined;
  }

  async writeAligned(connector: string, sourceTable: string, targetTable: string, schema: TableSchema | null): Promise<void> {
    if (schema === null) {
      await this.query('DELETE FROM tidemark_tables WHERE connector = ? AND source_table = ?', [connector, sourceTable]);
      return;
    }
    await this.query(
      `INSERT INTO tidemark_tables (connector, source_table, target_table, source_schema) VALUES (?, ?, ?, ?)
       ${this.onDuplicate(['target_table', 'source_schema'])}`,
      [connector, sourceTable, targetTable, JSON.stringify(schema)],
    );
  }

  async describe(table: string): Promise<TargetTable | undefined> {
    const cols = (await this.query(
      `SELECT COLUMN_NAME AS name, IS_NULLABLE AS nullable, COLUMN_DEFAULT AS def, EXTRA AS extra FROM INFORMATION_SCHEMA.COLUMNS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
      [table],
    )) as { name: string; nullable: string; def: string | null; extra: string }[];
    if (cols.length === 0) return undefined;
    const keys = (await this.query(
      `SELECT INDEX_NAME AS idx, COLUMN_NAME AS name FROM INFORMATION_SCHEMA.STATISTICS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
      [table],
    )) as { idx: string; name: string | null }[];
    const unique = new Map<string, (string | null)[]>();
    for (const k of keys) unique.set(k.idx, [...(unique.get(k.idx) ?? []), k.name]);
    return {
      columns: new Map(
        cols.map((c) => [c.name, { name: c.name, nullable: c.nullable === 'YES', hasDefault: c.def !== null || /auto_increment|generated/i.test(c.extra) }]),
      ),
      uniqueKeys: [...unique.values()].filter((k): k is string[] => k.every((n) => n !== null)),
    };
  }

  columnType(column: ColumnInfo): string {
    return mysqlType(column, this.flavour);
  }

  async createTable(table: string, schema: TableSchema, key: string[]): Promise<void> {
    // Only the key is NOT NULL: zero dates arrive as null, and rows emitted before an ADD COLUMN lack the column.
    const columns = schema.columns.map((c) => `${quoteName(c.name)} ${mysqlType(c, this.flavour)} ${key.includes(c.name) ? 'NOT NULL' : 'NULL'}`);
    await this.query(
      `CREATE TABLE ${quoteName(table)} (${columns.join(', ')}, PRIMARY KEY (${key.map(quoteName).join(', ')})) ENGINE=InnoDB DEFAULT CHARSET utf8mb4 COLLATE ${BINARY_COLLATION[this.flavour]}`,
    );
  }

  async addColumn(table: string, column: ColumnInfo): Promise<void> {
    // DDL commits by itself here, so the column may be there already from a commit that did not finish.
    if ((await this.describe(table))?.columns.has(column.name)) return;
    await this.query(`ALTER TABLE ${quoteName(table)} ADD COLUMN ${quoteName(column.name)} ${mysqlType(column, this.flavour)} NULL`);
  }

  async truncate(table: string): Promise<void> {
    // TRUNCATE is DDL here, which would commit the transaction.
    await this.query(`DELETE FROM ${quoteName(table)}`);
  }

  async deleteRows(table: string, key: ColumnInfo[], keys: Row[]): Promise<void> {
    const literals = key.map(mysqlLiteral);
    const names = key.length === 1 ? quoteName(key[0]!.name) : `(${key.map((c) => quoteName(c.name)).join(', ')})`;
    const tuple = (k: Row) => {
      const values = key.map((c, i) => literals[i]!(k[c.name]));
      return key.length === 1 ? values[0]! : `(${values.join(', ')})`;
    };
    await this.batched(keys, `DELETE FROM ${quoteName(table)} WHERE ${names} IN (`, ')', tuple);
  }

  async upsertRows(table: string, columns: ColumnInfo[], key: string[], rows: string[]): Promise<void> {
    const s = this.statementsFor(table, columns, key);
    const tuple = (json: string) => {
      const r = JSON.parse(json) as Row;
      let out = '(';
      for (let i = 0; i < columns.length; i++) {
        const v = r[columns[i]!.name];
        out += `${i === 0 ? '' : ', '}${v === null || v === undefined ? 'NULL' : s.literals[i]!(v)}`;
      }
      return `${out})`;
    };
    await this.batched(rows, s.head, s.tail, tuple);
  }

  private statementsFor(table: string, columns: ColumnInfo[], key: string[]): Statements {
    const id = `${table}\0${columns.map((c) => `${c.name}\0${c.columnType}\0${c.isJson}`).join('\0')}`;
    let s = this.statements.get(id);
    if (!s) {
      const values = columns.filter((c) => !key.includes(c.name));
      s = {
        head: `INSERT INTO ${quoteName(table)} (${columns.map((c) => quoteName(c.name)).join(', ')}) VALUES `,
        tail: ` ${this.onDuplicate((values.length > 0 ? values : columns.slice(0, 1)).map((c) => c.name))}`,
        literals: columns.map(mysqlLiteral),
      };
      this.statements.set(id, s);
    }
    return s;
  }

  /**
   * The end of an upsert that sets `columns` to the new row's values: MySQL 8.0.19+ names the new row with an alias
   * (VALUES() is deprecated there); MariaDB has only VALUE().
   */
  private onDuplicate(columns: string[]): string {
    const mysqlFlavour = this.flavour === 'mysql';
    const set = columns.map((c) => `${quoteName(c)} = ${mysqlFlavour ? `tidemark_new.${quoteName(c)}` : `VALUE(${quoteName(c)})`}`);
    return `${mysqlFlavour ? 'AS tidemark_new ' : ''}ON DUPLICATE KEY UPDATE ${set.join(', ')}`;
  }

  /** Statements of `head`, the items separated by commas, and `tail`, cut at about STATEMENT_CHARS. */
  private async batched<T>(items: T[], head: string, tail: string, item: (x: T) => string): Promise<void> {
    let body = '';
    for (const x of items) {
      body += `${body === '' ? '' : ', '}${item(x)}`;
      if (body.length >= STATEMENT_CHARS) {
        await this.query(`${head}${body}${tail}`);
        body = '';
      }
    }
    if (body !== '') await this.query(`${head}${body}${tail}`);
  }

  async writeDeadLetters(letters: DeadLetterValue[]): Promise<void> {
    for (const l of letters) {
      await this.query(
        'INSERT INTO tidemark_dead_letters (connector, db, `table`, `key`, position, reason, error, `row`, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
          l.connector,
          l.db,
          l.table,
          l.key,
          JSON.stringify(l.position),
          l.reason,
          l.error,
          l.row,
          new Date(l.tsMs).toISOString().replace('T', ' ').replace('Z', ''),
        ],
      );
    }
  }

  isTransient(err: unknown): boolean {
    return isConnectionLoss(err) || TRANSIENT_CODES.has((err as { code?: string } | null)?.code ?? '');
  }

  /** `VERSION()`, e.g. `9.7.0` or `10.11.14-MariaDB-0+deb12u2`. */
  async serverVersion(): Promise<string> {
    const rows = (await this.query('SELECT VERSION() AS v')) as { v: string }[];
    return rows[0]!.v;
  }
}
