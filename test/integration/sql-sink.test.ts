import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { mysqlTarget, postgresTarget, postgresUrl, type Target } from '../support/sql-target.js';
import { runTidemark, sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, type KeyKind, keyColumnsFor, startWriter } from '../support/workload.js';

// The database sinks end to end: what a user of the copy checks is that each target table equals its source table,
// row by row and value by value, whatever the changes were and however often tidemark was killed.

type Printed = Record<string, string | null>;

/** A source table as the server prints each value, in the order of its key's JSON (the target's rows sort alike). */
async function sourceRows(conn: mysql.Connection, db: string, table: string, key: string[]): Promise<Printed[]> {
  const [rows] = await conn.query({ sql: `SELECT * FROM \`${db}\`.\`${table}\``, typeCast: (field) => field.string() });
  return byKey(rows as Printed[], key);
}

const keyText = (row: Printed, key: string[]): string => JSON.stringify(key.map((k) => row[k]));

function byKey(rows: Printed[], key: string[]): Printed[] {
  return rows.map((r) => ({ ...r })).sort((a, b) => (keyText(a, key) < keyText(b, key) ? -1 : keyText(a, key) > keyText(b, key) ? 1 : 0));
}

/** Each row that differs between source and target, by key: missing, extra, or with another value. */
async function differences(conn: mysql.Connection, db: string, table: string, key: string[], target: Target): Promise<string[]> {
  const source = await sourceRows(conn, db, table, key);
  const copied = byKey(await target.rows(`${db}_${table}`, key), key);
  const want = new Map(source.map((r) => [keyText(r, key), r]));
  const got = new Map(copied.map((r) => [keyText(r, key), r]));
  const out: string[] = [];
  for (const [k, r] of want) {
    const c = got.get(k);
    if (!c) out.push(`${table} ${k}: missing in the target`);
    else if (JSON.stringify(c) !== JSON.stringify(r)) out.push(`${table} ${k}: target ${JSON.stringify(c)}, source ${JSON.stringify(r)}`);
  }
  for (const k of got.keys()) if (!want.has(k)) out.push(`${table} ${k}: in the target, not in the source`);
  return out;
}

async function expectCopies(conn: mysql.Connection, db: string, tables: { table: string; key: string[] }[], target: Target): Promise<void> {
  const all: string[] = [];
  for (const t of tables) all.push(...(await differences(conn, db, t.table, t.key, target)));
  expect(all.slice(0, 20), `${all.length} rows differ`).toEqual([]);
}

function config(dir: string, flavour: Flavour, db: string, serverId: number, target: Target, extra: Record<string, unknown> = {}): string {
  return writeConfig(dir, {
    name: 'copy',
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.*`] },
    snapshot: { chunkSize: 100, parallelism: 2 },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: target.sink,
    commit: { maxRecords: 500, maxDelayMs: 100 },
    ...extra,
  });
}

async function caughtUp(config: string): Promise<void> {
  const run = await runTidemark(['sync', '-c', config, '--until-caught-up']);
  expect(run.code, run.stderr.slice(-4000)).toBe(0);
}

const ITEMS = 'id INT NOT NULL PRIMARY KEY, version INT NOT NULL, payload VARCHAR(64), amount DECIMAL(12,2)';

const COMBINATIONS: { source: Flavour; into: 'postgres' | 'mysql'; serverId: number }[] = [
  { source: 'mysql', into: 'postgres', serverId: 9100 },
  { source: 'mariadb', into: 'postgres', serverId: 9110 },
  // Into a database on the source's own server: the MariaDB case covers the MySQL sink's MariaDB dialect.
  { source: 'mariadb', into: 'mysql', serverId: 9130 },
];

const targetFor = (into: 'postgres' | 'mysql', flavour: Flavour): Promise<Target> => (into === 'postgres' ? postgresTarget() : mysqlTarget(urlOf(flavour)));

describe.each(COMBINATIONS)('changes from $source into $into', ({ source: flavour, into, serverId }) => {
  it('follows key changes, deletes, truncates, a table keyed by snapshot.chunkKey and an added column', async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'sqlchg');
    const target = await targetFor(into, flavour);
    try {
      await conn.query(`CREATE TABLE items (${ITEMS})`);
      await conn.query('CREATE TABLE nokey (code VARCHAR(20) NOT NULL, qty INT, note VARCHAR(20), UNIQUE KEY (code))');
      await conn.query('CREATE TABLE wiped (id INT NOT NULL PRIMARY KEY, label VARCHAR(20))');
      await conn.query('INSERT INTO items VALUES ?', [Array.from({ length: 300 }, (_, i) => [i + 1, 1, `p${i + 1}`, `${i + 1}.25`])]);
      await conn.query('INSERT INTO nokey VALUES ?', [Array.from({ length: 20 }, (_, i) => [`c${i + 1}`, i + 1, null])]);
      await conn.query('INSERT INTO wiped VALUES ?', [Array.from({ length: 10 }, (_, i) => [i + 1, `w${i + 1}`])]);
      const dir = tempDir();
      const cfg = config(dir, flavour, db, serverId, target, { snapshot: { chunkSize: 100, parallelism: 2, chunkKey: { [`${db}.nokey`]: ['code'] } } });
      await caughtUp(cfg);
      const tables = [
        { table: 'items', key: ['id'] },
        { table: 'nokey', key: ['code'] },
        { table: 'wiped', key: ['id'] },
      ];
      await expectCopies(conn, db, tables, target);

      // Key changes: one onto a fresh key, and in one transaction a swap onto a key freed just before.
      await conn.query('UPDATE items SET id = 1003, version = version + 1 WHERE id = 3');
      await conn.query('BEGIN; UPDATE items SET id = 2005 WHERE id = 5; UPDATE items SET id = 5, version = version + 1 WHERE id = 6; COMMIT');
      await conn.query('DELETE FROM items WHERE id IN (7, 8)');
      await conn.query("UPDATE items SET payload = 'changed', version = version + 1 WHERE id = 9");
      await conn.query("UPDATE nokey SET code = 'moved', qty = qty + 100 WHERE code = 'c2'");
      await conn.query("DELETE FROM nokey WHERE code = 'c3'");
      await conn.query("INSERT INTO nokey VALUES ('new', 1, 'x')");
      // A row inserted before the TRUNCATE must be gone; one after it must stay.
      await conn.query("INSERT INTO wiped VALUES (100, 'before')");
      await conn.query('TRUNCATE TABLE wiped');
      await conn.query("INSERT INTO wiped VALUES (200, 'after')");
      await conn.query('ALTER TABLE items ADD COLUMN note VARCHAR(20)');
      await conn.query("INSERT INTO items (id, version, payload, amount, note) VALUES (500, 1, 'noted', 1.50, 'hello')");
      await caughtUp(cfg);

      expect((await target.rows(`${db}_wiped`, ['id'])).map((r) => r.id)).toEqual(['200']);
      const items = new Set((await target.rows(`${db}_items`, ['id'])).map((r) => Number(r.id)));
      for (const gone of [3, 6, 7, 8]) expect(items.has(gone), `id ${gone}`).toBe(false);
      for (const there of [5, 1003, 2005, 500]) expect(items.has(there), `id ${there}`).toBe(true);
      await expectCopies(conn, db, tables, target);

      if (into === 'postgres') {
        // The column was added by the transaction that wrote the first row holding it: both carry its id.
        const schema = target.prefix.slice(0, -1);
        const [added] = await target.query(
          `SELECT a.xmin::text AS column_xmin, (SELECT t.xmin::text FROM ${schema}."${db}_items" t WHERE id = 500) AS row_xmin
             FROM pg_attribute a WHERE a.attrelid = '${schema}."${db}_items"'::regclass AND a.attname = 'note'`,
        );
        expect(added!.column_xmin).toBe(added!.row_xmin);
      }
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
      await target.close();
    }
  });
});

describe('an existing target table', () => {
  const flavour: Flavour = 'mysql';

  it('whose columns do not match the source stops the sync before anything is written, naming the column', async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'sqlbad');
    const target = await postgresTarget();
    try {
      await conn.query(`CREATE TABLE items (${ITEMS})`);
      await conn.query("INSERT INTO items VALUES (1, 1, 'a', 1.00), (2, 1, 'b', 2.00)");
      await conn.query('CREATE TABLE other (id INT PRIMARY KEY)');
      await conn.query('INSERT INTO other VALUES (1)');
      await target.query(`CREATE TABLE ${target.prefix}"${db}_items" (id int PRIMARY KEY, version int, payload text)`);
      const dir = tempDir();
      const run = await runTidemark(['sync', '-c', config(dir, flavour, db, 9140, target), '--until-caught-up']);
      expect(run.code, run.stderr.slice(-3000)).toBe(1);
      expect(run.stderr).toMatch(new RegExp(`target table ${db}_items .*has no column amount, which ${db}\\.items has`));
      expect(await target.query(`SELECT * FROM ${target.prefix}"${db}_items"`)).toEqual([]);
      const made = await target.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE $2', [
        target.prefix.slice(0, -1),
        `${db}%`,
      ]);
      expect(made.map((r) => r.table_name)).toEqual([`${db}_items`]);
      const offsets = await target.query(`SELECT * FROM ${target.prefix}tidemark_offsets`).catch(() => []);
      expect(offsets).toEqual([]);
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
      await target.close();
    }
  });

  it('that refuses a row stops with its table, key and the database message; dead-letter mode records it; check and status show the target', async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'sqlref');
    const target = await postgresTarget();
    try {
      await conn.query(`CREATE TABLE items (${ITEMS})`);
      for (let id = 1; id <= 50; id++) await conn.query('INSERT INTO items VALUES (?, 1, ?, ?)', [id, `p${id}`, `${id}.00`]);
      await target.query(
        `CREATE TABLE ${target.prefix}"${db}_items" (id int PRIMARY KEY, version int, payload text, amount numeric(12,2) CONSTRAINT amount_positive CHECK (amount >= 0))`,
      );
      const dir = tempDir();
      const cfg = config(dir, flavour, db, 9150, target);
      await caughtUp(cfg);
      await conn.query("BEGIN; INSERT INTO items VALUES (900, 1, 'refused', -1.00); INSERT INTO items VALUES (901, 1, 'fine', 5.00); COMMIT");
      await conn.query("UPDATE items SET version = version + 1, payload = 'later' WHERE id = 10");

      const failed = await runTidemark(['sync', '-c', cfg, '--until-caught-up']);
      expect(failed.code, failed.stderr.slice(-3000)).toBe(1);
      expect(failed.stderr).toMatch(new RegExp(`${db}_items refused the row: .*amount_positive.*\\(${db}\\.items with key \\{"id":900\\}`));
      const ids = (await target.rows(`${db}_items`, ['id'])).map((r) => Number(r.id));
      expect(ids).toHaveLength(50);
      expect(ids).not.toContain(901);

      // The refused row was not skipped: the next run, told to, records it as a dead letter.
      const deadLetter = writeConfig(dir, { ...parse(readFileSync(cfg, 'utf8')), errors: { mode: 'dead-letter' } });
      await caughtUp(deadLetter);
      const rows = await target.rows(`${db}_items`, ['id']);
      expect(rows.map((r) => Number(r.id))).toEqual([...Array.from({ length: 50 }, (_, i) => i + 1), 901]);
      expect(rows.find((r) => r.id === '10')!.payload).toBe('later');
      const letters = await target.query(`SELECT connector, db, "table", "key", reason, error, "row" FROM ${target.prefix}tidemark_dead_letters`);
      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatchObject({ connector: 'copy', db, table: 'items', key: '{"id":900}', reason: 'refused' });
      expect(String(letters[0]!.error)).toMatch(/amount_positive/);
      expect(JSON.parse(String(letters[0]!.row))).toMatchObject({ id: 900, amount: '-1.00' });

      const status = await runTidemark(['status', '-c', deadLetter, '--json']);
      expect(status.code, status.stderr).toBe(0);
      const [held] = await target.query(`SELECT commit_number, source_file, source_pos FROM ${target.prefix}tidemark_offsets WHERE connector = 'copy'`);
      expect(JSON.parse(status.stdout).target).toMatchObject({
        error: null,
        offsets: { commit: Number(held!.commit_number), file: held!.source_file, pos: Number(held!.source_pos) },
      });

      const check = await runTidemark(['check', '-c', deadLetter, '--json']);
      const results = JSON.parse(check.stdout) as { check: string; status: string; found: string }[];
      expect(results.filter((r) => r.check.startsWith('target')).map((r) => [r.check, r.status])).toEqual([
        ['target connection', 'PASS'],
        ['target privileges', 'PASS'],
        ['target offsets', 'PASS'],
      ]);
      expect(results.find((r) => r.check === 'target connection')!.found).toMatch(/PostgreSQL \d+/);
      const unreachable = writeConfig(
        dir,
        { ...parse(readFileSync(cfg, 'utf8')), sink: { ...target.sink, url: 'postgres://nobody@127.0.0.1:1/none' } },
        'bad.yaml',
      );
      const noTarget = await runTidemark(['check', '-c', unreachable]);
      expect(noTarget.code).toBe(1);
      expect(noTarget.stdout).toMatch(/FAIL\s+target connection\s+postgres 127\.0\.0\.1:1\/none/);
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
      await target.close();
    }
  });
});

const WORKLOAD: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 2000 },
  { table: 'customers', key: 'string', rows: 1000 },
  { table: 'lines', key: 'composite', rows: 1000 },
];

const WORKLOAD_RUNS: { source: Flavour; into: 'postgres' | 'mysql'; serverId: number }[] = [
  { source: 'mysql', into: 'postgres', serverId: 9160 },
  { source: 'mariadb', into: 'postgres', serverId: 9170 },
  { source: 'mysql', into: 'mysql', serverId: 9180 },
];

describe.each(WORKLOAD_RUNS)('workload from $source into $into', ({ source: flavour, into, serverId }) => {
  it('ends with each target table equal to its source table after kill -9 around commits in the snapshot and while streaming', async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'sqlwl');
    const target = await targetFor(into, flavour);
    try {
      for (const t of WORKLOAD) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
      const dir = tempDir();
      const cfg = writeConfig(dir, {
        name: 'copy',
        source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.*`] },
        snapshot: { chunkSize: 150, parallelism: 2 },
        checkpoint: { path: join(dir, 'checkpoint.sqlite') },
        sink: target.sink,
        commit: { maxRecords: 200, maxDelayMs: 30 },
      });
      const writer = startWriter(urlOf(flavour), db, WORKLOAD, { tps: 300, seed: 23 });
      // Crash points hit the two moments a kill from outside rarely does: the checkpoint holds the commit as pending
      // while the target holds its rows uncommitted (the next run must write them again), or committed (it must not).
      const runs: { name: string; crashAt?: string; when?: (p: TidemarkProcess) => Promise<void> }[] = [
        { name: 'before the first chunk commit', crashAt: 'sink-commit' },
        { name: 'after a chunk commit', crashAt: 'sink-committed' },
        {
          name: 'while streaming',
          when: async (p) => {
            await p.waitForLog((l) => l.msg === 'streaming');
            await new Promise((r) => setTimeout(r, 800));
          },
        },
        { name: 'before a streaming commit', crashAt: 'sink-commit' },
      ];
      for (const k of runs) {
        const p = tidemark(['sync', '-c', cfg], { TIDEMARK_TEST_CHUNK_DELAY_MS: '10', ...(k.crashAt ? { TIDEMARK_TEST_CRASH_AT: k.crashAt } : {}) });
        if (k.when) await Promise.race([k.when(p), p.exited]);
        const exit = k.crashAt ? await p.exited : await p.kill('SIGKILL');
        expect(exit.signal, `${k.name}: ${p.stderr.slice(-2000)}`).toBe('SIGKILL');
      }
      const stats = await writer.stop();
      expect(stats.keyChanges).toBeGreaterThan(0);
      expect(stats.deletes).toBeGreaterThan(0);
      await caughtUp(cfg);
      await expectCopies(
        conn,
        db,
        WORKLOAD.map((t) => ({ table: t.table, key: keyColumnsFor(t.key) })),
        target,
      );
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
      await target.close();
    }
  });
});

describe('tidemark demo --postgres', () => {
  it('syncs the busy shop into PostgreSQL tables and shows what they hold', async () => {
    const dir = join(tempDir(), 'demo');
    const run = await runTidemark(['demo', '--seconds', '4', '--dir', dir, '--postgres', postgresUrl()], { TIDEMARK_TEST_MYSQL_URL: urlOf('mysql') });
    const client = new pg.Client({ connectionString: postgresUrl() });
    await client.connect();
    try {
      expect(run.code, run.stderr.slice(-3000)).toBe(0);
      expect(run.stdout).toMatch(/^ {2}postgres tidemark_demo: 2000 customers, \d+ orders, newest order change \d{4}-/m);
      const { rows } = await client.query(
        'SELECT (SELECT count(*)::int FROM tidemark_demo.orders) AS orders, (SELECT max(version) FROM tidemark_demo.orders) AS version',
      );
      // 20,000 orders, less the few the writer cancelled, more the few it added; some of them changed after the snapshot.
      expect(rows[0].orders).toBeGreaterThan(19_900);
      expect(rows[0].version).toBeGreaterThan(1);
    } finally {
      await client.query('DROP SCHEMA IF EXISTS tidemark_demo CASCADE');
      await client.end();
    }
  });
});
