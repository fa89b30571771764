// No server access here: what SHOW GRANTS printed is parsed and queried on its own, so it can be unit-tested.

/** The grants of one account, as SHOW GRANTS lists them (column-level grants are left out: SELECT * needs the whole table). */
export interface Grants {
  global: Set<string>;
  /** Database-level grants; `db` is a LIKE pattern unless `literal`. */
  databases: { db: string; literal: boolean; privileges: Set<string> }[];
  tables: { db: string; table: string; privileges: Set<string> }[];
  /** MySQL partial revokes: global privileges taken back for one database. */
  revoked: { db: string; privileges: Set<string> }[];
}

export const hasPrivilege = (set: Set<string>, ...names: string[]): boolean => set.has('ALL') || names.some((n) => set.has(n));

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
export function canSelectDatabase(grants: Grants, db: string): boolean {
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
