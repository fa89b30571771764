import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { DeadLetterValue } from '../events/dead-letter.js';
import type { ColumnInfo, TableSchema } from '../source/schema.js';
import { rowHeads } from './json-rows.js';
import { copyField, copyLine, type PostgresText, postgresText, postgresType, quoteIdent } from './postgres-values.js';
import { type Endpoint, type OffsetsRow, type Row, type SqlSinkConfig, type SqlTarget, sqlEndpoint, type TargetTable } from './sql-target.js';

export type PostgresSinkConfig = Extract<SqlSinkConfig, { type: 'postgres' }>;

// Fewer rows than this go through the upsert statement even when they are all snapshot reads.
const COPY_MIN_ROWS = 256;
// Rows per upsert or delete statement: each column is one array parameter, so this bounds their size.
const STATEMENT_ROWS = 5000;
const COPY_CHUNK_CHARS = 1 << 16;

// Retrying can help: serialization failure, deadlock, lock timeout, shutdown or restart, too many connections.
const TRANSIENT_STATES = new Set(['40001', '40P01', '55P03', '57P01', '57P02', '57P03', '53300', '53400']);
const CONNECTION_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** The statements of one column list, built once. */
interface Statements {
  types: string[];
  texts: PostgresText[];
  heads: string[];
  copy: string;
  upsert: string;
}

/** PostgreSQL as a sink target (node-postgres; COPY through pg-copy-streams). */
export class PostgresTarget implements SqlTarget {
  readonly kind = 'postgres';
  readonly transactionalDdl = true;
  readonly where: string;
  private client: pg.Client | null = null;
  private readonly endpoint: Endpoint;
  readonly schema: string;
  /** Tables a plain COPY ran into a duplicate key of: their snapshot rows are upserted from then on. */
  private readonly occupied = new Set<string>();
  private readonly statements = new Map<string, Statements>();

  constructor(private readonly config: PostgresSinkConfig) {
    this.endpoint = sqlEndpoint(config);
    this.schema = config.schema;
    this.where = `postgres ${this.endpoint.host}:${this.endpoint.port}/${this.endpoint.database}, schema ${this.schema}`;
  }

  /** `"schema"."name"` */
  qualified(name: string): string {
    return `${quoteIdent(this.schema)}.${quoteIdent(name)}`;
  }

  async connect(): Promise<void> {
    if (this.client) return;
    const { host, port, user, password, database } = this.endpoint;
    const client = new pg.Client({
      host,
      port,
      user,
      password,
      database,
      ssl: this.config.ssl as pg.ClientConfig['ssl'],
      connectionTimeoutMillis: 10_000,
      application_name: 'tidemark',
    });
    // An idle connection that dies emits 'error'; the next statement finds it gone and reconnects.
    client.on('error', () => {
      if (this.client === client) this.client = null;
    });
    await client.connect();
    await client.query("SET TIME ZONE 'UTC'");
    this.client = client;
  }

  async reset(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => {});
  }

  close(): Promise<void> {
    return this.reset();
  }

  private get db(): pg.Client {
    if (!this.client) throw Object.assign(new Error('Connection terminated: not connected'), { code: 'ECONNRESET' });
    return this.client;
  }

  async query(sql: string, params?: unknown[]): Promise<pg.QueryResult> {
    return this.db.query(sql, params);
  }

  async begin(): Promise<void> {
    await this.query('BEGIN');
  }

  async commit(): Promise<void> {
    await this.query('COMMIT');
  }

  async rollback(): Promise<void> {
    if (this.client) await this.query('ROLLBACK');
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
    const exists = await this.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [this.schema]);
    if (exists.rowCount === 0) await this.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(this.schema)}`);
    await this.query(
      `CREATE TABLE IF NOT EXISTS ${this.qualified('tidemark_offsets')} (connector text PRIMARY KEY, commit_number bigint NOT NULL, seq bigint NOT NULL,
         source_file text, source_pos bigint, source_gtid text, committed_at timestamptz NOT NULL)`,
    );
    await this.query(
      `CREATE TABLE IF NOT EXISTS ${this.qualified('tidemark_tables')} (connector text NOT NULL, source_table text NOT NULL, target_table text NOT NULL,
         source_schema jsonb NOT NULL, PRIMARY KEY (connector, source_table))`,
    );
    // Key and row are JSON text, not jsonb: a row the target refused may hold what jsonb refuses too (U+0000).
    await this.query(
      `CREATE TABLE IF NOT EXISTS ${this.qualified('tidemark_dead_letters')} (id bigserial PRIMARY KEY, connector text NOT NULL, db text NOT NULL,
         "table" text NOT NULL, "key" text, position jsonb NOT NULL, reason text NOT NULL, error text NOT NULL, "row" text, ts timestamptz NOT NULL)`,
    );
  }

  async readOffsets(connector: string): Promise<OffsetsRow | undefined> {
    const { rows } = await this.query(
      `SELECT commit_number, seq, source_file, source_pos, source_gtid, committed_at FROM ${this.qualified('tidemark_offsets')} WHERE connector = $1`,
      [connector],
    );
    const r = rows[0] as Record<string, unknown> | undefined;
    if (!r) return undefined;
    return {
      commit: Number(r.commit_number),
      seq: Number(r.seq),
      file: (r.source_file as string | null) ?? null,
      pos: r.source_pos === null ? null : Number(r.source_pos),
      gtid: (r.source_gtid as string | null) ?? null,
      committedAt: (r.committed_at as Date).toISOString(),
    };
  }

  async writeOffsets(connector: string, o: OffsetsRow): Promise<void> {
    await this.query(
      `INSERT INTO ${this.qualified('tidemark_offsets')} (connector, commit_number, seq, source_file, source_pos, source_gtid, committed_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (connector) DO UPDATE SET commit_number = EXCLUDED.commit_number, seq = EXCLUDED.seq,
       source_file = EXCLUDED.source_file, source_pos = EXCLUDED.source_pos, source_gtid = EXCLUDED.source_gtid, committed_at = EXCLUDED.committed_at`,
      [connector, o.commit, o.seq, o.file, o.pos, o.gtid, o.committedAt],
    );
  }

  async readAligned(connector: string, sourceTable: string): Promise<TableSchema | undefined> {
    const { rows } = await this.query(`SELECT source_schema FROM ${this.qualified('tidemark_tables')} WHERE connector = $1 AND source_table = $2`, [
      connector,
      sourceTable,
    ]);
    return (rows[0] as { source_schema: TableSchema } | undefined)?.source_schema;
  }

  async writeAligned(connector: string, sourceTable: string, targetTable: string, schema: TableSchema | null): Promise<void> {
    if (schema === null) {
      await this.query(`DELETE FROM ${this.qualified('tidemark_tables')} WHERE connector = $1 AND source_table = $2`, [connector, sourceTable]);
      return;
    }
    await this.query(
      `INSERT INTO ${this.qualified('tidemark_tables')} (connector, source_table, target_table, source_schema) VALUES ($1, $2, $3, $4)
       ON CONFLICT (connector, source_table) DO UPDATE SET target_table = EXCLUDED.target_table, source_schema = EXCLUDED.source_schema`,
      [connector, sourceTable, targetTable, JSON.stringify(schema)],
    );
  }

  async describe(table: string): Promise<TargetTable | undefined> {
    const found = await this.query('SELECT to_regclass($1)::oid AS oid', [this.qualified(table)]);
    const oid = (found.rows[0] as { oid: number | null }).oid;
    if (oid === null) return undefined;
    const cols = await this.query(
      'SELECT attname, attnotnull, atthasdef OR attidentity <> $2 OR attgenerated <> $2 AS defaulted FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped',
      [oid, ''],
    );
    const keys = await this.query(
      `SELECT array_agg(a.attname::text ORDER BY k.ord) AS columns FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL GROUP BY i.indexrelid`,
      [oid],
    );
    return {
      columns: new Map(
        (cols.rows as { attname: string; attnotnull: boolean; defaulted: boolean }[]).map((c) => [
          c.attname,
          { name: c.attname, nullable: !c.attnotnull, hasDefault: c.defaulted },
        ]),
      ),
      uniqueKeys: (keys.rows as { columns: string[] }[]).map((k) => k.columns),
    };
  }

  columnType(column: ColumnInfo): string {
    return postgresType(column);
  }

  async createTable(table: string, schema: TableSchema, key: string[]): Promise<void> {
    // Only the key is NOT NULL: zero dates arrive as null, and rows emitted before an ADD COLUMN lack the column.
    const columns = schema.columns.map((c) => `${quoteIdent(c.name)} ${postgresType(c)}${key.includes(c.name) ? ' NOT NULL' : ''}`);
    await this.query(`CREATE TABLE ${this.qualified(table)} (${columns.join(', ')}, PRIMARY KEY (${key.map(quoteIdent).join(', ')}))`);
  }

  async addColumn(table: string, column: ColumnInfo): Promise<void> {
    await this.query(`ALTER TABLE ${this.qualified(table)} ADD COLUMN IF NOT EXISTS ${quoteIdent(column.name)} ${postgresType(column)}`);
  }

  async truncate(table: string): Promise<void> {
    await this.query(`TRUNCATE TABLE ${this.qualified(table)}`);
  }

  async deleteRows(table: string, key: ColumnInfo[], keys: Row[]): Promise<void> {
    const texts = key.map(postgresText);
    const where = key.map((c, i) => `x.${quoteIdent(c.name)} = d.c${i}::${postgresType(c)}`).join(' AND ');
    const sql = `DELETE FROM ${this.qualified(table)} AS x USING unnest(${key.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS d(${key.map((_, i) => `c${i}`).join(', ')}) WHERE ${where}`;
    for (let at = 0; at < keys.length; at += STATEMENT_ROWS) {
      const slice = keys.slice(at, at + STATEMENT_ROWS);
      await this.query(
        sql,
        key.map((c, i) => slice.map((k) => text(k[c.name], texts[i]!))),
      );
    }
  }

  async upsertRows(table: string, columns: ColumnInfo[], key: string[], rows: string[], fresh: boolean): Promise<void> {
    const s = this.statementsFor(table, columns, key);
    if (fresh && rows.length >= COPY_MIN_ROWS && !this.occupied.has(table)) {
      // Snapshot rows are usually new to the table: COPY them, and upsert only when some were there already.
      await this.savepoint('tidemark_copy');
      try {
        await this.copy(s, columns, rows);
        await this.release('tidemark_copy');
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== '23505') throw err;
        await this.rollbackTo('tidemark_copy');
        this.occupied.add(table);
      }
    }
    for (let at = 0; at < rows.length; at += STATEMENT_ROWS) {
      const slice = rows.slice(at, at + STATEMENT_ROWS).map((json) => JSON.parse(json) as Row);
      await this.query(
        s.upsert,
        columns.map((c, i) => slice.map((r) => text(r[c.name], s.texts[i]!))),
      );
    }
  }

  private statementsFor(table: string, columns: ColumnInfo[], key: string[]): Statements {
    const id = `${table}\0${columns.map((c) => `${c.name}\0${c.columnType}\0${c.isJson}`).join('\0')}`;
    let s = this.statements.get(id);
    if (!s) {
      const names = columns.map((c) => quoteIdent(c.name)).join(', ');
      const types = columns.map(postgresType);
      const updates = columns.filter((c) => !key.includes(c.name)).map((c) => `${quoteIdent(c.name)} = EXCLUDED.${quoteIdent(c.name)}`);
      const conflict = `ON CONFLICT (${key.map(quoteIdent).join(', ')}) ${updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING'}`;
      s = {
        types,
        texts: columns.map(postgresText),
        heads: rowHeads(columns.map((c) => c.name)),
        copy: `COPY ${this.qualified(table)} (${names}) FROM STDIN`,
        upsert:
          `INSERT INTO ${this.qualified(table)} (${names}) SELECT ${types.map((t, i) => `d.c${i}::${t}`).join(', ')} ` +
          `FROM unnest(${types.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS d(${types.map((_, i) => `c${i}`).join(', ')}) ${conflict}`,
      };
      this.statements.set(id, s);
    }
    return s;
  }

  private async copy(s: Statements, columns: ColumnInfo[], rows: string[]): Promise<void> {
    const names = columns.map((c) => c.name);
    const { texts, heads } = s;
    function* lines(): Generator<string> {
      let chunk = '';
      for (const json of rows) {
        let line = copyLine(json, heads, texts);
        if (line === undefined) {
          const row = JSON.parse(json) as Row;
          line = '';
          for (let i = 0; i < names.length; i++) {
            const v = row[names[i]!];
            line += `${i === 0 ? '' : '\t'}${v === null || v === undefined ? '\\N' : copyField(texts[i]!(v))}`;
          }
        }
        chunk += `${line}\n`;
        if (chunk.length >= COPY_CHUNK_CHARS) {
          yield chunk;
          chunk = '';
        }
      }
      if (chunk.length > 0) yield chunk;
    }
    await pipeline(Readable.from(lines()), this.db.query(copyFrom(s.copy)));
  }

  async writeDeadLetters(letters: DeadLetterValue[]): Promise<void> {
    for (const l of letters) {
      await this.query(
        `INSERT INTO ${this.qualified('tidemark_dead_letters')} (connector, db, "table", "key", position, reason, error, "row", ts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [l.connector, l.db, l.table, l.key, JSON.stringify(l.position), l.reason, l.error, l.row, new Date(l.tsMs).toISOString()],
      );
    }
  }

  isTransient(err: unknown): boolean {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code.startsWith('08') || TRANSIENT_STATES.has(code);
    if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
    return err instanceof Error && /Connection terminated|not queryable|timeout expired/i.test(err.message);
  }

  /** The server's version number (`server_version_num`), e.g. 150020. */
  async serverVersion(): Promise<number> {
    const { rows } = await this.query('SHOW server_version_num');
    return Number((rows[0] as { server_version_num: string }).server_version_num);
  }
}

const text = (v: unknown, convert: PostgresText): string | null => (v === null || v === undefined ? null : convert(v));
