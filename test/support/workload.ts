import mysql from 'mysql2/promise';
import { selectAllCanonical } from './consistency.js';

/** The primary-key shapes the end-to-end tests capture. */
export type KeyKind = 'int' | 'sparse-int' | 'string' | 'composite';

export interface WorkloadTableOptions {
  rows: number;
  key: KeyKind;
}

export interface WriterTable {
  table: string;
  key: KeyKind;
}

export interface WriterOptions {
  /** Data statements per second, roughly (BEGIN/COMMIT not counted). Default 200. */
  tps?: number;
  /** Same seed and same starting tables give the same sequence of changes. Default 1. */
  seed?: number;
}

/** Committed row changes, each counted once (a primary-key change is a `keyChange`, not an insert plus a delete). */
export interface ChangeCounts {
  inserts: number;
  updates: number;
  deletes: number;
  keyChanges: number;
}

export interface WriterStats extends ChangeCounts {
  /** Committed data statements, inside transactions or not. */
  statements: number;
  /** Committed multi-statement transactions (BEGIN; 2-5 statements; COMMIT). */
  transactions: number;
  byTable: Record<string, ChangeCounts>;
}

export interface Writer {
  /** Finishes the statement or transaction in flight, closes the connection, and returns the final stats; rejects if the writer failed. */
  stop(): Promise<WriterStats>;
  /** Live counters, updated as changes commit. */
  readonly stats: WriterStats;
}

type Key = (number | string)[];
type Rng = () => number;
type Change = keyof ChangeCounts;

const KEY_COLUMNS: Record<KeyKind, string[]> = {
  int: ['id'],
  'sparse-int': ['id'],
  string: ['code'],
  composite: ['tenant', 'seq'],
};

const KEY_DDL: Record<KeyKind, string> = {
  int: 'id BIGINT NOT NULL',
  'sparse-int': 'id BIGINT NOT NULL',
  // No explicit collation: the charset's default is the server's case/accent-insensitive one
  // (utf8mb4_0900_ai_ci on MySQL, utf8mb4_general_ci on MariaDB), which is what users have.
  string: 'code VARCHAR(40) NOT NULL',
  composite: 'tenant INT NOT NULL, seq BIGINT NOT NULL',
};

/** The primary-key columns of a workload table, in key order. */
export function keyColumnsFor(kind: KeyKind): string[] {
  return [...KEY_COLUMNS[kind]];
}

const ident = (name: string): string => `\`${name.replace(/`/g, '``')}\``;

/** mulberry32: tiny, fast and good enough to make workloads (and the soak's kill times) reproducible. */
export function rngFrom(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const intBelow = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[intBelow(rng, items.length)]!;

function pickWeighted<T extends string>(rng: Rng, weights: Record<T, number>): T {
  const entries = Object.entries(weights) as [T, number][];
  let r = rng() * entries.reduce((sum, [, w]) => sum + w, 0);
  for (const [name, w] of entries) {
    r -= w;
    if (r < 0) return name;
  }
  return entries[entries.length - 1]![0];
}

// Prefixes mix case, accents, ß and non-Latin-1 letters so that the collation's order differs from
// JavaScript's code-unit order. They hold no digits, so two codes can only be equal under any collation
// (case, accent or ß folding, PAD SPACE ignoring the trailing blanks) if their numbers are equal.
const CODE_PREFIXES = ['apple', 'Apfel', 'éclair', 'Eagle', 'straße', 'STRASSE', 'zebra', 'Zulu', 'über', 'Öl', 'ñandú', 'Ångström', 'É', 'e', 'b', 'B'];
const CODE_SUFFIXES = ['', '', '', 'ß', 'É', ' ', '   ', 'x '];

function workloadCode(n: number): string {
  return `${CODE_PREFIXES[n % CODE_PREFIXES.length]}-${n}${CODE_SUFFIXES[Math.floor(n / CODE_PREFIXES.length) % CODE_SUFFIXES.length]}`;
}

const codeNumber = (code: string): number => Number(/\d+/.exec(code)?.[0] ?? 0);

// Not Math.max(...values): spreading 200k arguments overflows the stack.
const maxOf = (values: Iterable<number>): number => {
  let max = 0;
  for (const v of values) if (v > max) max = v;
  return max;
};

const WORDS = ['tide', 'mark', 'ebb', 'flow', 'surge', 'neap', 'spring', 'swell', 'drift', 'shoal', 'reef', 'Gezeiten', 'marée', 'überflut', '潮汐', '🌊'];

function payload(rng: Rng): string | null {
  if (rng() < 0.05) return null;
  const words: string[] = [];
  for (let i = 1 + intBelow(rng, 4); i > 0; i--) words.push(pick(rng, WORDS));
  return words.join(' ');
}

function amount(rng: Rng): string {
  const cents = intBelow(rng, 100).toString().padStart(2, '0');
  return `${rng() < 0.1 ? '-' : ''}${intBelow(rng, 10_000_000)}.${cents}`;
}

/** Clusters of nearly consecutive ids separated by jumps of up to 10^12, so that arithmetic splitting is wrong. */
function sparseIds(rng: Rng, rows: number): number[] {
  const ids: number[] = [];
  const clusterMax = 2 * Math.max(1, Math.ceil(rows / 25));
  let id = 1 + intBelow(rng, 1000);
  while (ids.length < rows) {
    for (let n = 1 + intBelow(rng, clusterMax); n > 0 && ids.length < rows; n--) {
      ids.push(id);
      id += rng() < 0.9 ? 1 + intBelow(rng, 3) : 1 + intBelow(rng, 1000);
    }
    id += Math.floor(10 ** (2 + rng() * 10));
  }
  return ids;
}

/** Tenants of uneven size, each with seq 1..size. */
function compositeKeys(rng: Rng, rows: number): Key[] {
  const keys: Key[] = [];
  const average = Math.min(400, Math.max(1, Math.ceil(rows / 20)));
  for (let tenant = 1; keys.length < rows; tenant++) {
    for (let seq = 1, size = 1 + intBelow(rng, 2 * average); seq <= size && keys.length < rows; seq++) keys.push([tenant, seq]);
  }
  return keys;
}

function initialKeys(kind: KeyKind, rows: number, rng: Rng): Key[] {
  switch (kind) {
    case 'int':
      return Array.from({ length: rows }, (_, i) => [i + 1]);
    case 'sparse-int':
      return sparseIds(rng, rows).map((id) => [id]);
    case 'string':
      return Array.from({ length: rows }, (_, i) => [workloadCode(i + 1)]);
    case 'composite':
      return compositeKeys(rng, rows);
  }
}

const FILL_BATCH = 5000;

/**
 * Creates `db.table` with the shape every captured test table has: the primary key of the given kind,
 * `version INT NOT NULL` (1 for every row here; every update increments it), `payload VARCHAR(64)` and
 * `amount DECIMAL(12,2)`, and fills it with `rows` rows. Deterministic for a given kind and row count.
 */
export async function createWorkloadTable(conn: mysql.Connection, db: string, table: string, opts: WorkloadTableOptions): Promise<void> {
  const columns = KEY_COLUMNS[opts.key];
  const name = `${ident(db)}.${ident(table)}`;
  await conn.query(
    `CREATE TABLE ${name} (${KEY_DDL[opts.key]}, version INT NOT NULL, payload VARCHAR(64) NULL, amount DECIMAL(12,2) NOT NULL, ` +
      `PRIMARY KEY (${columns.map(ident).join(', ')})) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  );
  const rng = rngFrom(opts.rows * 31 + opts.key.length);
  const keys = initialKeys(opts.key, opts.rows, rng);
  const insert = `INSERT INTO ${name} (${[...columns, 'version', 'payload', 'amount'].map(ident).join(', ')}) VALUES ?`;
  for (let i = 0; i < keys.length; i += FILL_BATCH) {
    const batch = keys.slice(i, i + FILL_BATCH).map((key) => [...key, 1, payload(rng), amount(rng)]);
    await conn.query(insert, [batch]);
  }
}

/** Live keys of one table, with O(1) random pick and removal. */
class LiveKeys {
  private readonly keys: Key[] = [];
  private readonly index = new Map<string, number>();

  get size(): number {
    return this.keys.length;
  }

  add(key: Key): void {
    this.index.set(JSON.stringify(key), this.keys.length);
    this.keys.push(key);
  }

  remove(key: Key): void {
    const id = JSON.stringify(key);
    const i = this.index.get(id)!;
    const last = this.keys.pop()!;
    this.index.delete(id);
    if (i < this.keys.length) {
      this.keys[i] = last;
      this.index.set(JSON.stringify(last), i);
    }
  }

  random(rng: Rng): Key {
    return pick(rng, this.keys);
  }
}

/** Hands out keys never used before in this writer's lifetime, so an insert or key change cannot collide. */
interface KeySpace {
  fresh(rng: Rng, live: LiveKeys): Key;
}

function keySpace(kind: KeyKind, existing: Key[]): KeySpace {
  switch (kind) {
    case 'int': {
      let next = maxOf(existing.map((k) => k[0] as number)) + 1;
      return { fresh: () => [next++] };
    }
    case 'sparse-int': {
      const used = new Set(existing.map((k) => k[0] as number));
      let max = maxOf(used);
      const claim = (id: number): boolean => {
        if (used.has(id)) return false;
        used.add(id);
        max = Math.max(max, id);
        return true;
      };
      return {
        fresh: (rng, live) => {
          // Half land just after a live key (inside a dense cluster), half anywhere in or past the key space.
          if (live.size > 0 && rng() < 0.5) {
            const near = (live.random(rng)[0] as number) + 1 + intBelow(rng, 50);
            if (claim(near)) return [near];
          }
          for (;;) {
            const id = 1 + Math.floor(rng() * (max + 1e12));
            if (claim(id)) return [id];
          }
        },
      };
    }
    case 'string': {
      let next = maxOf(existing.map((k) => codeNumber(k[0] as string))) + 1;
      return { fresh: () => [workloadCode(next++)] };
    }
    case 'composite': {
      const maxSeq = new Map<number, number>();
      for (const [tenant, seq] of existing as [number, number][]) maxSeq.set(tenant, Math.max(seq, maxSeq.get(tenant) ?? 0));
      const tenants = [...maxSeq.keys()];
      return {
        fresh: (rng) => {
          if (tenants.length === 0 || rng() < 0.1) {
            const tenant = maxOf(tenants) + 1;
            tenants.push(tenant);
            maxSeq.set(tenant, 1);
            return [tenant, 1];
          }
          const tenant = pick(rng, tenants);
          const seq = maxSeq.get(tenant)! + 1;
          maxSeq.set(tenant, seq);
          return [tenant, seq];
        },
      };
    }
  }
}

interface TableState {
  table: string;
  name: string;
  columns: string[];
  where: string;
  live: LiveKeys;
  space: KeySpace;
}

const zeroCounts = (): ChangeCounts => ({ inserts: 0, updates: 0, deletes: 0, keyChanges: 0 });

const STEP_WEIGHTS = { inserts: 25, updates: 40, deletes: 12, keyChanges: 8, transaction: 15 };
const IN_TRANSACTION_WEIGHTS = { inserts: 30, updates: 45, deletes: 15, keyChanges: 10 };

/**
 * Starts changing the given workload tables of `db` on a connection of its own until stopped: single-row
 * inserts (new keys, version 1), updates (version + 1, new payload and amount), deletes, primary-key changes
 * (to a never-used key, version + 1) and multi-statement transactions mixing them across tables.
 * The tables must not be written by anyone else meanwhile: the writer tracks their keys itself.
 */
export function startWriter(url: string, db: string, tables: WriterTable[], opts: WriterOptions = {}): Writer {
  const tps = opts.tps ?? 200;
  const rng = rngFrom(opts.seed ?? 1);
  const stats: WriterStats = { ...zeroCounts(), statements: 0, transactions: 0, byTable: {} };
  for (const { table } of tables) stats.byTable[table] = zeroCounts();

  let stopping = false;
  let wake: (() => void) | undefined;

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const commit = (changes: [string, Change][]): void => {
    for (const [table, change] of changes) {
      stats[change]++;
      stats.byTable[table]![change]++;
      stats.statements++;
    }
  };

  const run = async (): Promise<void> => {
    const conn = await mysql.createConnection({ uri: url });
    try {
      const states: TableState[] = [];
      for (const { table, key } of tables) {
        const columns = KEY_COLUMNS[key];
        const name = `${ident(db)}.${ident(table)}`;
        const [rows] = await conn.query({
          sql: `SELECT ${columns.map(ident).join(', ')} FROM ${name} ORDER BY ${columns.map(ident).join(', ')}`,
          rowsAsArray: true,
        });
        const existing = rows as Key[];
        const live = new LiveKeys();
        for (const k of existing) live.add(k);
        states.push({ table, name, columns, where: columns.map((c) => `${ident(c)} = ?`).join(' AND '), live, space: keySpace(key, existing) });
      }

      const exec = async (sql: string, params: unknown[]): Promise<void> => {
        const [result] = await conn.query(sql, params);
        const affected = (result as mysql.ResultSetHeader).affectedRows;
        if (affected !== 1) throw new Error(`workload writer: expected 1 row changed, got ${affected}: ${conn.format(sql, params)}`);
      };

      const change = async (kind: Change): Promise<[string, Change]> => {
        const t = pick(rng, states);
        if (kind !== 'inserts' && t.live.size === 0) kind = 'inserts';
        switch (kind) {
          case 'inserts': {
            const key = t.space.fresh(rng, t.live);
            await exec(`INSERT INTO ${t.name} (${[...t.columns, 'version', 'payload', 'amount'].map(ident).join(', ')}) VALUES (?)`, [
              [...key, 1, payload(rng), amount(rng)],
            ]);
            t.live.add(key);
            break;
          }
          case 'updates': {
            const key = t.live.random(rng);
            await exec(`UPDATE ${t.name} SET version = version + 1, payload = ?, amount = ? WHERE ${t.where}`, [payload(rng), amount(rng), ...key]);
            break;
          }
          case 'deletes': {
            const key = t.live.random(rng);
            await exec(`DELETE FROM ${t.name} WHERE ${t.where}`, key);
            t.live.remove(key);
            break;
          }
          case 'keyChanges': {
            const from = t.live.random(rng);
            const to = t.space.fresh(rng, t.live);
            await exec(`UPDATE ${t.name} SET ${t.columns.map((c) => `${ident(c)} = ?`).join(', ')}, version = version + 1 WHERE ${t.where}`, [...to, ...from]);
            t.live.remove(from);
            t.live.add(to);
            break;
          }
        }
        return [t.table, kind];
      };

      const started = performance.now();
      let attempted = 0;
      while (!stopping) {
        const ahead = started + (attempted * 1000) / tps - performance.now();
        if (ahead > 0) {
          await sleep(ahead);
          continue;
        }
        const step = pickWeighted(rng, STEP_WEIGHTS);
        if (step === 'transaction') {
          const changes: [string, Change][] = [];
          await conn.query('BEGIN');
          for (let n = 2 + intBelow(rng, 4); n > 0; n--) changes.push(await change(pickWeighted(rng, IN_TRANSACTION_WEIGHTS)));
          await conn.query('COMMIT');
          commit(changes);
          stats.transactions++;
          attempted += changes.length;
        } else {
          commit([await change(step)]);
          attempted++;
        }
      }
    } finally {
      await conn.end();
    }
  };

  const done = run();
  // stop() reports the failure; until then it must not count as unhandled.
  done.catch(() => {});

  return {
    stats,
    async stop() {
      stopping = true;
      wake?.();
      await done;
      return structuredClone(stats);
    },
  };
}

/**
 * What the consistency check compares an output with: the rows of each workload table as the source holds
 * them now, by `db.table`, and each table's key columns.
 */
export async function sourceState(
  conn: mysql.Connection,
  db: string,
  tables: { table: string; key: KeyKind }[],
): Promise<{ source: Map<string, Record<string, unknown>[]>; keyColumns: Record<string, string[]> }> {
  const source = new Map<string, Record<string, unknown>[]>();
  const keyColumns: Record<string, string[]> = {};
  for (const t of tables) {
    const name = `${db}.${t.table}`;
    keyColumns[name] = keyColumnsFor(t.key);
    source.set(name, await selectAllCanonical(conn, db, t.table, keyColumns[name]!));
  }
  return { source, keyColumns };
}
