import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { processList } from '../../src/source/server.js';
import { type ConsistencyOptions, checkConsistency, formatReport, type OutputLine, readJsonl, selectAllCanonical } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, type JsonlSetup, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, startWriter } from '../support/workload.js';

const ROWS = 300;
const TABLE = 'items';
const NAME = 'modes';

// Each sync uses serverId..serverId+parallelism; ids 10 apart keep every test (and flavour) on its own.
const serverIdOf = (flavour: Flavour, slot: number) => 7300 + slot * 20 + (flavour === 'mysql' ? 0 : 10);

interface Setup extends JsonlSetup {
  /** "db.items" */
  table: string;
}

interface SetupOptions {
  mode?: 'initial' | 'never' | 'initial_only' | 'when_needed';
  source?: Record<string, unknown>;
  /** Extra snapshot settings; a function because chunk keys name the table, whose database is made here. */
  snapshot?: (db: string) => Record<string, unknown>;
  /** Creates the captured table(s) instead of the default `items` workload table. */
  create?: (conn: mysql.Connection, db: string) => Promise<void>;
  tables?: (db: string) => string[];
}

/** A fresh database with a small `items` table (id 1..ROWS, version 1) and a config capturing it. */
async function setup(flavour: Flavour, serverId: number, opts: SetupOptions = {}): Promise<Setup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'modes');
  if (opts.create) await opts.create(conn, db);
  else await createWorkloadTable(conn, db, TABLE, { rows: ROWS, key: 'int' });
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const config = writeConfig(dir, {
    name: NAME,
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: opts.tables?.(db) ?? [`${db}.${TABLE}`], ...opts.source },
    // Small chunks so even a few hundred rows take several chunks on both connections.
    snapshot: { mode: opts.mode ?? 'initial', chunkSize: 50, parallelism: 2, ...opts.snapshot?.(db) },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: { type: 'jsonl', path: out },
    commit: { maxRecords: 500, maxDelayMs: 100 },
  });
  return { db, conn, dir, config, out, table: `${db}.${TABLE}` };
}

/** The sink's lines so far; a line torn by a write in progress counts as not there yet. */
function outputSoFar(path: string): OutputLine[] {
  if (!existsSync(path)) return [];
  try {
    return readJsonl(path);
  } catch {
    return [];
  }
}

async function waitForOutput(
  path: string,
  p: TidemarkProcess,
  what: string,
  test: (lines: OutputLine[]) => boolean,
  timeoutMs = 30_000,
): Promise<OutputLine[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = outputSoFar(path);
    if (test(lines)) return lines;
    if (p.child.exitCode !== null || p.child.signalCode !== null)
      throw new Error(`tidemark exited before the output had ${what}; stderr:\n${p.stderr.slice(-3000)}`);
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for the output to have ${what} (${lines.length} lines so far); stderr:\n${p.stderr.slice(-3000)}`);
    await sleep(100);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Change events (tombstones left out). */
const changes = (lines: OutputLine[]) => lines.filter((l): l is OutputLine & { value: NonNullable<OutputLine['value']> } => l.value !== null);
const reads = (lines: OutputLine[]) => changes(lines).filter((l) => l.value.op === 'r');

function emptyOrAbsent(path: string): boolean {
  return !existsSync(path) || readFileSync(path, 'utf8') === '';
}

/** Lines that occur more than once, byte for byte. */
function duplicateLines(path: string): string[] {
  const seen = new Set<string>();
  const dups: string[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line === '') continue;
    if (seen.has(line)) dups.push(line);
    seen.add(line);
  }
  return dups;
}

async function expectConsistent(s: Setup, opts: Partial<ConsistencyOptions> = {}): Promise<ReturnType<typeof checkConsistency>> {
  const source = new Map([[s.table, await selectAllCanonical(s.conn, s.db, TABLE, ['id'])]]);
  const report = checkConsistency(readJsonl(s.out), source, { keyColumns: { [s.table]: ['id'] }, ...opts });
  expect(report.ok, formatReport(report)).toBe(true);
  expect(duplicateLines(s.out), 'lines repeated in the output').toEqual([]);
  return report;
}

async function stop(p: TidemarkProcess): Promise<void> {
  const exit = await p.kill('SIGTERM');
  expect(exit.code, `SIGTERM should stop sync cleanly; stderr:\n${p.stderr.slice(-3000)}`).toBe(0);
}

async function binlogFileList(conn: mysql.Connection): Promise<string[]> {
  const [rows] = await conn.query('SHOW BINARY LOGS');
  return (rows as { Log_name: string }[]).map((r) => r.Log_name);
}

const fileSeq = (file: string) => Number(/\.(\d+)$/.exec(file)?.[1]);

/**
 * Makes every binlog file up to the one current now disappear. Only files before the newest go: the
 * server's current file is never purged. A dump thread still winding down may hold a file for a moment.
 */
async function purgeBinlogsBeforeNow(conn: mysql.Connection): Promise<void> {
  const current = (await binlogFileList(conn)).at(-1)!;
  await conn.query('FLUSH BINARY LOGS');
  await conn.query('FLUSH BINARY LOGS');
  const newest = (await binlogFileList(conn)).at(-1)!;
  const deadline = Date.now() + 15_000;
  for (;;) {
    await conn.query(`PURGE BINARY LOGS TO '${newest}'`);
    const left = await binlogFileList(conn);
    if (fileSeq(left[0]!) > fileSeq(current)) return;
    if (Date.now() > deadline) throw new Error(`could not purge binlogs up to ${current}: still have ${left.join(', ')}`);
    await sleep(200);
  }
}

const bump = (s: Setup, ids: number[]) => s.conn.query(`UPDATE \`${s.db}\`.\`${TABLE}\` SET version = version + 1, payload = 'bumped' WHERE id IN (?)`, [ids]);

const insertItems = (s: Setup, ids: number[]) =>
  s.conn.query(`INSERT INTO \`${s.db}\`.\`${TABLE}\` (id, version, payload, amount) VALUES ?`, [ids.map((id) => [id, 1, 'new', '1.00'])]);

async function dumpThreads(conn: mysql.Connection, user: string): Promise<number[]> {
  return (await processList(conn)).filter((p) => p.command.startsWith('Binlog Dump') && p.user === user).map((p) => p.id);
}

describe.each(FLAVOURS)('snapshot modes and failures on %s', (flavour) => {
  it('resumes after a clean stop without reading any snapshot row again', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 0));
    const first = tidemark(['sync', '-c', s.config]);
    await first.waitForLog((l) => l.msg === 'streaming');
    await stop(first);
    const readsBefore = reads(readJsonl(s.out)).length;
    expect(readsBefore).toBe(ROWS);

    const writer = startWriter(urlOf(flavour), s.db, [{ table: TABLE, key: 'int' }], { tps: 200, seed: 3 });
    await sleep(1000);
    const stats = await writer.stop();
    expect(stats.statements).toBeGreaterThan(50);

    const resume = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 60_000);
    expect(resume.code, resume.stderr).toBe(0);
    await expectConsistent(s);
    expect(reads(readJsonl(s.out)).length, 'the resumed run emitted snapshot reads').toBe(readsBefore);
    expect(resume.logs.filter((l) => l.msg === 'snapshot starting')).toEqual([]);
    await s.conn.end();
  });

  it('snapshot.mode never: streams only changes made after start', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 1), { mode: 'never' });
    const p = tidemark(['sync', '-c', s.config]);
    await p.waitForLog((l) => l.msg === 'streaming');
    await insertItems(s, [1001, 1002, 1003]);
    await bump(s, [10, 20]);
    await s.conn.query(`DELETE FROM \`${s.db}\`.\`${TABLE}\` WHERE id = 30`);
    await waitForOutput(s.out, p, '6 change events', (lines) => changes(lines).length >= 6);
    await stop(p);

    const events = changes(readJsonl(s.out)).map((l) => [l.value.op, (l.key as { id: number }).id]);
    expect(events).toEqual([
      ['c', 1001],
      ['c', 1002],
      ['c', 1003],
      ['u', 10],
      ['u', 20],
      ['d', 30],
    ]);
    expect(p.logs.filter((l) => l.msg === 'snapshot starting')).toEqual([]);
    await s.conn.end();
  });

  it('snapshot.mode initial_only: exits 0 after the snapshot with exactly the rows as reads', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 2), { mode: 'initial_only' });
    const run = await runTidemark(['sync', '-c', s.config], undefined, 60_000);
    expect(run.code, run.stderr).toBe(0);
    const report = await expectConsistent(s);
    expect(report.counts.events).toEqual({ r: ROWS, c: 0, u: 0, d: 0, t: 0 });
    expect(report.counts.lines).toBe(ROWS);
    expect(run.logs.filter((l) => l.msg === 'streaming')).toEqual([]);
    await s.conn.end();
  });

  /** Snapshot, stream a few changes, stop; then the binlog the checkpoint resumes from is purged and a row inserted. */
  async function checkpointOnPurgedBinlog(mode: 'initial' | 'when_needed', slot: number): Promise<{ s: Setup; linesBefore: number }> {
    const s = await setup(flavour, serverIdOf(flavour, slot), { mode });
    const p = tidemark(['sync', '-c', s.config]);
    await p.waitForLog((l) => l.msg === 'streaming');
    await bump(s, [1, 2, 3]);
    await waitForOutput(s.out, p, 'the 3 updates', (lines) => changes(lines).filter((l) => l.value.op === 'u').length >= 3);
    await stop(p);
    const linesBefore = readJsonl(s.out).length;
    await purgeBinlogsBeforeNow(s.conn);
    await insertItems(s, [5000]);
    return { s, linesBefore };
  }

  it('snapshot.mode when_needed: re-snapshots when the binlog to resume from was purged', async () => {
    const { s, linesBefore } = await checkpointOnPurgedBinlog('when_needed', 3);
    const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 60_000);
    expect(run.code, run.stderr).toBe(0);
    const reread = reads(readJsonl(s.out).slice(linesBefore)).map((l) => (l.key as { id: number }).id);
    const sourceIds = (await selectAllCanonical(s.conn, s.db, TABLE, ['id'])).map((r) => r.id as number);
    expect(reread.sort((a, b) => a - b)).toEqual(sourceIds);
    expect(sourceIds).toContain(5000);
    await expectConsistent(s, { allowReread: new Set([s.table]) });
    await s.conn.end();
  });

  it('snapshot.mode initial: refuses to resume when the binlog to resume from was purged', async () => {
    const { s } = await checkpointOnPurgedBinlog('initial', 4);
    const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 60_000);
    expect(run.code, run.stderr).not.toBe(0);
    expect(run.stderr).toMatch(/purged/i);
    expect(run.stderr).toMatch(/when_needed/);
    await s.conn.end();
  });

  describe('a table without a primary key', () => {
    // `ref` is UNIQUE NOT NULL but not a primary key: InnoDB clusters on it, yet tidemark must not guess.
    const create = async (conn: mysql.Connection, db: string) => {
      await conn.query(
        `CREATE TABLE \`${db}\`.nopk (ref BIGINT NOT NULL, version INT NOT NULL, payload VARCHAR(64) NULL, amount DECIMAL(12,2) NOT NULL, UNIQUE KEY uk_ref (ref)) ENGINE=InnoDB`,
      );
      const rows = Array.from({ length: 200 }, (_, i) => [(i + 1) * 7, 1, `row ${i}`, `${i}.50`]);
      await conn.query(`INSERT INTO \`${db}\`.nopk (ref, version, payload, amount) VALUES ?`, [rows]);
    };
    const tables = (db: string) => [`${db}.nopk`];

    it('is refused with a message naming the table and snapshot.chunkKey', async () => {
      const s = await setup(flavour, serverIdOf(flavour, 5), { create, tables });
      const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 60_000);
      expect(run.code, run.stderr).not.toBe(0);
      expect(run.stderr).toContain(`${s.db}.nopk`);
      expect(run.stderr).toContain('snapshot.chunkKey');
      expect(emptyOrAbsent(s.out), 'output written for a refused table').toBe(true);
      await s.conn.end();
    });

    it('syncs with snapshot.chunkKey naming a unique NOT NULL column', async () => {
      const s = await setup(flavour, serverIdOf(flavour, 6), {
        create,
        tables,
        mode: 'initial_only',
        snapshot: (db) => ({ chunkKey: { [`${db}.nopk`]: ['ref'] } }),
      });
      const run = await runTidemark(['sync', '-c', s.config], undefined, 60_000);
      expect(run.code, run.stderr).toBe(0);
      const name = `${s.db}.nopk`;
      const source = new Map([[name, await selectAllCanonical(s.conn, s.db, 'nopk', ['ref'])]]);
      const report = checkConsistency(readJsonl(s.out), source, { keyColumns: { [name]: ['ref'] } });
      expect(report.ok, formatReport(report)).toBe(true);
      expect(report.counts.events).toEqual({ r: 200, c: 0, u: 0, d: 0, t: 0 });
      await s.conn.end();
    });
  });

  it('a wrong password fails with access denied and writes nothing', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 7), { source: { password: 'not-the-password-7' } });
    const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 60_000);
    expect(run.code, run.stderr).not.toBe(0);
    expect(run.stderr).toMatch(/access denied/i);
    expect(run.stderr).toContain('source.password');
    expect(emptyOrAbsent(s.out), 'output written without a login').toBe(true);
    await s.conn.end();
  });

  it('refuses a binlog that does not log full row images', async () => {
    // MySQL 9 deprecates binlog_format; on MariaDB it is the setting people get wrong.
    const [variable, bad, good] = flavour === 'mariadb' ? ['binlog_format', 'STATEMENT', 'ROW'] : ['binlog_row_image', 'MINIMAL', 'FULL'];
    const s = await setup(flavour, serverIdOf(flavour, 8));
    try {
      await s.conn.query(`SET GLOBAL ${variable} = '${bad}'`);
      const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 60_000);
      expect(run.code, run.stderr).not.toBe(0);
      expect(run.stderr).toContain(variable);
      expect(run.stderr).toMatch(new RegExp(`\\b${good}\\b`));
      expect(emptyOrAbsent(s.out)).toBe(true);
    } finally {
      await s.conn.query(`SET GLOBAL ${variable} = '${good}'`);
      await s.conn.end();
    }
  });

  it('reports a TRUNCATE TABLE while streaming as an op t event', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 9));
    const p = tidemark(['sync', '-c', s.config]);
    await p.waitForLog((l) => l.msg === 'streaming');
    await s.conn.query(`TRUNCATE TABLE \`${s.db}\`.\`${TABLE}\``);
    const lines = await waitForOutput(s.out, p, "an op 't' event", (ls) => changes(ls).some((l) => l.value.op === 't'));
    await stop(p);
    const truncates = changes(lines).filter((l) => l.value.op === 't');
    expect(truncates).toHaveLength(1);
    expect(truncates[0]!.topic).toBe(`${NAME}.${s.db}.${TABLE}`);
    expect(truncates[0]!.value.source).toMatchObject({ db: s.db, table: TABLE });
    await s.conn.end();
  });

  it('reconnects after the binlog connection is killed, with no gap and no duplicate', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 10));
    const user = sourceFromUrl(urlOf(flavour)).user;
    // Other test files do not run concurrently, but a dump thread left over from an earlier sync might still be there.
    const before = new Set(await dumpThreads(s.conn, user));
    const p = tidemark(['sync', '-c', s.config]);
    await p.waitForLog((l) => l.msg === 'streaming');
    const writer = startWriter(urlOf(flavour), s.db, [{ table: TABLE, key: 'int' }], { tps: 150, seed: 9 });
    await sleep(700);

    let ours: number[] = [];
    for (const deadline = Date.now() + 10_000; ours.length === 0 && Date.now() < deadline; await sleep(100)) {
      ours = (await dumpThreads(s.conn, user)).filter((id) => !before.has(id));
    }
    expect(ours.length, 'no binlog dump thread of tidemark found').toBeGreaterThan(0);
    for (const id of ours) await s.conn.query(`KILL ${id}`);

    await p.waitForLog((l) => l.msg === 'binlog connection lost; reconnecting', 30_000);
    await sleep(1500);
    const stats = await writer.stop();
    expect(stats.statements).toBeGreaterThan(100);

    // The live process, not only the catch-up run, must have recovered: its output reaches the source's state.
    const sourceRows = await selectAllCanonical(s.conn, s.db, TABLE, ['id']);
    const source = new Map([[s.table, sourceRows]]);
    await waitForOutput(s.out, p, 'every change after the reconnect', (lines) => checkConsistency(lines, source, { keyColumns: { [s.table]: ['id'] } }).ok);
    await stop(p);

    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 60_000);
    expect(finish.code, finish.stderr).toBe(0);
    await expectConsistent(s);
    await s.conn.end();
  });

  it('refuses to resume a checkpoint of another server and leaves checkpoint and output untouched', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 11), { mode: 'initial_only' });
    expect((await runTidemark(['sync', '-c', s.config])).code).toBe(0);
    const other: Flavour = flavour === 'mysql' ? 'mariadb' : 'mysql';
    const { db: otherDb, conn: otherConn } = await freshDatabase(urlOf(other), 'modes');
    await createWorkloadTable(otherConn, otherDb, TABLE, { rows: 10, key: 'int' });
    const moved = writeConfig(
      s.dir,
      {
        name: NAME,
        source: { ...sourceFromUrl(urlOf(other)), serverId: serverIdOf(flavour, 11), tables: [`${otherDb}.${TABLE}`] },
        snapshot: { mode: 'initial_only', chunkSize: 50, parallelism: 2 },
        checkpoint: { path: join(s.dir, 'checkpoint.sqlite') },
        sink: { type: 'jsonl', path: s.out },
      },
      'moved.yaml',
    );
    const checkpointBefore = readFileSync(join(s.dir, 'checkpoint.sqlite'));
    const outputBefore = readFileSync(s.out);
    const run = await runTidemark(['sync', '-c', moved]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(new RegExp(`checkpoint belongs to ${flavour} server`));
    expect(run.stderr).toMatch(/tidemark reset/);
    expect(readFileSync(s.out).equals(outputBefore), 'output changed').toBe(true);
    expect(readFileSync(join(s.dir, 'checkpoint.sqlite')).equals(checkpointBefore), 'checkpoint changed').toBe(true);
    await otherConn.end();
    await s.conn.end();
  });

  it('--until-caught-up finishes when the binlog rotated after the last change, and after a change in the new file', async () => {
    const s = await setup(flavour, serverIdOf(flavour, 12));
    for (const writeAfterFlush of [false, true]) {
      await s.conn.query(`UPDATE ${s.table} SET version = version + 1 WHERE id <= 10`);
      await s.conn.query('FLUSH BINARY LOGS');
      if (writeAfterFlush) await s.conn.query(`UPDATE ${s.table} SET version = version + 1 WHERE id <= 20`);
      const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 30_000);
      expect(run.code, run.stderr).toBe(0);
    }
    await expectConsistent(s);
    await s.conn.end();
  });
});
