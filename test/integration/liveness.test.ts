import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl, selectAllCanonical } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { FaultProxy } from '../support/proxy.js';
import { runTidemark, sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, startWriter } from '../support/workload.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** One value of a Prometheus text exposition, by metric name. */
function metric(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

const HEARTBEAT_TIMEOUT_MS = 2000;

/**
 * A table of 3000 rows synced through a FaultProxy in front of the real server (the writer and the test's
 * checks go to the server directly), with a short heartbeat timeout and metrics served.
 */
async function setup(flavour: Flavour, serverId: number) {
  const url = urlOf(flavour);
  const { db, conn } = await freshDatabase(url, 'live');
  await createWorkloadTable(conn, db, 'items', { rows: 3000, key: 'int' });
  const proxy = await FaultProxy.start(sourceFromUrl(url));
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const metricsPort = await freePort();
  const { user, password } = sourceFromUrl(url);
  const config = writeConfig(dir, {
    name: 'live',
    source: { host: proxy.host, port: proxy.port, user, password, serverId, tables: [`${db}.items`], heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS },
    snapshot: { chunkSize: 200, parallelism: 2 },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: { type: 'jsonl', path: out },
    commit: { maxRecords: 500, maxDelayMs: 100 },
    metrics: { port: metricsPort },
  });
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}${path}`);
    return { status: res.status, text: await res.text() };
  };
  const expectConsistent = async () => {
    const source = new Map([[`${db}.items`, await selectAllCanonical(conn, db, 'items', ['id'])]]);
    const report = checkConsistency(readJsonl(out), source, { keyColumns: { [`${db}.items`]: ['id'] } });
    expect(report.ok, formatReport(report)).toBe(true);
  };
  return { url, db, conn, proxy, config, out, get, expectConsistent };
}

describe.each(FLAVOURS)('liveness of the source connections (%s)', (flavour) => {
  const id = (n: number) => n + (flavour === 'mysql' ? 0 : 50);
  let cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    cleanup = [];
  });
  const started = async (serverId: number) => {
    const s = await setup(flavour, serverId);
    cleanup.push(
      () => s.proxy.stop(),
      () => s.conn.end(),
    );
    return s;
  };
  const run = (s: Awaited<ReturnType<typeof setup>>, env: NodeJS.ProcessEnv = {}): TidemarkProcess => {
    const p = tidemark(['sync', '-c', s.config], env);
    cleanup.push(async () => {
      await p.kill('SIGKILL');
    });
    return p;
  };

  it('asks the server for heartbeats: an idle stream stays connected and its checkpoint stays fresh', async () => {
    const s = await started(id(8400));
    const sync = run(s);
    await sync.waitForLog((l) => l.msg === 'streaming');
    // Nothing changes on the source: only heartbeats arrive, every HEARTBEAT_TIMEOUT_MS / 3.
    await sleep(3 * HEARTBEAT_TIMEOUT_MS + 1000);
    const metrics = (await s.get('/metrics')).text;
    expect(metric(metrics, 'tidemark_last_commit_age_seconds')).toBeLessThan(2);
    expect(metric(metrics, 'tidemark_reconnects_total')).toBe(0);
    expect(sync.logs.filter((l) => String(l.msg).includes('lost'))).toEqual([]);
    expect((await s.get('/readyz')).status).toBe(200);
    expect((await sync.kill('SIGTERM')).code).toBe(0);
  });

  it('a partition while streaming, longer than the heartbeat timeout: not ready, reconnected after it heals, no gap and no duplicate', async () => {
    const s = await started(id(8410));
    const writer = startWriter(s.url, s.db, [{ table: 'items', key: 'int' }], { tps: 150, seed: 41 });
    cleanup.push(() => writer.stop().then(() => {}));
    const sync = run(s);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(500);
    s.proxy.freeze();
    const frozenAt = Date.now();
    // The connection is still open (nothing was refused or reset): only the silence tells it is dead.
    await sync.waitForLog((l) => l.msg === 'binlog connection lost; reconnecting', 4 * HEARTBEAT_TIMEOUT_MS);
    expect(Date.now() - frozenAt).toBeGreaterThanOrEqual(HEARTBEAT_TIMEOUT_MS - 200);
    expect((await s.get('/readyz')).status).toBe(503);
    await sleep(2000);
    s.proxy.thaw();
    await sync.waitForLog((l) => l.msg === 'binlog reconnected', 30_000);
    const back = sync.logs.find((l) => l.msg === 'binlog reconnected')!;
    expect(back.outageMs).toBeGreaterThan(HEARTBEAT_TIMEOUT_MS);
    expect((await s.get('/readyz')).status).toBe(200);
    expect(metric((await s.get('/metrics')).text, 'tidemark_reconnects_total')).toBe(1);
    await sleep(1000);
    await writer.stop();
    expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-2000)).toBe(0);
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(finish.code, finish.stderr.slice(-2000)).toBe(0);
    await s.expectConsistent();
  });

  it('a partition during the snapshot: the silent chunk read is given up and read again after it heals', async () => {
    const s = await started(id(8420));
    const writer = startWriter(s.url, s.db, [{ table: 'items', key: 'int' }], { tps: 150, seed: 42 });
    cleanup.push(() => writer.stop().then(() => {}));
    const sync = run(s, { TIDEMARK_TEST_CHUNK_DELAY_MS: '60' });
    await sync.waitForLog(() => sync.count('chunk done') >= 2);
    s.proxy.freeze();
    await sync.waitForLog((l) => l.msg === 'source connection lost while reading a chunk; reading it again', 4 * HEARTBEAT_TIMEOUT_MS);
    expect((await s.get('/readyz')).status).toBe(503);
    s.proxy.thaw();
    await sync.waitForLog((l) => l.msg === 'streaming', 60_000);
    expect(sync.logs.some((l) => l.msg === 'source reconnected')).toBe(true);
    await writer.stop();
    expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-2000)).toBe(0);
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(finish.code, finish.stderr.slice(-2000)).toBe(0);
    await s.expectConsistent();
  });

  it('chunk reads wait for a server that is away longer than a few retries, then go on', async () => {
    const s = await started(id(8430));
    const sync = run(s, { TIDEMARK_TEST_CHUNK_DELAY_MS: '60' });
    await sync.waitForLog(() => sync.count('chunk done') >= 2);
    // Every connection reset and every new one refused, as while mysqld restarts: for longer than the backoff's first steps add up to.
    await s.proxy.down();
    await sleep(12_000);
    expect(sync.child.exitCode).toBeNull();
    await s.proxy.up();
    await sync.waitForLog((l) => l.msg === 'streaming', 60_000);
    const lost = sync.logs.filter((l) => l.msg === 'source connection lost while reading a chunk; reading it again');
    expect(lost.length).toBeGreaterThanOrEqual(3);
    expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-2000)).toBe(0);
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(finish.code, finish.stderr.slice(-2000)).toBe(0);
    await s.expectConsistent();
  });
});
