import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConsistencyReport, checkConsistency, formatReport } from '../../support/consistency.js';
import { FLAVOURS, freshDatabase, urlOf } from '../../support/db.js';
import { asOutputLines, dataTopics, privateBroker, readCommitted } from '../../support/kafka.js';
import { OUTAGE_MS, privateServer, RESTART_TABLES, RestartHarness, type Stop } from '../../support/private-server.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter, type Writer } from '../../support/workload.js';

/**
 * Servers restart under a running sync (issue 12 item 8). The source: mysqld stopped in order (SIGTERM) or killed
 * (kill -9) mid-snapshot, between two chunk reads and mid-stream, under a writer, and started again a few seconds
 * later on the same datadir; the same tidemark process rides it out, exits only when told to, and its jsonl output
 * then equals the source, every change once. Each flavour's server is one of the fault tests' own
 * (scripts/test-servers.sh `<flavour>-fault`); test/faults/quick/server-restart.test.ts has MariaDB's kill -9
 * between chunk reads. The sink: a Kafka broker of the test's own stopped while a transaction of tidemark's is open.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const STOPS: Stop[] = ['SIGTERM', 'kill -9'];
const SNAPSHOT_ROWS = RESTART_TABLES.reduce((n, t) => n + t.rows, 0);

describe.each(FLAVOURS)('the source server restarts under a running sync (%s)', (flavour) => {
  let h: RestartHarness;

  beforeAll(async () => {
    h = new RestartHarness(await privateServer(flavour), 8700 + (flavour === 'mysql' ? 0 : 40));
  }, 300_000);
  afterEach(() => h.cleanUp());
  afterAll(() => h?.server.down());

  it.each(STOPS)('mid-snapshot, stopped with %s: the snapshot resumes once the server is back, no row lost or repeated', async (how) => {
    const s = await h.setup();
    const w1 = h.writer(s.db, 41);
    // Stretched chunk reads: the snapshot is still running seconds after its first chunks.
    const sync = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CHUNK_DELAY_MS: '150' });
    await sync.waitForLog(() => sync.count('chunk done') >= 4);
    expect(sync.count('snapshot complete')).toBe(0);
    await h.restart(how, w1);
    const w2 = h.writer(s.db, 42);
    await sync.waitForLog((l) => l.msg === 'snapshot complete', 150_000);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(2000);
    expect((await h.stopWriter(w2)).updates).toBeGreaterThan(50);
    // The outage hit chunk reads in flight, which were read again once the server was back.
    expect(sync.stderr).toContain('source connection lost while reading a chunk; reading it again');
    expect(sync.count('source reconnected')).toBeGreaterThan(0);
    const report = await h.expectCaughtUp(sync, s);
    expect(report.counts.events.r).toBeGreaterThanOrEqual(SNAPSHOT_ROWS - 1000);
  });

  if (flavour === 'mysql') {
    // MariaDB's twin is in test/faults/quick/server-restart.test.ts.
    it('between chunk reads (the next chunk bound being read from the index), killed with kill -9: the snapshot waits for the server', async () => {
      const report = await h.killBetweenChunkReads();
      expect(report.counts.events.r).toBeGreaterThanOrEqual(SNAPSHOT_ROWS - 1000);
    });
  }

  it.each(STOPS)('mid-stream, stopped with %s under a writer: the stream reconnects and resumes with no gap and no duplicate', async (how) => {
    const s = await h.setup();
    const w1 = h.writer(s.db, 51);
    const sync = tidemark(['sync', '-c', s.config]);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(2000);
    await h.restart(how, w1);
    const w2 = h.writer(s.db, 52);
    await sync.waitForLog((l) => l.msg === 'binlog reconnected', 120_000);
    await sleep(2000);
    const stats = await h.stopWriter(w2);
    expect(stats.updates).toBeGreaterThan(50);
    expect(sync.count('binlog connection lost; reconnecting')).toBeGreaterThan(0);
    const report = await h.expectCaughtUp(sync, s);
    // Every update after the restart is in the stream as one (the version check says none twice, none skipped).
    expect(report.counts.events.u).toBeGreaterThanOrEqual(stats.updates);
  });

  it.each(['mid-snapshot', 'mid-stream'] as const)(
    'stopped by its operator while the server is away %s: tidemark exits 0 promptly, and a new run resumes with no gap and no duplicate',
    async (when) => {
      const s = await h.setup();
      const w1 = h.writer(s.db, 56);
      const sync = tidemark(['sync', '-c', s.config], when === 'mid-snapshot' ? { TIDEMARK_TEST_CHUNK_DELAY_MS: '150' } : {});
      if (when === 'mid-snapshot') await sync.waitForLog(() => sync.count('chunk done') >= 4);
      else await sync.waitForLog((l) => l.msg === 'streaming');
      await sleep(1000);
      await h.server.kill();
      await h.stopWriter(w1).catch(() => {});
      await sync.waitForLog((l) => /source connection lost|binlog connection lost/.test(String(l.msg)), 30_000);
      // Waiting for the server must not keep a stop from ending the run.
      const exit = await Promise.race([sync.kill('SIGTERM'), sleep(20_000).then(() => ({ code: 'still running after 20 s' }))]);
      expect(exit.code, sync.stderr.slice(-3000)).toBe(0);
      await h.server.up();
      const w2 = h.writer(s.db, 57);
      await sleep(2000);
      await h.stopWriter(w2);
      const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
      expect(finish.code, finish.stderr.slice(-3000)).toBe(0);
      const report = await h.check(s);
      if (report instanceof Error) throw report;
      expect(report.ok, formatReport(report)).toBe(true);
      expect(report.counts.events.r).toBeGreaterThanOrEqual(SNAPSHOT_ROWS - 1000);
    },
  );
});

describe('the Kafka broker restarts mid-commit', () => {
  const KAFKA_TABLES: { table: string; key: KeyKind; rows: number }[] = [
    // Fewer rows than a transaction the sink gets in parts (SPOOL_PART_CHANGES): this one is committed, and retried, whole.
    { table: 'orders', key: 'int', rows: 8_000 },
    { table: 'customers', key: 'string', rows: 2_000 },
  ];
  const kafkaWriterTables = KAFKA_TABLES.map((t) => ({ table: t.table, key: t.key }));
  let serverId = 8790;

  /** The read_committed view of the data topics against the source: the consistency check of ARCHITECTURE §7. */
  async function check(conn: mysql.Connection, db: string, brokers: string, prefix: string): Promise<ConsistencyReport> {
    const topics = await dataTopics(brokers, prefix);
    const { source, keyColumns } = await sourceState(conn, db, KAFKA_TABLES);
    return checkConsistency(asOutputLines(await readCommitted(brokers, topics)), source, { keyColumns, allowUnpairedMoves: true });
  }

  it.each(STOPS)(
    'stopped with %s while a Kafka transaction of tidemark is open: the commit is retried on a new producer, read_committed sees every change once',
    async (how) => {
      const broker = await privateBroker();
      // The broker is stopped and started: it must be one of this test's own, which only the local test servers give.
      if (!broker) throw new Error('this test needs the local test servers (scripts/test-servers.sh): it stops and starts a private Kafka broker');
      const { db, conn } = await freshDatabase(urlOf('mysql'), 'kafkarestart');
      const writers: Writer[] = [];
      try {
        for (const t of KAFKA_TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
        const dir = tempDir('tidemark-broker-restart-');
        const name = `restart-${randomBytes(4).toString('hex')}`;
        const prefix = `${name}-out`;
        serverId += 5;
        const config = writeConfig(dir, {
          name,
          source: { ...sourceFromUrl(urlOf('mysql')), serverId, tables: [`${db}.*`] },
          snapshot: { mode: 'initial', chunkSize: 2000, parallelism: 2 },
          checkpoint: { path: join(dir, 'checkpoint.sqlite') },
          sink: { type: 'kafka', brokers: [broker.brokers], topicPrefix: prefix, topic: { partitions: 2 } },
          commit: { maxRecords: 2000, maxDelayMs: 200 },
        });
        // The snapshot first, so the first transaction of the run below carries the stream's first change.
        const snapshot = await runTidemark(['sync', '-c', config, '--until-caught-up']);
        expect(snapshot.code, snapshot.stderr.slice(-3000)).toBe(0);
        // One source transaction of 8,000 updates: one Kafka transaction of many produce requests (source transactions stay whole).
        await conn.query(`UPDATE \`${db}\`.orders SET version = version + 1, payload = 'bulk'`);
        const release = join(dir, 'release-pause');
        const sync = tidemark(['sync', '-c', config], { TIDEMARK_TEST_PAUSE_AT: 'kafka-transaction', TIDEMARK_TEST_PAUSE_UNTIL: release });
        const w1 = startWriter(urlOf('mysql'), db, kafkaWriterTables, { tps: 150, seed: 61 });
        writers.push(w1);
        // The transaction is open on the broker with its first produce request written, the rest still to send.
        await sync.waitForLog((l) => l.msg === 'test pause');
        if (how === 'SIGTERM') await broker.down();
        else await broker.kill();
        writeFileSync(release, '');
        await sync.waitForLog((l) => l.msg === 'kafka: commit failed; retrying on a new producer');
        await sleep(OUTAGE_MS);
        await broker.up();
        await sleep(3000);
        const stats = await w1.stop();
        writers.length = 0;
        expect(stats.updates).toBeGreaterThan(50);

        // The same process commits the interrupted transaction and everything after it: nothing is lost, nothing doubled.
        const deadline = Date.now() + 150_000;
        let report = await check(conn, db, broker.brokers, prefix);
        while (!report.ok) {
          expect(sync.child.exitCode, `tidemark exited after the broker restart:\n${sync.stderr.slice(-4000)}`).toBeNull();
          if (Date.now() > deadline) throw new Error(`read_committed did not catch up within 150 s: ${formatReport(report)}\n${sync.stderr.slice(-4000)}`);
          await sleep(2000);
          report = await check(conn, db, broker.brokers, prefix);
        }
        expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-3000)).toBe(0);
        report = await check(conn, db, broker.brokers, prefix);
        expect(report.ok, formatReport(report)).toBe(true);
        expect(report.counts.events.r).toBe(10_000);
        // Every row's bulk update, once, besides the writer's.
        expect(report.counts.events.u).toBeGreaterThanOrEqual(8_000 + stats.updates);
      } finally {
        for (const w of writers) await w.stop().catch(() => {});
        await conn.end();
        await broker.remove();
      }
    },
  );
});
