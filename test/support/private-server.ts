import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { expect } from 'vitest';
import { type ConsistencyReport, checkConsistency, formatReport, readJsonl } from './consistency.js';
import { type Flavour, freshDatabase } from './db.js';
import { sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from './tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter, type Writer, type WriterStats } from './workload.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/test-servers.sh', import.meta.url));

/**
 * A server of one flavour that only the fault tests use (scripts/test-servers.sh `mysql-fault` / `mariadb-fault`):
 * stopped and killed under a running sync, and started again on the same datadir, without disturbing the shared
 * servers every other test runs against.
 */
export interface PrivateServer {
  url: string;
  /** Starts it (again) and waits until it answers. */
  up(): Promise<void>;
  /** SIGTERM, as an orderly shutdown: resolves once the process is gone. */
  down(): Promise<void>;
  /** kill -9, as a crash: resolves once the process is gone. */
  kill(): Promise<void>;
}

async function script(...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)('bash', [SCRIPT, ...args], { maxBuffer: 16 << 20 }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`test-servers.sh ${args.join(' ')} failed:\n${err.stderr ?? err.message}`);
  });
  return stdout;
}

/** Starts the flavour's fault server (seconds once installed) and returns its handle. */
export async function privateServer(flavour: Flavour): Promise<PrivateServer> {
  const name = `${flavour}-fault`;
  await script('up', name);
  const key = `TIDEMARK_TEST_${flavour.toUpperCase()}_FAULT_URL=`;
  const line = (await script('env')).split('\n').find((l) => l.startsWith(key));
  if (!line) throw new Error(`test-servers.sh env names no ${key.slice(0, -1)}`);
  return {
    url: line.slice(key.length),
    up: () => script('up', name).then(() => {}),
    down: () => script('down', name).then(() => {}),
    kill: () => script('kill', name).then(() => {}),
  };
}

/** The tables of a restart case: an integer key split by arithmetic, a string key whose chunk bounds come from the index. */
export const RESTART_TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 6_000 },
  { table: 'customers', key: 'string', rows: 2_000 },
];

/** How long the server stays away: longer than the first reconnect backoffs, so tidemark retries through the outage. */
export const OUTAGE_MS = 4000;

export type Stop = 'SIGTERM' | 'kill -9';

export interface RestartSetup {
  db: string;
  dir: string;
  config: string;
  out: string;
}

/**
 * A sync writing jsonl from a private server that a test stops or kills and starts again, with writers on it and the
 * check that the output of the process that saw the restart ends up equal to the source, every change once.
 */
export class RestartHarness {
  private readonly writers: Writer[] = [];

  constructor(
    readonly server: PrivateServer,
    private serverId: number,
  ) {}

  /** Fresh workload tables on the server and a jsonl config capturing them. No connection is kept: the server goes away. */
  async setup(): Promise<RestartSetup> {
    const { db, conn } = await freshDatabase(this.server.url, 'restart');
    try {
      for (const t of RESTART_TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
      await conn.query(`ANALYZE TABLE ${RESTART_TABLES.map((t) => `\`${db}\`.\`${t.table}\``).join(', ')}`);
    } finally {
      await conn.end();
    }
    const dir = tempDir('tidemark-restart-');
    const out = join(dir, 'out.jsonl');
    this.serverId += 5;
    const config = writeConfig(dir, {
      name: 'restart',
      source: { ...sourceFromUrl(this.server.url), serverId: this.serverId, tables: [`${db}.*`] },
      snapshot: { mode: 'initial', chunkSize: 200, parallelism: 2 },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: out },
      commit: { maxRecords: 1000, maxDelayMs: 100 },
    });
    return { db, dir, config, out };
  }

  writer(db: string, seed: number): Writer {
    const w = startWriter(
      this.server.url,
      db,
      RESTART_TABLES.map((t) => ({ table: t.table, key: t.key })),
      { tps: 150, seed },
    );
    this.writers.push(w);
    return w;
  }

  async stopWriter(w: Writer): Promise<WriterStats> {
    this.writers.splice(this.writers.indexOf(w), 1);
    return w.stop();
  }

  /**
   * Stops the server as asked under the writer, whose connection dies with it: it fails (its last statement may or
   * may not have committed: the source, not the writer, is what the output is checked against).
   */
  async restart(how: Stop, w: Writer): Promise<void> {
    if (how === 'SIGTERM') await this.server.down();
    else await this.server.kill();
    await this.restartAfter(w);
  }

  /** The server is down: the writer's failure is let go, and the server started again after the outage. */
  async restartAfter(w: Writer): Promise<void> {
    await this.stopWriter(w).catch(() => {});
    await sleep(OUTAGE_MS);
    await this.server.up();
  }

  /** The output against the source as it is now; a line being written (torn) counts as not there yet. */
  async check(s: RestartSetup): Promise<ConsistencyReport | Error> {
    const conn = await mysql.createConnection({ uri: this.server.url });
    try {
      const { source, keyColumns } = await sourceState(conn, s.db, RESTART_TABLES);
      return checkConsistency(readJsonl(s.out), source, { keyColumns, allowUnpairedMoves: true });
    } catch (err) {
      return err as Error;
    } finally {
      await conn.end();
    }
  }

  /**
   * Waits until the running process's output equals the source (the writers are stopped): the process that saw the
   * restart catches up by itself, no new run does it for it. Then it stops on SIGTERM with exit code 0.
   */
  async expectCaughtUp(sync: TidemarkProcess, s: RestartSetup): Promise<ConsistencyReport> {
    const deadline = Date.now() + 150_000;
    for (;;) {
      expect(sync.child.exitCode, `tidemark exited after the restart:\n${sync.stderr.slice(-4000)}`).toBeNull();
      const report = await this.check(s);
      if (!(report instanceof Error) && report.ok) break;
      if (Date.now() > deadline) {
        const why = report instanceof Error ? report.message : formatReport(report);
        throw new Error(`the output did not catch up with the source within 150 s: ${why}\n${sync.stderr.slice(-4000)}`);
      }
      await sleep(1000);
    }
    expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-3000)).toBe(0);
    // What the stop flushed changes nothing: the output is still the source, every change once.
    const final = await this.check(s);
    if (final instanceof Error) throw final;
    expect(final.ok, formatReport(final)).toBe(true);
    return final;
  }

  /**
   * The server killed (kill -9) while the snapshot is between two chunk reads, reading the next chunk bound of the
   * string-keyed table from its index (TIDEMARK_TEST_PAUSE_AT holds it there), under a writer; started again after the
   * outage. The same process finishes the snapshot, streams, and its output equals the source.
   */
  async killBetweenChunkReads(): Promise<ConsistencyReport> {
    const s = await this.setup();
    const release = join(s.dir, 'release-pause');
    const w1 = this.writer(s.db, 46);
    const sync = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_PAUSE_AT: 'chunk-split@5', TIDEMARK_TEST_PAUSE_UNTIL: release });
    await sync.waitForLog((l) => l.msg === 'test pause');
    await this.server.kill();
    writeFileSync(release, '');
    await this.restartAfter(w1);
    const w2 = this.writer(s.db, 47);
    await sync.waitForLog((l) => l.msg === 'snapshot complete', 150_000);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(2000);
    expect((await this.stopWriter(w2)).updates).toBeGreaterThan(50);
    return this.expectCaughtUp(sync, s);
  }

  /** After each test: a test that failed while the server was away must not leave it away, nor writers running. */
  async cleanUp(): Promise<void> {
    await this.server.up();
    for (const w of this.writers.splice(0)) await w.stop().catch(() => {});
  }
}
