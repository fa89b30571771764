import type { Connection } from 'mysql2/promise';
import { type Config, matchTables } from '../../config/load.js';
import { connect, listTables } from '../server.js';
import { parseGrants } from './grants.js';
import { checkReplicationClient, checkReplicationSlave, checkSelect, replicationClientName } from './privileges.js';
import { checkRetention } from './retention.js';
import { checkServerIds } from './server-ids.js';
import { settingChecks } from './settings.js';
import { checkKeys, checkTablesMatch } from './tables.js';
import { checkTls } from './tls.js';
import { type CheckResult, type Flavour, fail, pass, type Source, VARIABLES, type Variables } from './types.js';

export type { CheckResult, CheckStatus } from './types.js';

const errorMessage = (err: unknown): string => (err instanceof Error ? err.message : String(err));

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
    // TLS failures name source.ssl and their own fix in the message.
    const tls = errorMessage(err).includes('source.ssl');
    return [
      fail(
        'connection',
        errorMessage(err),
        tls
          ? "Correct source.ssl (or the server's TLS settings) as the message above says, then run tidemark check again."
          : 'Correct source.url (or source.host, source.port, source.user, source.password) and make sure the server runs and accepts connections from this machine.',
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
    const results = [
      pass('connection', `logged in as ${user}@${host} at ${config.source.host}:${config.source.port}`),
      await checkTls(conn, config),
      ...settingChecks(source),
    ];
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
