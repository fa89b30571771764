/**
 * Disk full (issue 12 item 8): the jsonl output's filesystem, or the checkpoint's, runs out of space while sync
 * runs under a writer. tidemark must stop with exit 1 and one message naming the file whose disk is full, leave a
 * checkpoint that agrees with the output (a torn tail past the committed length is allowed: the next start cuts
 * it), and once space is freed a restart must deliver every change exactly once.
 *
 * Each filesystem is a tmpfs of its own the test mounts (it runs as root): small enough that the snapshot fills
 * it, or filled on purpose by a filler file while the stream runs. The jsonl case runs on MySQL, the checkpoint
 * case on MariaDB, to keep the file quick.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../../support/consistency.js';
import { type Flavour, freshDatabase, urlOf } from '../../support/db.js';
import { runTidemark, sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter } from '../../support/workload.js';

const TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 3000 },
  { table: 'customers', key: 'string', rows: 1000 },
];
const writerTables = TABLES.map((t) => ({ table: t.table, key: t.key }));

interface Setup {
  db: string;
  conn: mysql.Connection;
  config: string;
  out: string;
  checkpoint: string;
}

type Paths = { out: string; checkpoint: string };

function syncConfig(flavour: Flavour, db: string, serverId: number, paths: Paths): string {
  return writeConfig(tempDir(), {
    name: 'shop',
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.*`] },
    snapshot: { mode: 'initial', chunkSize: 250, parallelism: 2 },
    checkpoint: { path: paths.checkpoint },
    sink: { type: 'jsonl', path: paths.out },
    commit: { maxRecords: 2000, maxDelayMs: 200 },
  });
}

async function setup(flavour: Flavour, serverId: number, paths: Paths): Promise<Setup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'diskfull');
  for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
  await conn.query(`ANALYZE TABLE ${TABLES.map((t) => `\`${db}\`.\`${t.table}\``).join(', ')}`);
  return { db, conn, config: syncConfig(flavour, db, serverId, paths), ...paths };
}

/** Mounts a tmpfs of `size` (mount(8) units: 1m, 512k) at a new directory, for `fn`; unmounted afterwards. */
async function withTmpfs(size: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = join(tempDir('tidemark-diskfull-'), 'fs');
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  try {
    await fn(dir);
  } finally {
    // A tidemark left running by a failed assertion still holds files there until it is killed after the test.
    try {
      execFileSync('umount', [dir]);
    } catch {
      execFileSync('umount', ['-l', dir]);
    }
  }
}

const resize = (dir: string, size: string): void => {
  execFileSync('mount', ['-o', `remount,size=${size}`, dir]);
};

const freeBytes = (dir: string): number => {
  const s = statfsSync(dir);
  return s.bavail * s.bsize;
};

/** Grows a filler file in `dir` until at most `leave` bytes are free (tidemark may be writing there meanwhile). */
function fill(dir: string, leave: number): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'a');
  const block = Buffer.alloc(64 * 1024, 'f');
  try {
    for (let room = freeBytes(dir) - leave; room > 0; room = freeBytes(dir) - leave) {
      try {
        writeSync(fd, block, 0, Math.min(block.length, room));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
        throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Resolves once the file has grown past `size`: the running stream has committed since. */
async function grows(path: string, size: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (statSync(path).size <= size) {
    if (Date.now() > deadline) throw new Error(`${path} did not grow past ${size} bytes`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function failsWith(p: TidemarkProcess, file: string, why: RegExp): Promise<void> {
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 90_000);
  const exit = await p.exited;
  clearTimeout(timer);
  expect(exit, p.stderr.slice(-3000)).toEqual({ code: 1, signal: null });
  const message = p.stderr.split('\n').find((l) => l.startsWith('tidemark: '));
  expect(message, p.stderr.slice(-3000)).toBeDefined();
  expect(message).toContain(file);
  expect(message).toMatch(why);
  // A user-facing refusal, not a crash: no stack trace.
  expect(p.stderr).not.toMatch(/\n\s+at /);
}

/**
 * What the checkpoint says is committed must be in the output, whole, and nothing more: the output's first
 * `committed` bytes are complete lines holding exactly the snapshot rows the checkpoint counts as done.
 * Returns the committed length and the output's size.
 */
function checkpointAgreesWithOutput(s: Setup): { committed: number; size: number } {
  const cp = new Database(s.checkpoint, { readonly: true, fileMustExist: true });
  let state: string;
  let snapshotRows: number;
  try {
    state = (cp.prepare("SELECT value FROM meta WHERE key = 'sink_state'").get() as { value: string } | undefined)?.value ?? '0';
    snapshotRows = (cp.prepare('SELECT COALESCE(SUM(snapshot_rows), 0) AS n FROM tables').get() as { n: number }).n;
  } finally {
    cp.close();
  }
  const committed = Number(state.split('@')[0]!.split('+')[0]);
  const bytes = readFileSync(s.out);
  expect(bytes.length).toBeGreaterThanOrEqual(committed);
  const prefix = bytes.subarray(0, committed).toString('utf8');
  expect(committed === 0 || prefix.endsWith('\n')).toBe(true);
  const lines = prefix.split('\n').slice(0, -1);
  const reads = lines.filter((l) => (JSON.parse(l) as { value: { op?: string } | null }).value?.op === 'r').length;
  expect(reads).toBe(snapshotRows);
  return { committed, size: bytes.length };
}

async function finishAndCheck(s: Setup): Promise<void> {
  const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
  expect(finish.code, finish.stderr).toBe(0);
  const { source, keyColumns } = await sourceState(s.conn, s.db, TABLES);
  const report = checkConsistency(readJsonl(s.out), source, { keyColumns, allowUnpairedMoves: true });
  expect(report.ok, formatReport(report)).toBe(true);
  expect(report.counts.events.r).toBeGreaterThanOrEqual(TABLES.reduce((n, t) => n + t.rows, 0));
}

describe('disk full', () => {
  it('jsonl output (mysql): fills in the snapshot, then in the stream; each time exit 1 naming the output, restart delivers once', async () => {
    await withTmpfs('1m', async (dir) => {
      const s = await setup('mysql', 8610, { out: join(dir, 'out.jsonl'), checkpoint: join(tempDir(), 'checkpoint.sqlite') });
      const writer = startWriter(urlOf('mysql'), s.db, writerTables, { tps: 150, seed: 3 });
      try {
        // The snapshot alone is several MiB of output: the 1 MiB filesystem fills within a chunk.
        const first = tidemark(['sync', '-c', s.config]);
        await failsWith(first, s.out, /no space left on its file system \(ENOSPC\)/);
        expect(first.count('chunk done')).toBeGreaterThan(0);
        const torn = checkpointAgreesWithOutput(s);
        // The chunk that did not fit was written in part, beyond what the checkpoint holds.
        expect(torn.size).toBeGreaterThan(torn.committed);

        resize(dir, '64m');
        const second = tidemark(['sync', '-c', s.config]);
        await second.waitForLog((l) => l.msg === 'streaming');
        await grows(s.out, statSync(s.out).size);
        // A few pages: less than a stream batch of the writer's changes, so the next batches cannot fit.
        const filler = fill(dir, 16 * 1024);
        await failsWith(second, s.out, /no space left on its file system \(ENOSPC\)/);
        expect(second.count('snapshot complete')).toBe(1);
        checkpointAgreesWithOutput(s);

        unlinkSync(filler);
      } finally {
        await writer.stop();
      }
      await finishAndCheck(s);
      await s.conn.end();
    });
  });

  it('checkpoint (mariadb): fills in the snapshot, then refuses a start on the full disk; exit 1 naming the checkpoint, restart delivers once', async () => {
    await withTmpfs('256k', async (dir) => {
      const s = await setup('mariadb', 8660, { out: join(tempDir(), 'out.jsonl'), checkpoint: join(dir, 'checkpoint.sqlite') });
      const writer = startWriter(urlOf('mariadb'), s.db, writerTables, { tps: 150, seed: 5 });
      try {
        // Every chunk adds pages to the checkpoint's write-ahead log, which the small filesystem cannot hold for long.
        const first = tidemark(['sync', '-c', s.config]);
        await failsWith(first, s.checkpoint, /no space left/i);
        expect(first.stderr).toContain(`writing the checkpoint ${s.checkpoint} failed`);
        expect(first.count('chunk done')).toBeGreaterThan(0);
        const before = checkpointAgreesWithOutput(s);

        // Started again with the disk still full (not even room for its lock file), it stops as clearly, touching nothing.
        const filler = fill(dir, 0);
        const again = tidemark(['sync', '-c', s.config]);
        await failsWith(again, s.checkpoint, /no space left/i);
        expect(again.stderr).toContain(`lock file ${s.checkpoint}.lock failed`);
        expect(checkpointAgreesWithOutput(s)).toEqual(before);

        // A new checkpoint gets the room of its lock file and no more: SQLite cannot lay the checkpoint out.
        unlinkSync(filler);
        const onePageFree = fill(dir, 4096);
        const fresh = { out: join(tempDir(), 'fresh.jsonl'), checkpoint: join(dir, 'fresh.sqlite') };
        const newcomer = tidemark(['sync', '-c', syncConfig('mariadb', s.db, 8670, fresh)]);
        await failsWith(newcomer, fresh.checkpoint, /no space left/i);
        expect(newcomer.stderr).toContain(`writing the checkpoint ${fresh.checkpoint} failed`);

        unlinkSync(onePageFree);
        resize(dir, '64m');
      } finally {
        await writer.stop();
      }
      await finishAndCheck(s);
      await s.conn.end();
    });
  });
});
