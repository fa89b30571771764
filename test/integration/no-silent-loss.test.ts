import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, type JsonlSetup, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter } from '../support/workload.js';

// Issue 11: paths where a change could be lost, doubled or altered without an error. Each test failed on the code before its fix.

type Table = { table: string; key: KeyKind; rows: number };

async function setup(flavour: Flavour, serverId: number, tables: Table[], snapshot: Record<string, unknown> = {}): Promise<JsonlSetup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'loss');
  for (const t of tables) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
  await conn.query(`ANALYZE TABLE ${tables.map((t) => `\`${db}\`.\`${t.table}\``).join(', ')}`);
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const config = writeConfig(dir, {
    name: 'loss',
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: tables.map((t) => `${db}.${t.table}`) },
    snapshot: { mode: 'initial', chunkSize: 200, parallelism: 1, ...snapshot },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: { type: 'jsonl', path: out },
    commit: { maxRecords: 1000, maxDelayMs: 100 },
  });
  return { db, conn, dir, config, out };
}

async function expectConsistent(s: JsonlSetup, tables: Table[]): Promise<void> {
  const { source, keyColumns } = await sourceState(s.conn, s.db, tables);
  const report = checkConsistency(readJsonl(s.out), source, { keyColumns, allowUnpairedMoves: true });
  expect(report.ok, formatReport(report)).toBe(true);
}

async function syncUntilCaughtUp(config: string, env?: NodeJS.ProcessEnv): Promise<void> {
  const run = await runTidemark(['sync', '-c', config, '--until-caught-up'], env);
  expect(run.code, run.stderr.slice(-3000)).toBe(0);
}

describe.each(FLAVOURS)('no silent loss on %s', (flavour) => {
  const ids = (base: number) => base + (flavour === 'mysql' ? 0 : 50);

  it('a TRUNCATE while the hand-off filter is active leaves the consumer with exactly the table', async () => {
    const tables: Table[] = [{ table: 'orders', key: 'int', rows: 3000 }];
    const s = await setup(flavour, ids(7300), tables);
    // Chunks are read slowly, so the TRUNCATE falls between chunk reads: chunks read after it have a high
    // watermark past it, and rows written after it land in chunks not read yet as well as in chunks already read.
    const sync = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CHUNK_DELAY_MS: '60' });
    await sync.waitForLog(() => sync.count('chunk done') >= 4);
    await s.conn.query('TRUNCATE TABLE orders');
    for (const id of [1, 500, 1500, 2500, 2999, 5000])
      await s.conn.query('INSERT INTO orders (id, version, payload, amount) VALUES (?, 1, ?, 1.50)', [id, `after truncate ${id}`]);
    await s.conn.query('UPDATE orders SET version = version + 1, payload = ? WHERE id IN (500, 2500)', ['updated']);
    await sync.waitForLog((l) => l.msg === 'streaming');
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    await syncUntilCaughtUp(s.config);
    await expectConsistent(s, tables);
    await s.conn.end();
  });

  it('resumes after a kill between the last chunk commit and the recording of the stream start', async () => {
    const tables: Table[] = [{ table: 'orders', key: 'int', rows: 1000 }];
    const s = await setup(flavour, ids(7310), tables);
    const writer = startWriter(urlOf(flavour), s.db, tables, { tps: 200, seed: 3 });
    const killed = await runTidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CRASH_AT: 'stream-start' }, 60_000);
    expect(killed.signal, killed.stderr.slice(-2000)).toBe('SIGKILL');
    // Killed there, not by the timeout: every chunk was committed, the stream never started.
    expect(killed.logs.filter((l) => l.msg === 'chunk done').length).toBeGreaterThanOrEqual(5);
    expect(killed.logs.some((l) => l.msg === 'snapshot complete' || l.msg === 'streaming')).toBe(false);
    await writer.stop();
    await syncUntilCaughtUp(s.config);
    await expectConsistent(s, tables);
    await s.conn.end();
  });

  it('resumes when a table with pending chunks was removed from source.tables', async () => {
    const tables: Table[] = [
      { table: 'kept', key: 'int', rows: 400 },
      { table: 'dropped', key: 'int', rows: 4000 },
    ];
    const s = await setup(flavour, ids(7320), tables);
    const sync = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CHUNK_DELAY_MS: '30' });
    await sync.waitForLog((l) => l.msg === 'chunk done' && String(l.table).endsWith('.dropped'));
    expect((await sync.kill('SIGKILL')).signal).toBe('SIGKILL');
    const kept = tables.slice(0, 1);
    writeConfig(s.dir, {
      name: 'loss',
      source: { ...sourceFromUrl(urlOf(flavour)), serverId: ids(7320), tables: [`${s.db}.kept`] },
      snapshot: { mode: 'initial', chunkSize: 200, parallelism: 1 },
      checkpoint: { path: join(s.dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: s.out },
      commit: { maxRecords: 1000, maxDelayMs: 100 },
    });
    await s.conn.query('UPDATE kept SET version = version + 1 WHERE id < 10');
    await syncUntilCaughtUp(s.config);
    const keptOnly = readJsonl(s.out).filter((l) => l.topic.endsWith('.kept'));
    const { source, keyColumns } = await sourceState(s.conn, s.db, kept);
    const report = checkConsistency(keptOnly, source, { keyColumns, allowUnpairedMoves: true });
    expect(report.ok, formatReport(report)).toBe(true);
    await s.conn.end();
  });
});

// zongji cannot decode compressed transactions or partial JSON updates. A session can turn either on while the
// server's default is off, so tidemark must stop at the first such event, before any later change, not skip it.
describe('binlog events tidemark cannot decode (MySQL)', () => {
  async function streaming(serverId: number): Promise<JsonlSetup & { sync: ReturnType<typeof tidemark> }> {
    const { db, conn } = await freshDatabase(urlOf('mysql'), 'undecodable');
    await conn.query('CREATE TABLE t (id INT PRIMARY KEY, doc JSON NOT NULL, version INT NOT NULL)');
    await conn.query(`INSERT INTO t VALUES (1, '{"a": 1, "pad": "${'x'.repeat(200)}"}', 1)`);
    const dir = tempDir();
    const out = join(dir, 'out.jsonl');
    const config = writeConfig(dir, {
      name: 'undecodable',
      source: { ...sourceFromUrl(urlOf('mysql')), serverId, tables: [`${db}.t`] },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: out },
      commit: { maxRecords: 100, maxDelayMs: 50 },
    });
    const sync = tidemark(['sync', '-c', config]);
    await sync.waitForLog((l) => l.msg === 'streaming');
    return { db, conn, dir, config, out, sync };
  }

  const ids = (s: JsonlSetup) =>
    readJsonl(s.out)
      .filter((l) => l.value !== null && l.value.op !== 'r')
      .map((l) => l.value!.after?.id);

  it('stops at a compressed transaction with the setting named, and emits nothing after it', async () => {
    const s = await streaming(7340);
    await s.conn.query('INSERT INTO t VALUES (2, \'{"a": 2}\', 1)');
    await s.conn.query('SET SESSION binlog_transaction_compression = ON');
    await s.conn.query('INSERT INTO t VALUES (3, \'{"a": 3}\', 1)');
    await s.conn.query('SET SESSION binlog_transaction_compression = OFF');
    await s.conn.query('INSERT INTO t VALUES (4, \'{"a": 4}\', 1)');
    const exit = await Promise.race([s.sync.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    expect(exit, s.sync.stderr.slice(-2000)).toEqual({ code: 1, signal: null });
    expect(s.sync.stderr).toMatch(/binlog_transaction_compression/);
    expect(s.sync.stderr).toMatch(/stopped instead of skipping/);
    expect(ids(s)).toEqual([2]);
    await s.conn.end();
  });

  it('stops at a partial JSON update with the setting named, and emits nothing after it', async () => {
    const s = await streaming(7345);
    await s.conn.query('SET SESSION binlog_row_value_options = PARTIAL_JSON');
    await s.conn.query("UPDATE t SET doc = JSON_SET(doc, '$.a', 5), version = version + 1 WHERE id = 1");
    await s.conn.query("SET SESSION binlog_row_value_options = ''");
    await s.conn.query('INSERT INTO t VALUES (6, \'{"a": 6}\', 1)');
    const exit = await Promise.race([s.sync.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    expect(exit, s.sync.stderr.slice(-2000)).toEqual({ code: 1, signal: null });
    expect(s.sync.stderr).toMatch(/binlog_row_value_options/);
    expect(ids(s)).toEqual([]);
    await s.conn.end();
  });

  it('refuses to start while the server compresses transactions, naming the fix and writing nothing', async () => {
    const { db, conn } = await freshDatabase(urlOf('mysql'), 'undecodable');
    await conn.query('CREATE TABLE t (id INT PRIMARY KEY)');
    const dir = tempDir();
    const config = writeConfig(dir, {
      name: 'undecodable',
      source: { ...sourceFromUrl(urlOf('mysql')), serverId: 7348, tables: [`${db}.t`] },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: join(dir, 'out.jsonl') },
    });
    await conn.query('SET GLOBAL binlog_transaction_compression = ON');
    try {
      const run = await runTidemark(['sync', '-c', config, '--until-caught-up']);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/binlog_transaction_compression=ON.*SET PERSIST binlog_transaction_compression = OFF/);
      expect(existsSync(join(dir, 'checkpoint.sqlite'))).toBe(false);
      expect(existsSync(join(dir, 'out.jsonl'))).toBe(false);
    } finally {
      await conn.query('SET GLOBAL binlog_transaction_compression = OFF');
      await conn.end();
    }
  });
});
