import type { Connection } from 'mysql2/promise';
import { type Config, matchTables, serverIdRange } from '../config/load.js';
import { chunkKeyProblem, loadTableSchemas, type TableSchema, uniqueIndexes } from './schema.js';
import { binlogFiles, connect, currentPosition, listTables, processList, quoteId } from './server.js';

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';

/** One line of `tidemark check`: `fix` is an SQL statement or config line, given for every FAIL and WARN. */
export interface CheckResult {
  check: string;
  status: CheckStatus;
  found: string;
  fix: string | null;
}

type Flavour = 'mysql' | 'mariadb';

/** The snapshot rate the retention check assumes; a guess, and the output says so. */
const ASSUMED_SNAPSHOT_ROWS_PER_SECOND = 100_000;

const VARIABLES = [
  'version',
  'log_bin',
  'binlog_format',
  'binlog_row_image',
  'binlog_row_metadata',
  'gtid_mode',
  'server_id',
  'binlog_expire_logs_seconds',
  'binlog_expire_logs_auto_purge',
  'expire_logs_days',
  'binlog_transaction_compression',
  'binlog_row_value_options',
  'partial_revokes',
] as const;

type Variables = Record<(typeof VARIABLES)[number], string | null>;

interface Table {
  db: string;
  table: string;
}

interface Source {
  conn: Connection;
  config: Config;
  flavour: Flavour;
  vars: Variables;
  account: { user: string; host: string };
  grants: Grants;
  /** The tables source.tables selects. */
  tables: Table[];
  /** Every table the account can see. */
  available: Table[];
}

const pass = (check: string, found: string): CheckResult => ({ check, status: 'PASS', found, fix: null });
const warn = (check: string, found: string, fix: string): CheckResult => ({ check, status: 'WARN', found, fix });
const fail = (check: string, found: string, fix: string): CheckResult => ({ check, status: 'FAIL', found, fix });

const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const nameOf = (t: Table): string => `${t.db}.${t.table}`;

/**
 * Connects to the configured source and runs every check, one result per line, never stopping at the first
 * problem: the point is to list everything that needs fixing at once. A source that cannot be reached is
 * itself a failed check.
 */
export async function runChecks(config: Config): Promise<CheckResult[]> {
  let conn: Connection;
  try {
    conn = await connect(config.source);
  } catch (err) {
    return [
      fail(
        'connection',
        errorMessage(err),
        'Correct source.url (or source.host, source.port, source.user, source.password) and make sure the server runs and accepts connections from this machine.',
      ),
    ];
  }
  try {
    let source: Source;
    try {
      source = await readSource(conn, config);
    } catch (err) {
      // Reading variables, grants and the table list needs no privilege, so this is a server-side problem.
      return [
        fail(
          'connection',
          `connected, but could not read the server's settings: ${errorMessage(err)}`,
          'Resolve the error above and run tidemark check again.',
        ),
      ];
    }
    const { user, host } = source.account;
    const results = [pass('connection', `logged in as ${user}@${host} at ${config.source.host}:${config.source.port}`), ...settingChecks(source)];
    for (const [check, run] of [
      ['source.tables', checkTablesMatch],
      ['table keys', checkKeys],
      ['privilege SELECT', checkSelect],
      ['privilege REPLICATION SLAVE', checkReplicationSlave],
      [`privilege ${replicationClientName(source.flavour)}`, checkReplicationClient],
      ['server id', checkServerIds],
      ['binlog retention', checkRetention],
    ] as const) {
      try {
        results.push(...(await run(source)));
      } catch (err) {
        results.push(fail(check, `could not be checked: ${errorMessage(err)}`, 'Resolve the error (often a missing privilege) and run tidemark check again.'));
      }
    }
    return results;
  } finally {
    await conn.end().catch(() => {});
  }
}

async function readSource(conn: Connection, config: Config): Promise<Source> {
  const [varRows] = await conn.query('SHOW GLOBAL VARIABLES WHERE Variable_name IN (?)', [VARIABLES]);
  const vars = Object.fromEntries(VARIABLES.map((n) => [n, null])) as Variables;
  for (const r of varRows as { Variable_name: (typeof VARIABLES)[number]; Value: string }[]) vars[r.Variable_name] = r.Value;
  const flavour: Flavour = /mariadb/i.test(vars.version ?? '') ? 'mariadb' : 'mysql';

  const [userRows] = await conn.query({ sql: 'SELECT CURRENT_USER()', rowsAsArray: true });
  const current = String((userRows as unknown[][])[0]![0]);
  const at = current.lastIndexOf('@');

  // For the current account both servers list the privileges of its active roles too, so no role expansion is needed.
  const [grantRows] = await conn.query({ sql: 'SHOW GRANTS', rowsAsArray: true });
  // With partial_revokes on, MySQL takes database names in grants literally instead of as LIKE patterns.
  const literalDbNames = flavour === 'mysql' && vars.partial_revokes === 'ON';
  const grants = parseGrants(
    (grantRows as unknown[][]).map((r) => String(r[0])),
    literalDbNames,
  );

  const available = await listTables(conn);
  return {
    conn,
    config,
    flavour,
    vars,
    account: { user: current.slice(0, at), host: current.slice(at + 1) },
    grants,
    tables: matchTables(config.source.tables, available),
    available,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Server settings

/**
 * The fix for a setting: MySQL's SET PERSIST survives a restart; MariaDB has no PERSIST, so the config file
 * has to be changed as well.
 */
function setVariable(flavour: Flavour, name: string, value: string, perSession = false): string {
  const sql = /^(\d+|ON|OFF)$/.test(value) ? value : `'${value}'`;
  const statement =
    flavour === 'mysql' ? `SET PERSIST ${name} = ${sql};` : `SET GLOBAL ${name} = ${sql}; and put ${name}=${value} under [mysqld] in the server config.`;
  // These are session variables: a client's session copy is taken when it connects.
  return perSession ? `${statement} Connections already open keep the old value until they reconnect.` : statement;
}

function settingChecks(s: Source): CheckResult[] {
  const { flavour, vars: v } = s;
  const out = [checkVersion(flavour, v.version ?? '')];

  out.push(
    v.log_bin === 'ON'
      ? pass('log_bin', 'ON')
      : fail(
          'log_bin',
          `${v.log_bin ?? 'not set'}: the server writes no binary log, so there are no changes to follow`,
          `Add log_bin=binlog and a unique server_id under [mysqld] in the server config and restart the server (log_bin cannot be turned on at runtime).`,
        ),
  );

  out.push(
    v.binlog_format === 'ROW'
      ? pass('binlog_format', 'ROW')
      : fail(
          'binlog_format',
          `${v.binlog_format ?? 'not set'}: changes are logged (at least partly) as statements, and tidemark reads row changes`,
          setVariable(flavour, 'binlog_format', 'ROW', true),
        ),
  );

  out.push(
    v.binlog_row_image === 'FULL'
      ? pass('binlog_row_image', 'FULL')
      : fail(
          'binlog_row_image',
          `${v.binlog_row_image ?? 'not set'}: updates and deletes log only some columns, and tidemark needs whole before and after rows`,
          setVariable(flavour, 'binlog_row_image', 'FULL', true),
        ),
  );

  out.push(
    v.binlog_row_metadata === 'FULL'
      ? pass('binlog_row_metadata', 'FULL')
      : warn(
          'binlog_row_metadata',
          `${v.binlog_row_metadata ?? 'not supported by this server'}: row events carry no column names, so rows are decoded with the table's ` +
            'current column list; a stream behind an ALTER TABLE may then put values under the wrong columns',
          setVariable(flavour, 'binlog_row_metadata', 'FULL'),
        ),
  );

  if (flavour === 'mariadb') {
    out.push(pass('gtid_mode', 'MariaDB: GTIDs are always on; the stream resumes by GTID position'));
  } else if (v.gtid_mode === 'ON') {
    out.push(pass('gtid_mode', 'ON: the stream resumes by GTID set, which also survives a failover to another server'));
  } else {
    out.push(
      warn(
        'gtid_mode',
        `${v.gtid_mode ?? 'not set'}: the stream resumes by binlog file/position only, which is meaningless on any other server (no failover), ` +
          'and a chunk read while a transaction is being committed can miss that transaction (the low watermark race; see README Limits)',
        'SET PERSIST enforce_gtid_consistency = ON; SET PERSIST gtid_mode = OFF_PERMISSIVE; SET PERSIST gtid_mode = ON_PERMISSIVE; ' +
          "then, once SHOW STATUS LIKE 'Ongoing_anonymous_transaction_count' shows 0, SET PERSIST gtid_mode = ON;",
      ),
    );
  }

  const compression = v.binlog_transaction_compression;
  out.push(
    compression === 'ON'
      ? fail(
          'binlog_transaction_compression',
          'ON: transactions are logged as compressed payloads, which tidemark cannot decode',
          setVariable(flavour, 'binlog_transaction_compression', 'OFF', true),
        )
      : pass('binlog_transaction_compression', compression ?? 'not available on this server (nothing to turn off)'),
  );

  const valueOptions = v.binlog_row_value_options;
  out.push(
    valueOptions !== null && /PARTIAL_JSON/i.test(valueOptions)
      ? fail(
          'binlog_row_value_options',
          `${valueOptions}: JSON updates are logged as partial diffs, which tidemark cannot decode`,
          setVariable(flavour, 'binlog_row_value_options', '', true),
        )
      : pass(
          'binlog_row_value_options',
          valueOptions === null ? 'not available on this server (nothing to turn off)' : valueOptions === '' ? "'' (full JSON values)" : valueOptions,
        ),
  );
  return out;
}

const MINIMUM: Record<Flavour, { label: string; version: [number, number] }> = {
  mysql: { label: 'MySQL', version: [8, 0] },
  mariadb: { label: 'MariaDB', version: [10, 6] },
};

function checkVersion(flavour: Flavour, version: string): CheckResult {
  const {
    label,
    version: [minMajor, minMinor],
  } = MINIMUM[flavour];
  const found = `${label} ${version}`;
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return warn('server', `${found}: version not recognised`, 'Use MySQL 8.0+ or MariaDB 10.6+, the versions tidemark supports.');
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major > minMajor || (major === minMajor && minor >= minMinor)) return pass('server', found);
  return fail('server', `${found}: too old`, `Upgrade the server to ${label} ${minMajor}.${minMinor} or newer.`);
}

// ---------------------------------------------------------------------------------------------------------
// Tables

async function checkTablesMatch(s: Source): Promise<CheckResult[]> {
  const patterns = s.config.source.tables;
  const unmatched = patterns.filter((p) => matchTables([p], s.available).length === 0);
  // The account sees only tables it has some privilege on, so a missing grant looks like a missing table.
  const grantsFor = unmatched.flatMap((p) => {
    const [db = '', table = ''] = p.split('.');
    if (db.includes('*')) return [];
    const wholeDb = table.includes('*');
    if (wholeDb ? canSelectDatabase(s.grants, db) : canSelect(s.grants, db, table)) return [];
    return [grantSelect(s, db, wholeDb ? null : table)];
  });
  const visibility = grantsFor.length > 0 ? ` If they exist, the account may not be allowed to see them: ${grantsFor.join(' ')}` : '';
  if (s.tables.length === 0) {
    return [fail('source.tables', `${patterns.join(', ')} matches no table the account can see`, `Correct the db.table names in source.tables.${visibility}`)];
  }
  const found = `${s.tables.length} table${s.tables.length === 1 ? '' : 's'}: ${abbreviate(s.tables.map(nameOf))}`;
  if (unmatched.length > 0) {
    return [
      warn(
        'source.tables',
        `${found}; but ${unmatched.join(', ')} ${unmatched.length === 1 ? 'matches' : 'match'} nothing`,
        `Correct or remove ${unmatched.join(', ')} in source.tables.${visibility}`,
      ),
    ];
  }
  return [pass('source.tables', found)];
}

function abbreviate(names: string[], max = 5): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

function byDb(tables: Table[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const t of tables) out.set(t.db, [...(out.get(t.db) ?? []), t.table]);
  return out;
}

async function checkKeys(s: Source): Promise<CheckResult[]> {
  if (s.tables.length === 0) return [];
  const { chunkKey } = s.config.snapshot;
  const problems: CheckResult[] = [];
  let viaChunkKey = 0;
  for (const [db, names] of byDb(s.tables)) {
    const schemas = await loadTableSchemas(s.conn, db, names);
    const unique = await uniqueIndexes(s.conn, db, names);
    for (const schema of schemas.values()) {
      const name = nameOf(schema);
      const configured = chunkKey[name];
      const indexes = unique.get(schema.table) ?? [];
      if (configured) {
        viaChunkKey++;
        const problem = chunkKeyProblem(schema, configured, indexes);
        if (problem) {
          problems.push(
            fail(
              `key of ${name}`,
              `snapshot.chunkKey.${name}: ${problem}`,
              `${chunkKeyFix(name, schema, indexes)}, or CREATE UNIQUE INDEX on NOT NULL columns and name them there.`,
            ),
          );
        }
      } else if (schema.primaryKey.length === 0) {
        problems.push(
          fail(
            `key of ${name}`,
            `${name} has no primary key, so tidemark can neither chunk it nor identify its rows`,
            `${chunkKeyFix(name, schema, indexes)}, or ALTER TABLE ${quoteId(schema.db)}.${quoteId(schema.table)} ADD PRIMARY KEY (...), or leave it out of source.tables.`,
          ),
        );
      }
    }
  }
  if (problems.length > 0) return problems;
  const count = s.tables.length;
  return [
    pass(
      'table keys',
      `${count === 1 ? 'the table has' : `all ${count} tables have`} a primary key${viaChunkKey > 0 ? ` or a valid snapshot.chunkKey (${viaChunkKey})` : ''}`,
    ),
  ];
}

/** A snapshot.chunkKey config line: on an existing unique index of NOT NULL columns when there is one. */
function chunkKeyFix(name: string, schema: TableSchema, unique: string[][]): string {
  const notNull = (c: string) => schema.columns.some((col) => col.name === c && !col.nullable);
  const usable = unique.filter((cols) => cols.every(notNull)).sort((a, b) => a.length - b.length)[0];
  return usable
    ? `Set snapshot.chunkKey: { ${name}: [${usable.join(', ')}] } (a unique index of NOT NULL columns it already has)`
    : `Set snapshot.chunkKey: { ${name}: [<columns of a unique index, all NOT NULL>] }`;
}

// ---------------------------------------------------------------------------------------------------------
// Privileges

/** The grants of one account, as SHOW GRANTS lists them (column-level grants are left out: SELECT * needs the whole table). */
export interface Grants {
  global: Set<string>;
  /** Database-level grants; `db` is a LIKE pattern unless `literal`. */
  databases: { db: string; literal: boolean; privileges: Set<string> }[];
  tables: { db: string; table: string; privileges: Set<string> }[];
  /** MySQL partial revokes: global privileges taken back for one database. */
  revoked: { db: string; privileges: Set<string> }[];
}

const hasPrivilege = (set: Set<string>, ...names: string[]): boolean => set.has('ALL') || names.some((n) => set.has(n));

/** Parses SHOW GRANTS lines of MySQL or MariaDB; role grants (no ON clause) and routine grants are ignored. */
export function parseGrants(lines: string[], literalDbNames: boolean): Grants {
  const grants: Grants = { global: new Set(), databases: [], tables: [], revoked: [] };
  for (const line of lines) {
    const parsed = parseGrantLine(line);
    if (!parsed) continue;
    const { revoke, privileges, db, table } = parsed;
    if (revoke) {
      if (db !== null && table === null) grants.revoked.push({ db, privileges });
    } else if (db === null) {
      for (const p of privileges) grants.global.add(p);
    } else if (table === null) {
      grants.databases.push({ db, literal: literalDbNames, privileges });
    } else {
      grants.tables.push({ db, table, privileges });
    }
  }
  return grants;
}

interface GrantLine {
  revoke: boolean;
  privileges: Set<string>;
  /** null for `*` */
  db: string | null;
  table: string | null;
}

function parseGrantLine(line: string): GrantLine | null {
  const head = /^(GRANT|REVOKE)\s+/i.exec(line);
  if (!head) return null;
  const privileges = new Set<string>();
  let i = head[0].length;
  let current = '';
  let depth = 0;
  let columnLevel = false;
  const flush = () => {
    const name = current.trim().toUpperCase().replace(/\s+/g, ' ');
    if (name && !columnLevel) privileges.add(name === 'ALL PRIVILEGES' ? 'ALL' : name);
    current = '';
    columnLevel = false;
  };
  for (; i < line.length; i++) {
    const c = line[i]!;
    if (c === '`') {
      const end = closingBacktick(line, i);
      current += line.slice(i, end + 1);
      i = end;
    } else if (c === '(') {
      depth++;
      columnLevel = true;
    } else if (c === ')') {
      depth--;
    } else if (depth === 0 && c === ',') {
      flush();
    } else if (depth === 0 && /^\sON\s/i.test(line.slice(i, i + 4))) {
      break;
    } else if (depth === 0) {
      current += c;
    }
  }
  // No ON clause: a role granted to the account, whose privileges SHOW GRANTS lists on lines of their own.
  if (i >= line.length) return null;
  flush();
  let rest = line.slice(i + 4).trimStart();
  const objectType = /^(TABLE|FUNCTION|PROCEDURE|PACKAGE BODY|PACKAGE)\s+/i.exec(rest);
  if (objectType) {
    if (objectType[1]!.toUpperCase() !== 'TABLE') return null;
    rest = rest.slice(objectType[0].length);
  }
  const first = readIdentifier(rest);
  if (!first || rest[first.length] !== '.') return null;
  const second = readIdentifier(rest.slice(first.length + 1));
  if (!second) return null;
  const db = unquote(first);
  const table = unquote(second);
  return { revoke: head[1]!.toUpperCase() === 'REVOKE', privileges, db, table: db === null ? null : table };
}

function closingBacktick(s: string, open: number): number {
  let j = open + 1;
  while (j < s.length) {
    if (s[j] === '`' && s[j + 1] === '`') j += 2;
    else if (s[j] === '`') return j;
    else j++;
  }
  return s.length - 1;
}

/** A backquoted identifier, `*`, or a bare word, as written at the start of `s`. */
function readIdentifier(s: string): string | null {
  if (s.startsWith('`')) return s.slice(0, closingBacktick(s, 0) + 1);
  return /^[^\s.]+/.exec(s)?.[0] ?? null;
}

function unquote(id: string): string | null {
  if (id === '*') return null;
  return id.startsWith('`') ? id.slice(1, -1).replace(/``/g, '`') : id;
}

/** A LIKE pattern of a database-level grant (`_` and `%` wildcards, `\` escapes) as a regular expression. */
function likePattern(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) re += escapeRegExp(pattern[++i]!);
    else if (c === '%') re += '.*';
    else if (c === '_') re += '.';
    else re += escapeRegExp(c);
  }
  return new RegExp(`^${re}$`, 's');
}

const escapeRegExp = (s: string): string => s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');

/** Whether the grants allow SELECT on every table of db, by a global or database-level grant. */
function canSelectDatabase(grants: Grants, db: string): boolean {
  const revoked = grants.revoked.some((r) => r.db === db && hasPrivilege(r.privileges, 'SELECT'));
  if (hasPrivilege(grants.global, 'SELECT') && !revoked) return true;
  return grants.databases.some((d) => (d.literal ? d.db === db : likePattern(d.db).test(db)) && hasPrivilege(d.privileges, 'SELECT'));
}

/** Whether the grants allow SELECT on db.table. */
export function canSelect(grants: Grants, db: string, table: string): boolean {
  return canSelectDatabase(grants, db) || grants.tables.some((t) => t.db === db && t.table === table && hasPrivilege(t.privileges, 'SELECT'));
}

/** MariaDB 10.5 also accepts REPLICATION REPLICA as the name of REPLICATION SLAVE ... */
export const hasReplicationSlave = (g: Grants): boolean => hasPrivilege(g.global, 'REPLICATION SLAVE', 'REPLICATION REPLICA');
/** ... and renamed REPLICATION CLIENT to BINLOG MONITOR (SUPER, which also allows its statements, is found by trying them). */
export const hasReplicationClient = (g: Grants): boolean => hasPrivilege(g.global, 'REPLICATION CLIENT', 'BINLOG MONITOR');

const replicationClientName = (flavour: Flavour): string => (flavour === 'mariadb' ? 'BINLOG MONITOR' : 'REPLICATION CLIENT');

function accountSql(s: Source): string {
  const q = (x: string) => `'${x.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return `${q(s.account.user)}@${q(s.account.host)}`;
}

function grantSelect(s: Source, db: string, table: string | null): string {
  return `GRANT SELECT ON ${quoteId(db)}.${table === null ? '*' : quoteId(table)} TO ${accountSql(s)};`;
}

async function checkSelect(s: Source): Promise<CheckResult[]> {
  if (s.tables.length === 0) return [];
  const missing = s.tables.filter((t) => !canSelect(s.grants, t.db, t.table));
  if (missing.length === 0) return [pass('privilege SELECT', `granted on all ${s.tables.length} captured table${s.tables.length === 1 ? '' : 's'}`)];
  // One statement per database when several of its tables are missing, so the fix stays short.
  const fixes = [...byDb(missing)].map(([db, tables]) => grantSelect(s, db, tables.length === 1 ? tables[0]! : null));
  return [fail('privilege SELECT', `missing on ${abbreviate(missing.map(nameOf))}: their rows cannot be snapshotted`, fixes.join(' '))];
}

async function checkReplicationSlave(s: Source): Promise<CheckResult[]> {
  if (hasReplicationSlave(s.grants)) return [pass('privilege REPLICATION SLAVE', 'granted on *.*')];
  return [fail('privilege REPLICATION SLAVE', 'not granted: the account cannot read the binlog', `GRANT REPLICATION SLAVE ON *.* TO ${accountSql(s)};`)];
}

async function checkReplicationClient(s: Source): Promise<CheckResult[]> {
  const name = replicationClientName(s.flavour);
  const check = `privilege ${name}`;
  const also = s.flavour === 'mariadb' ? ' (MariaDB 10.5+ name of REPLICATION CLIENT)' : '';
  if (hasReplicationClient(s.grants)) return [pass(check, `granted on *.*${also}`)];
  // SUPER (and, on some versions, other routes) also allow these statements; what counts is whether they run.
  try {
    await currentPosition(s.conn, s.flavour);
    await binlogFiles(s.conn);
    return [pass(check, 'not granted by name, but SHOW BINARY LOG STATUS and SHOW BINARY LOGS work (through SUPER or a similar privilege)')];
  } catch {
    return [
      fail(
        check,
        `not granted${also}: the account cannot read binlog positions, which every chunk and the stream need`,
        `GRANT ${name} ON *.* TO ${accountSql(s)};`,
      ),
    ];
  }
}

// ---------------------------------------------------------------------------------------------------------
// Server ids

function columnOf(row: Record<string, unknown>, name: string): unknown {
  const key = Object.keys(row).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : row[key];
}

/** Replicas registered with the source; an Error when the account may not list them. */
async function registeredReplicas(conn: Connection): Promise<{ id: number; where: string }[] | Error> {
  let rows: unknown;
  try {
    try {
      [rows] = await conn.query('SHOW REPLICAS');
    } catch (err) {
      // MariaDB, and MySQL before 8.0.22, know only the older name.
      if ((err as { code?: string }).code !== 'ER_PARSE_ERROR') throw err;
      [rows] = await conn.query('SHOW SLAVE HOSTS');
    }
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
  return (rows as Record<string, unknown>[]).map((r) => ({
    id: Number(columnOf(r, 'server_id')),
    where: `${String(columnOf(r, 'host') || '?')}:${String(columnOf(r, 'port') ?? '?')}`,
  }));
}

/** The first id of a run of `size` ids that avoids every id in `taken`, starting the search at `from`. */
function freeServerId(from: number, size: number, taken: number[]): number {
  let first = from;
  for (;;) {
    const clash = taken.filter((id) => id >= first && id < first + size);
    if (clash.length === 0) return first;
    first = Math.max(...clash) + 1;
  }
}

async function checkServerIds(s: Source): Promise<CheckResult[]> {
  const { first, size } = serverIdRange(s.config);
  const last = first + size - 1;
  const range = size === 1 ? `${first}` : `${first}-${last}`;
  const inRange = (id: number) => id >= first && id <= last;
  const ownId = Number(s.vars.server_id);
  const registered = await registeredReplicas(s.conn);
  const replicas = registered instanceof Error ? [] : registered;

  const clashes = [
    ...(inRange(ownId) ? [`the source itself has server_id ${ownId}`] : []),
    ...replicas.filter((r) => inRange(r.id)).map((r) => `replica ${r.where} is registered with server_id ${r.id}`),
  ];
  const idsText = `ids ${range} (source.serverId and the next snapshot.parallelism, one per binlog connection)`;
  const others =
    registered instanceof Error
      ? ''
      : replicas.length > 0
        ? `, nor a registered replica's (${replicas.map((r) => r.id).join(', ')})`
        : ', no replica registered';
  const clear = `ids ${range}: not the source's server_id (${ownId})${others}`;
  if (clashes.length > 0) {
    const free = freeServerId(first, size, [ownId, ...replicas.map((r) => r.id)]);
    return [
      fail(
        'server id',
        `${clashes.join('; ')}: within this connector's ${idsText}. The server drops one of two binlog connections with the same id, losing its events`,
        `source.serverId: ${free}`,
      ),
    ];
  }

  const readers = (await processList(s.conn)).filter((p) => p.command.startsWith('Binlog Dump')).map((p) => `${p.user}@${p.host.replace(/:\d+$/, '')}`);
  const unseen = [
    ...(registered instanceof Error ? [`registered replicas (${registered.message})`] : []),
    // Without PROCESS, the process list shows only this account's own connections.
    ...(hasPrivilege(s.grants.global, 'PROCESS') ? [] : ["other accounts' binlog readers (needs the PROCESS privilege)"]),
  ];
  const cannotSee = unseen.length > 0 ? `. Cannot see: ${unseen.join('; ')}` : '';
  // Each registered replica accounts for one reader; the rest never told the source their id.
  const unidentified = readers.length - replicas.length;
  if (unidentified > 0) {
    return [
      warn(
        'server id',
        `${clear}; but ${unidentified} of the ${readers.length} binlog reader(s) (${abbreviate([...new Set(readers)])}) have no registered server id ` +
          `(replicas without report_host and CDC clients, a running sync of this connector included, do not register one; a reader that disconnected ` +
          `may linger until the server next writes to it), so whether they use ${idsText} cannot be seen${cannotSee}`,
        `Make sure none of them uses an id in ${range} (on a replica: SELECT @@server_id; for another tidemark: its source.serverId to source.serverId + snapshot.parallelism); if one does, set source.serverId to a free range here.`,
      ),
    ];
  }
  return [pass('server id', `${clear}; no other binlog reader connected${cannotSee}`)];
}

// ---------------------------------------------------------------------------------------------------------
// Binlog retention

/** Seconds a binlog file is kept, or null when the server never purges them on its own. */
function retentionSeconds(flavour: Flavour, v: Variables): { seconds: number | null; setting: string } {
  if (flavour === 'mysql' && v.binlog_expire_logs_auto_purge === 'OFF') return { seconds: null, setting: 'binlog_expire_logs_auto_purge=OFF' };
  const seconds = Number(v.binlog_expire_logs_seconds ?? 0);
  if (seconds > 0) return { seconds, setting: `binlog_expire_logs_seconds=${seconds}` };
  // expire_logs_days is the older setting; MySQL 8.0 still honours it when binlog_expire_logs_seconds is 0.
  const days = Number(v.expire_logs_days ?? 0);
  if (days > 0) return { seconds: days * 86_400, setting: `expire_logs_days=${days}` };
  return { seconds: null, setting: v.binlog_expire_logs_seconds !== null ? 'binlog_expire_logs_seconds=0' : 'expire_logs_days=0' };
}

function duration(seconds: number): string {
  const round = (n: number) => `${Number(n.toFixed(1))}`;
  if (seconds >= 86_400) return `${round(seconds / 86_400)} days`;
  if (seconds >= 3_600) return `${round(seconds / 3_600)} h`;
  if (seconds >= 60) return `${round(seconds / 60)} min`;
  return `${round(seconds)} s`;
}

async function checkRetention(s: Source): Promise<CheckResult[]> {
  let rows = 0;
  for (const [db, names] of byDb(s.tables)) {
    const [r] = await s.conn.query('SELECT SUM(TABLE_ROWS) AS n FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?)', [db, names]);
    rows += Number((r as { n: string | number | null }[])[0]?.n ?? 0);
  }
  const estimate = rows / ASSUMED_SNAPSHOT_ROWS_PER_SECOND;
  const estimateText = `snapshot estimate ~${duration(estimate)} (${rows.toLocaleString('en-US')} rows by the server's TABLE_ROWS estimate, at an assumed ${ASSUMED_SNAPSHOT_ROWS_PER_SECOND.toLocaleString('en-US')} rows/s)`;
  const { seconds, setting } = retentionSeconds(s.flavour, s.vars);
  if (seconds === null) return [pass('binlog retention', `binlogs are never purged automatically (${setting}); ${estimateText}`)];
  const found = `binlogs kept ${duration(seconds)} (${setting}); ${estimateText}`;
  if (seconds >= 2 * estimate) return [pass('binlog retention', found)];
  // The binlog from a snapshot's start must survive until the stream has read it, and a stopped connector
  // must be restarted within the retention too, hence at least a week.
  const wanted = Math.max(7, Math.ceil((2 * estimate) / 86_400)) * 86_400;
  return [
    warn(
      'binlog retention',
      `${found}: less than twice the snapshot time, so binlogs written during the snapshot may be purged before the stream reads them`,
      setVariable(s.flavour, 'binlog_expire_logs_seconds', String(wanted)),
    ),
  ];
}
