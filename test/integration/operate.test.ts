import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { processList } from '../../src/source/server.js';
import { checkConsistency, formatReport, readJsonl, selectAllCanonical } from '../support/consistency.js';
import { freshDatabase } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, startWriter } from '../support/workload.js';

const PASSWORD = 'Tide-S3cret-9x!';

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** One value of a Prometheus text exposition, by metric name and label text. */
function metric(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

describe('operating sync (MySQL)', () => {
  const url = inject('mysqlUrl');

  async function setup(serverId: number, extra: Record<string, unknown> = {}) {
    const { db, conn } = await freshDatabase(url, 'ops');
    await createWorkloadTable(conn, db, 'items', { rows: 4000, key: 'int' });
    // A password-protected account, so the logs can be searched for the password.
    await conn.query(`CREATE USER IF NOT EXISTS 'tm_ops'@'%' IDENTIFIED BY '${PASSWORD}'`);
    await conn.query(`GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'tm_ops'@'%'`);
    const dir = tempDir();
    const out = join(dir, 'out.jsonl');
    const { host, port } = sourceFromUrl(url);
    const config = writeConfig(dir, {
      name: 'ops',
      source: { url: `mysql://tm_ops:\${OPS_PASSWORD}@${host}:${port}`, serverId, tables: [`${db}.items`] },
      snapshot: { chunkSize: 200, parallelism: 2 },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: out },
      commit: { maxRecords: 500, maxDelayMs: 100 },
      ...extra,
    });
    return { db, conn, out, config, env: { OPS_PASSWORD: PASSWORD, TIDEMARK_TEST_CHUNK_DELAY_MS: '15' } };
  }

  async function expectConsistent(s: Awaited<ReturnType<typeof setup>>) {
    const source = new Map([[`${s.db}.items`, await selectAllCanonical(s.conn, s.db, 'items', ['id'])]]);
    const report = checkConsistency(readJsonl(s.out), source, { keyColumns: { [`${s.db}.items`]: ['id'] } });
    expect(report.ok, formatReport(report)).toBe(true);
  }

  it('serves Prometheus metrics that move, health and readiness, and never logs the password', async () => {
    const port = await freePort();
    const s = await setup(7900 - 100, { metrics: { port } });
    const writer = startWriter(url, s.db, [{ table: 'items', key: 'int' }], { tps: 200, seed: 5 });
    const sync = tidemark(['sync', '-c', s.config], s.env);
    await sync.waitForLog((l) => l.msg === 'streaming');
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: res.status, text: await res.text() };
    };
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    const first = (await get('/metrics')).text;
    await new Promise((r) => setTimeout(r, 1500));
    const second = (await get('/metrics')).text;
    const table = `table="${s.db}.items"`;
    const reads = readJsonl(s.out).filter((l) => l.value?.op === 'r').length;
    expect(reads).toBeGreaterThan(3900);
    expect(metric(second, 'tidemark_snapshot_rows_total', table)).toBe(reads);
    expect(metric(second, 'tidemark_snapshot_chunks_done', table)).toBe(metric(second, 'tidemark_snapshot_chunks_total', table));
    expect(metric(second, 'tidemark_stream_events_total', 'op="u"')!).toBeGreaterThan(metric(first, 'tidemark_stream_events_total', 'op="u"') ?? 0);
    expect(metric(second, 'tidemark_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(metric(second, 'tidemark_last_commit_age_seconds')).toBeLessThan(5);
    expect(metric(second, 'tidemark_reconnects_total')).toBe(0);
    // Probed at the stream's first commit: a number of bytes, small since the stream keeps up.
    expect(metric(second, 'tidemark_lag_bytes')).toBeGreaterThanOrEqual(0);
    expect(metric(second, 'tidemark_lag_bytes')).toBeLessThan(10_000_000);
    await writer.stop();
    expect((await sync.kill('SIGTERM')).code).toBe(0);

    const wrong = await runTidemark(['sync', '-c', s.config], { ...s.env, OPS_PASSWORD: `${PASSWORD}-wrong` });
    expect(wrong.code).not.toBe(0);
    for (const text of [sync.stderr, sync.stdout, wrong.stderr, wrong.stdout]) {
      expect(text).not.toContain(PASSWORD);
    }
    expect(sync.logs.length).toBeGreaterThan(5);
    await s.conn.end();
  });

  it('SIGTERM during the snapshot and during streaming exits 0 and the restart continues with no duplicate', async () => {
    const s = await setup(7900 - 80);
    const writer = startWriter(url, s.db, [{ table: 'items', key: 'int' }], { tps: 200, seed: 6 });
    const inSnapshot = tidemark(['sync', '-c', s.config], s.env);
    await inSnapshot.waitForLog(() => inSnapshot.count('chunk done') >= 4);
    const stopped = Date.now();
    expect((await inSnapshot.kill('SIGTERM')).code, inSnapshot.stderr).toBe(0);
    expect(Date.now() - stopped).toBeLessThan(10_000);
    expect(inSnapshot.logs.some((l) => l.msg === 'snapshot complete')).toBe(false);

    const inStream = tidemark(['sync', '-c', s.config], s.env);
    await inStream.waitForLog((l) => l.msg === 'streaming');
    // The second run read only the chunks the first did not commit.
    expect(inStream.count('chunk done')).toBeLessThan(20);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await inStream.kill('SIGTERM')).code, inStream.stderr).toBe(0);
    await writer.stop();
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], s.env);
    expect(finish.code, finish.stderr).toBe(0);
    await expectConsistent(s);
    const lines = readJsonl(s.out).map((l) => JSON.stringify(l));
    expect(new Set(lines).size).toBe(lines.length);
    await s.conn.end();
  });

  it('survives every one of its source connections being killed, during the snapshot and while streaming', async () => {
    const s = await setup(7900 - 60);
    const killAll = async () => {
      const ids = (await processList(s.conn)).filter((p) => p.user === 'tm_ops').map((p) => p.id);
      for (const id of ids) await s.conn.query(`KILL ${id}`).catch(() => {});
      return ids.length;
    };
    const writer = startWriter(url, s.db, [{ table: 'items', key: 'int' }], { tps: 200, seed: 8 });
    const sync = tidemark(['sync', '-c', s.config], { ...s.env, TIDEMARK_TEST_CHUNK_DELAY_MS: '40' });
    await sync.waitForLog(() => sync.count('chunk done') >= 3);
    expect(await killAll()).toBeGreaterThanOrEqual(2);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await new Promise((r) => setTimeout(r, 500));
    expect(await killAll()).toBeGreaterThanOrEqual(2);
    await sync.waitForLog((l) => l.msg === 'binlog connection lost; reconnecting');
    await new Promise((r) => setTimeout(r, 1500));
    await writer.stop();
    expect((await sync.kill('SIGTERM')).code, sync.stderr).toBe(0);
    expect(sync.logs.some((l) => l.msg === 'source connection lost while reading a chunk; reading it again')).toBe(true);
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], s.env);
    expect(finish.code, finish.stderr).toBe(0);
    await expectConsistent(s);
    await s.conn.end();
  });

  it('tidemark demo provisions MySQL, captures a busy shop, shows changes and cleans up', async () => {
    const dir = join(tempDir(), 'demo');
    const run = await runTidemark(['demo', '--seconds', '4', '--dir', dir], { TIDEMARK_TEST_MYSQL_URL: url });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/snapshot done/);
    expect(run.stdout).toMatch(/^ {2}[cud] orders /m);
    const lines = readJsonl(join(dir, 'out.jsonl'));
    // 22,000 rows, less the few the writer deleted before their chunk was read.
    expect(lines.filter((l) => l.value?.op === 'r').length).toBeGreaterThan(21_900);
    expect(lines.some((l) => l.value?.op === 'u')).toBe(true);
    const { conn } = await freshDatabase(url, 'ops');
    const [dbs] = await conn.query("SHOW DATABASES LIKE 'tidemark_demo'");
    expect(dbs).toEqual([]);
    await conn.end();
  });
});
