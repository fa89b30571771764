import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase } from '../support/db.js';
import { runTidemark, sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, sourceState, startWriter, type Writer, type WriterTable } from '../support/workload.js';

/**
 * Failover to a real replica (issue 12, item 7): each flavour's pair from scripts/test-servers.sh, a primary and a
 * replica replicating from it by GTID. The pair is emptied before each test; the primary's binlog is then in a
 * later file than the replica's, so a file name or position of one server taken for the other's shows.
 */

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../scripts/test-servers.sh', import.meta.url));
const script = (...args: string[]) => run('bash', [SCRIPT, ...args], { maxBuffer: 16 << 20 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const TABLES: WriterTable[] = [
  { table: 'items', key: 'int' },
  { table: 'codes', key: 'string' },
];

let env: Record<string, string> = {};

beforeAll(async () => {
  // Only this file needs the pairs: they are started here (in seconds once installed), not by every test run.
  await script('up', 'mysql-replica', 'mariadb-replica');
  const { stdout } = await script('env');
  env = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]),
  );
}, 900_000);

describe.each(FLAVOURS)('failover to a promoted replica (%s)', (flavour) => {
  const id = (n: number) => n + (flavour === 'mysql' ? 0 : 50);
  const upper = flavour.toUpperCase();
  let cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    cleanup = [];
  });

  /** An emptied pair with the workload tables on the primary (and, replicated, on the replica). */
  async function pair(serverId: number) {
    await script('reset-replica', flavour);
    const primaryUrl = env[`TIDEMARK_TEST_${upper}_SOURCE_URL`]!;
    const replicaUrl = env[`TIDEMARK_TEST_${upper}_REPLICA_URL`]!;
    const { db, conn: primary } = await freshDatabase(primaryUrl, 'fo');
    const replica = await mysql.createConnection({ uri: replicaUrl, multipleStatements: true });
    cleanup.push(
      () => primary.end(),
      () => replica.end(),
    );
    await createWorkloadTable(primary, db, 'items', { rows: 600, key: 'int' });
    await createWorkloadTable(primary, db, 'codes', { rows: 200, key: 'string' });
    const dir = tempDir('tidemark-failover-');
    const out = join(dir, 'out.jsonl');
    const checkpoint = join(dir, 'checkpoint.sqlite');
    /** Writes the config for the given server (the same file: the operator edits it at a failover). */
    const configFor = (url: string, other = '') =>
      writeConfig(
        dir,
        {
          name: 'fo',
          source: { ...sourceFromUrl(url), serverId, tables: TABLES.map((t) => `${db}.${t.table}`), heartbeatTimeoutMs: 3000 },
          snapshot: { chunkSize: 150, parallelism: 2 },
          checkpoint: { path: join(dir, `${other}checkpoint.sqlite`) },
          sink: { type: 'jsonl', path: join(dir, `${other}out.jsonl`) },
          commit: { maxRecords: 400, maxDelayMs: 100 },
        },
        `${other}tidemark.yaml`,
      );
    const writer = (url: string, seed: number): Writer => {
      const w = startWriter(url, db, TABLES, { tps: 150, seed });
      cleanup.push(() => w.stop());
      return w;
    };
    const sync = (url: string, extraEnv: NodeJS.ProcessEnv = {}): TidemarkProcess => {
      const p = tidemark(['sync', '-c', configFor(url)], extraEnv);
      cleanup.push(() => p.kill('SIGKILL'));
      return p;
    };
    /** `other`: a second connector beside the first, with its own checkpoint and output. */
    const syncUntilCaughtUp = async (url: string, extraEnv: NodeJS.ProcessEnv = {}, other = '') =>
      runTidemark(['sync', '-c', configFor(url, other), '--until-caught-up'], extraEnv);

    /** Waits until the replica has applied everything the primary has committed. */
    const replicated = async () => {
      const sql = flavour === 'mysql' ? 'SELECT @@GLOBAL.gtid_executed AS g' : 'SELECT @@GLOBAL.gtid_binlog_pos AS g';
      const [rows] = await primary.query(sql);
      const g = (rows as { g: string }[])[0]!.g;
      const wait = flavour === 'mysql' ? 'SELECT WAIT_FOR_EXECUTED_GTID_SET(?, 30) AS r' : 'SELECT MASTER_GTID_WAIT(?, 30) AS r';
      const [res] = await replica.query(wait, [g]);
      expect(Number((res as { r: number | string }[])[0]!.r), 'the replica did not catch up').toBe(0);
    };

    /** What an operator does at a failover: replication stopped and forgotten, writes accepted. */
    const promote = async () => {
      await replica.query(
        flavour === 'mysql' ? 'STOP REPLICA; RESET REPLICA ALL; SET GLOBAL read_only = OFF' : 'STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = OFF',
      );
    };

    const expectConsistentWith = async (conn: mysql.Connection) => {
      const { source, keyColumns } = await sourceState(conn, db, TABLES);
      const report = checkConsistency(readJsonl(out), source, { keyColumns, allowUnpairedMoves: true });
      expect(report.ok, formatReport(report)).toBe(true);
      return report;
    };

    return { db, primary, replica, primaryUrl, replicaUrl, out, checkpoint, writer, sync, syncUntilCaughtUp, replicated, promote, expectConsistentWith };
  }

  /** The checkpoint's stored source, stream position and commit count, read without tidemark. */
  const checkpointState = (path: string) => {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return db.prepare("SELECT key, value FROM meta WHERE key NOT IN ('last_commit_ms') ORDER BY key").all();
    } finally {
      db.close();
    }
  };

  it('the primary stops under a writer and the promoted replica takes over: no gap and no duplicate, through a crash before the first commit and reconnects', async () => {
    const p = await pair(id(9300));
    const w1 = p.writer(p.primaryUrl, 71);
    const first = p.sync(p.primaryUrl);
    await first.waitForLog((l) => l.msg === 'streaming');
    await sleep(1000);
    await w1.stop();
    await p.replicated();
    // The primary goes away while tidemark streams from it; tidemark keeps trying to reconnect to it. It closes
    // every connection as its shutdown begins; the rest of the shutdown runs meanwhile.
    const stopped = script('down', `${flavour}-source`);
    cleanup.push(() => stopped);
    await first.waitForLog((l) => l.msg === 'binlog connection lost; reconnecting', 15_000);
    expect((await first.kill('SIGTERM')).code, first.stderr.slice(-2000)).toBe(0);

    await p.promote();
    // Writes go to the new primary from now on, under GTIDs of its own beside the old primary's.
    const w2 = p.writer(p.replicaUrl, 72);
    // Killed after checking the new server and planning, before anything is committed on it: the checkpoint must
    // not yet take the old server's file/pos for the new one's.
    const crashed = await p.syncUntilCaughtUp(p.replicaUrl, { TIDEMARK_TEST_CRASH_AT: 'planned' });
    expect(crashed.signal, crashed.stderr.slice(-2000)).toBe('SIGKILL');
    expect(crashed.logs.some((l) => l.msg === 'source server changed; resuming by GTID position')).toBe(true);
    // The binlog connection to the new primary is lost before anything arrives on it: the reconnect must resume
    // from the checkpoint's GTIDs, not from a position of the old server, or none.
    const second = p.sync(p.replicaUrl, { TIDEMARK_TEST_DROP_AT: 'binlog-start' });
    await second.waitForLog((l) => l.msg === 'binlog reconnected', 60_000);
    expect(second.logs.some((l) => l.msg === 'source server changed; resuming by GTID position')).toBe(true);
    await sleep(1000);
    expect(second.child.exitCode, second.stderr.slice(-2000)).toBe(null);
    // And once more after the first commits on the new primary, by the server this time.
    await killBinlogDump(p.replica, flavour);
    await second.waitForLog(() => second.count('binlog reconnected') === 2, 30_000);
    await sleep(500);
    await w2.stop();
    expect((await second.kill('SIGTERM')).code, second.stderr.slice(-2000)).toBe(0);
    const finish = await p.syncUntilCaughtUp(p.replicaUrl);
    expect(finish.code, finish.stderr.slice(-2000)).toBe(0);
    const report = await p.expectConsistentWith(p.replica);
    expect(report.counts.events.u).toBeGreaterThan(0);
  });

  it('a checkpoint with nothing committed yet: starting against the replica snapshots it', async () => {
    const p = await pair(id(9320));
    const crashed = await p.syncUntilCaughtUp(p.primaryUrl, { TIDEMARK_TEST_CRASH_AT: 'planned' });
    expect(crashed.signal, crashed.stderr.slice(-2000)).toBe('SIGKILL');
    await p.replicated();
    await p.promote();
    const w = p.writer(p.replicaUrl, 75);
    await sleep(500);
    await w.stop();
    const finish = await p.syncUntilCaughtUp(p.replicaUrl);
    expect(finish.code, finish.stderr.slice(-2000)).toBe(0);
    expect(finish.logs.some((l) => l.msg === 'source server changed before anything was committed; starting afresh on this server')).toBe(true);
    await p.expectConsistentWith(p.replica);
  });

  it('refused, touching nothing: a checkpoint holding transactions the new server lacks, and one whose snapshot is not handed off yet', async () => {
    const p = await pair(id(9330));
    await p.replicated();
    // Replication stops first: what is written next reaches the checkpoint but never the replica.
    await p.replica.query(flavour === 'mysql' ? 'STOP REPLICA' : 'STOP SLAVE');
    const w = p.writer(p.primaryUrl, 76);
    await sleep(500);
    await w.stop();
    const synced = await p.syncUntilCaughtUp(p.primaryUrl);
    expect(synced.code, synced.stderr.slice(-2000)).toBe(0);
    // A second connector has committed its snapshot's chunks, but not where its stream starts (a position of the primary).
    const unfinished = await p.syncUntilCaughtUp(p.primaryUrl, { TIDEMARK_TEST_CRASH_AT: 'stream-start' }, 'unfinished-');
    expect(unfinished.signal, unfinished.stderr.slice(-2000)).toBe('SIGKILL');
    await p.promote();
    const handoff = await p.syncUntilCaughtUp(p.replicaUrl, {}, 'unfinished-');
    expect(handoff.code, handoff.stderr.slice(-2000)).toBe(1);
    expect(handoff.stderr).toMatch(/the source server changed while the snapshot of .*items.* was not yet handed off to the stream/);
    const before = { out: readFileSync(p.out), checkpoint: checkpointState(p.checkpoint) };
    const refused = await p.syncUntilCaughtUp(p.replicaUrl);
    expect(refused.code, refused.stderr.slice(-2000)).toBe(1);
    expect(refused.stderr).toMatch(/no GTID position that this server has executed/);
    expect(readFileSync(p.out).equals(before.out)).toBe(true);
    expect(checkpointState(p.checkpoint)).toEqual(before.checkpoint);
  });
});

/** Ends tidemark's binlog connection on the server, as a dropped network connection would. */
async function killBinlogDump(conn: mysql.Connection, flavour: Flavour): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [rows] = await conn.query('SHOW PROCESSLIST');
    const dump = (rows as { Id: number; Command: string; User: string }[]).find((r) => /^Binlog Dump/.test(r.Command) && r.User !== 'tidemark_repl');
    if (dump) {
      await conn.query(`KILL ${dump.Id}`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`no binlog connection of tidemark on the ${flavour} server`);
    await sleep(100);
  }
}
