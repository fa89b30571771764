import type { Connection } from 'mysql2/promise';
import type { Config } from '../../config/load.js';
import type { Grants } from './grants.js';

// What the check sections share lives here rather than in index.ts, which imports the sections: no import cycle.

export type CheckStatus = 'PASS' | 'WARN' | 'FAIL';

/** One line of `tidemark check`: `fix` is an SQL statement or config line, given for every FAIL and WARN. */
export interface CheckResult {
  check: string;
  status: CheckStatus;
  found: string;
  fix: string | null;
}

export type Flavour = 'mysql' | 'mariadb';

export const VARIABLES = [
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

export type Variables = Record<(typeof VARIABLES)[number], string | null>;

export interface Table {
  db: string;
  table: string;
}

export interface Source {
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

export const pass = (check: string, found: string): CheckResult => ({ check, status: 'PASS', found, fix: null });
export const warn = (check: string, found: string, fix: string): CheckResult => ({ check, status: 'WARN', found, fix });
export const fail = (check: string, found: string, fix: string): CheckResult => ({ check, status: 'FAIL', found, fix });

export const nameOf = (t: Table): string => `${t.db}.${t.table}`;

export function abbreviate(names: string[], max = 5): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}

export function byDb(tables: Table[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const t of tables) out.set(t.db, [...(out.get(t.db) ?? []), t.table]);
  return out;
}
