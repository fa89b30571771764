import { binlogFiles, currentPosition, quoteId } from '../server.js';
import { canSelect, hasReplicationClient, hasReplicationSlave } from './grants.js';
import { abbreviate, byDb, type CheckResult, type Flavour, fail, nameOf, pass, type Source } from './types.js';

export const replicationClientName = (flavour: Flavour): string => (flavour === 'mariadb' ? 'BINLOG MONITOR' : 'REPLICATION CLIENT');

function accountSql(s: Source): string {
  const q = (x: string) => `'${x.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return `${q(s.account.user)}@${q(s.account.host)}`;
}

export function grantSelect(s: Source, db: string, table: string | null): string {
  return `GRANT SELECT ON ${quoteId(db)}.${table === null ? '*' : quoteId(table)} TO ${accountSql(s)};`;
}

export async function checkSelect(s: Source): Promise<CheckResult[]> {
  if (s.tables.length === 0) return [];
  const missing = s.tables.filter((t) => !canSelect(s.grants, t.db, t.table));
  if (missing.length === 0) return [pass('privilege SELECT', `granted on all ${s.tables.length} captured table${s.tables.length === 1 ? '' : 's'}`)];
  // One statement per database when several of its tables are missing, so the fix stays short.
  const fixes = [...byDb(missing)].map(([db, tables]) => grantSelect(s, db, tables.length === 1 ? tables[0]! : null));
  return [fail('privilege SELECT', `missing on ${abbreviate(missing.map(nameOf))}: their rows cannot be snapshotted`, fixes.join(' '))];
}

export async function checkReplicationSlave(s: Source): Promise<CheckResult[]> {
  if (hasReplicationSlave(s.grants)) return [pass('privilege REPLICATION SLAVE', 'granted on *.*')];
  return [fail('privilege REPLICATION SLAVE', 'not granted: the account cannot read the binlog', `GRANT REPLICATION SLAVE ON *.* TO ${accountSql(s)};`)];
}

export async function checkReplicationClient(s: Source): Promise<CheckResult[]> {
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
