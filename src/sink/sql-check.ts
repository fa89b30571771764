import { randomBytes } from 'node:crypto';
import { type CheckResult, fail, pass } from '../source/checks/types.js';
import { MysqlTarget } from './mysql.js';
import { PostgresTarget } from './postgres.js';
import { quoteIdent } from './postgres-values.js';
import type { OffsetsRow, SqlSinkConfig } from './sql-target.js';

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

// The oldest servers whose SQL the sinks use: attgenerated (PostgreSQL 12); `INSERT … AS alias ON DUPLICATE KEY`
// (MySQL 8.0.19); MariaDB as the design supports it.
const POSTGRES_MIN = 120_000;
const MYSQL_MIN = [8, 0, 19];
const MARIADB_MIN = [10, 6, 0];

function atLeast(version: string, min: number[]): boolean {
  const parts = (/^(\d+)\.(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  for (let i = 0; i < min.length; i++) if ((parts[i] ?? 0) !== min[i]) return (parts[i] ?? 0) > min[i]!;
  return true;
}

/**
 * `tidemark check` for a database sink: the target is reachable, new enough, and the account can create a table and
 * write, update and delete rows in it (tried on a table made for the purpose and dropped again; on PostgreSQL inside a
 * transaction that is rolled back), and what the target holds for this connector.
 */
export async function checkSqlTarget(config: SqlSinkConfig, connector: string): Promise<CheckResult[]> {
  const target = config.type === 'postgres' ? new PostgresTarget(config) : new MysqlTarget(config);
  const fix = `Correct sink.url (or sink.host, sink.port, sink.user, sink.password, sink.database) and make sure the server accepts connections from this machine.`;
  try {
    await target.connect();
  } catch (err) {
    return [fail('target connection', `${target.where}: ${messageOf(err)}`, fix)];
  }
  try {
    const results: CheckResult[] = [];
    let version: string;
    let supported: boolean;
    if (target instanceof PostgresTarget) {
      const number = await target.serverVersion();
      const [row] = (await target.query('SHOW server_version')).rows as { server_version: string }[];
      version = `PostgreSQL ${row!.server_version}`;
      supported = number >= POSTGRES_MIN;
    } else {
      version = await target.serverVersion();
      supported = target.flavour === 'mariadb' ? atLeast(version, MARIADB_MIN) : atLeast(version, MYSQL_MIN);
      version = `${target.flavour === 'mariadb' ? 'MariaDB' : 'MySQL'} ${version}`;
    }
    results.push(
      supported
        ? pass('target connection', `${target.where}: ${version}`)
        : fail('target connection', `${target.where}: ${version}`, 'Use PostgreSQL 12 or later, MySQL 8.0.19 or later, or MariaDB 10.6 or later.'),
    );
    results.push(await tryWriting(target));
    results.push(await committed(target, connector));
    return results;
  } finally {
    await target.close();
  }
}

/** Creates a table, writes, updates and deletes a row in it, and drops it: what a sync does to its tables. */
async function tryWriting(target: PostgresTarget | MysqlTarget): Promise<CheckResult> {
  const table = `tidemark_check_${randomBytes(4).toString('hex')}`;
  const grant =
    target instanceof PostgresTarget
      ? `GRANT CREATE ON SCHEMA (or CREATE ON DATABASE, for a schema that does not exist yet) to the account, which then owns the tables it creates.`
      : 'GRANT CREATE, ALTER, SELECT, INSERT, UPDATE, DELETE, DROP ON the database TO the account.';
  try {
    if (target instanceof PostgresTarget) {
      const schema = quoteIdent(target.schema);
      const qualified = target.qualified(table);
      await target.query('BEGIN');
      try {
        await target.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
        await target.query(`CREATE TABLE ${qualified} (id int PRIMARY KEY, v text)`);
        await target.query(`INSERT INTO ${qualified} VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v`);
        await target.query(`UPDATE ${qualified} SET v = 'b'`);
        await target.query(`DELETE FROM ${qualified}`);
        await target.query(`TRUNCATE ${qualified}`);
      } finally {
        await target.query('ROLLBACK');
      }
    } else {
      const name = `\`${table}\``;
      await target.query(`CREATE TABLE ${name} (id int PRIMARY KEY, v text) ENGINE=InnoDB`);
      try {
        await target.query(`INSERT INTO ${name} VALUES (1, 'a') ON DUPLICATE KEY UPDATE v = VALUES(v)`);
        await target.query(`UPDATE ${name} SET v = 'b'`);
        await target.query(`DELETE FROM ${name}`);
      } finally {
        await target.query(`DROP TABLE ${name}`);
      }
    }
    return pass('target privileges', `can create tables and insert, update and delete rows (tried on ${table}, dropped again)`);
  } catch (err) {
    return fail('target privileges', `trying on ${table}: ${messageOf(err)}`, grant);
  }
}

/** What `tidemark_offsets` holds for the connector: where a sync would resume in the target's view. */
async function committed(target: PostgresTarget | MysqlTarget, connector: string): Promise<CheckResult> {
  let row: OffsetsRow | undefined;
  try {
    row = await target.readOffsets(connector);
  } catch {
    return pass('target offsets', `no tidemark_offsets table yet: a first sync creates it`);
  }
  return pass('target offsets', row ? `connector ${connector}: ${describeOffsets(row)}` : `nothing committed for connector ${connector} yet`);
}

export function describeOffsets(row: OffsetsRow): string {
  const at = row.file === null ? '' : `, its last change from ${row.file}:${row.pos}${row.gtid ? ` (${row.gtid})` : ''}`;
  return `commit ${row.commit} at ${row.committedAt}${at}`;
}

/** The target's row in tidemark_offsets for `tidemark status`; an unreachable target is reported, not thrown. */
export async function targetOffsets(config: SqlSinkConfig, connector: string): Promise<{ where: string; offsets: OffsetsRow | null; error: string | null }> {
  const target = config.type === 'postgres' ? new PostgresTarget(config) : new MysqlTarget(config);
  try {
    await target.connect();
    return { where: target.where, offsets: (await target.readOffsets(connector)) ?? null, error: null };
  } catch (err) {
    const missing = /tidemark_offsets/.test(messageOf(err)) && /does not exist|doesn't exist/.test(messageOf(err));
    return { where: target.where, offsets: null, error: missing ? null : messageOf(err) };
  } finally {
    await target.close();
  }
}
