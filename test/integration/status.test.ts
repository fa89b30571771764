import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import type { StatusReport, TableStatus } from '../../src/cli/status.js';
import { checkConsistency, formatReport, readJsonl, selectAllCanonical } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, type JsonlSetup, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable } from '../support/workload.js';

const NAME = 'status-test';
const TABLE = 'items';

interface Setup extends JsonlSetup {
  checkpoint: string;
  table: string;
}

/** A fresh database with one `items` table of `rows` rows (id 1..rows) and a jsonl config capturing it. */
async function setup(flavour: Flavour, serverId: number, rows: number, chunkSize: number): Promise<Setup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'status');
  await createWorkloadTable(conn, db, TABLE, { rows, key: 'int' });
  const dir = tempDir();
  const checkpoint = join(dir, 'checkpoint.sqlite');
  const out = join(dir, 'out.jsonl');
  const config = writeConfig(dir, {
    name: NAME,
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.${TABLE}`] },
    snapshot: { chunkSize, parallelism: 2 },
    checkpoint: { path: checkpoint },
    sink: { type: 'jsonl', path: out },
    commit: { maxRecords: 500, maxDelayMs: 100 },
  });
  return { db, conn, dir, config, checkpoint, out, table: `${db}.${TABLE}` };
}

async function status(config: string): Promise<StatusReport> {
  const r = await runTidemark(['status', '-c', config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusReport;
}

async function statusUntil(config: string, what: string, test: (r: StatusReport) => boolean, timeoutMs = 30_000): Promise<StatusReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await status(config);
    if (test(r)) return r;
    if (Date.now() > deadline) throw new Error(`timed out waiting for status to show ${what}; last: ${JSON.stringify(r)}`);
    await sleep(200);
  }
}

async function binlogSizes(conn: mysql.Connection): Promise<Map<string, number>> {
  const [rows] = await conn.query('SHOW BINARY LOGS');
  return new Map((rows as { Log_name: string; File_size: number | string }[]).map((r) => [r.Log_name, Number(r.File_size)]));
}

async function expectConsistent(s: Setup): Promise<void> {
  const source = new Map([[s.table, await selectAllCanonical(s.conn, s.db, TABLE, ['id'])]]);
  const report = checkConsistency(readJsonl(s.out), source, { keyColumns: { [s.table]: ['id'] } });
  expect(report.ok, formatReport(report)).toBe(true);
}

describe.each(FLAVOURS)('status on %s', (flavour) => {
  it('follows the snapshot, then the stream, and still reads the checkpoint once sync stopped', async () => {
    const s = await setup(flavour, flavour === 'mysql' ? 7700 : 7710, 20_000, 200);
    // Stretched chunk reads keep the 100-chunk snapshot going for several status calls, each a new process that
    // takes 1 to 2 s to start on a loaded 2-core machine.
    const sync = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CHUNK_DELAY_MS: '80' });
    await sync.waitForLog((l) => l.msg === 'chunk done');

    const during: TableStatus[] = [];
    while (!sync.logs.some((l) => l.msg === 'snapshot complete')) {
      const r = await status(s.config);
      expect(r.name).toBe(NAME);
      expect(r.source?.flavour).toBe(flavour);
      const t = r.tables.find((x) => x.name === s.table)!;
      if (t.phase !== 'snapshotting') break;
      expect(t.chunksDone).toBeGreaterThan(0);
      if (t.chunksTotal !== null) expect(t.chunksDone).toBeLessThanOrEqual(t.chunksTotal);
      expect(t.rows).toBeGreaterThan(0);
      expect(t.rows).toBeLessThanOrEqual(20_000);
      // InnoDB's estimate of a table this new may still be 0.
      expect(t.rowsEstimate).toEqual(expect.any(Number));
      during.push(t);
    }
    expect(during.length, 'status calls during the snapshot').toBeGreaterThanOrEqual(2);
    expect(during[during.length - 1]!.chunksDone).toBeGreaterThan(during[0]!.chunksDone);
    expect(during[during.length - 1]!.rows).toBeGreaterThan(during[0]!.rows);

    await sync.waitForLog((l) => l.msg === 'streaming');
    await s.conn.query(`UPDATE ${TABLE} SET version = version + 1 WHERE id <= 10`);
    const streaming = await statusUntil(s.config, 'a streamed commit', (r) => r.lastCommit?.sourceTime != null);
    expect(streaming.tables).toEqual([
      { name: s.table, phase: 'streaming', chunksDone: expect.any(Number), chunksTotal: expect.any(Number), rows: 20_000, rowsEstimate: expect.any(Number) },
    ]);
    expect(streaming.tables[0]!.chunksDone).toBe(streaming.tables[0]!.chunksTotal);
    expect(streaming.stream).toMatchObject({ file: expect.any(String), pos: expect.any(Number) });
    if (flavour === 'mysql') expect(streaming.stream!.gtid).toMatch(/:\d/);
    expect(streaming.server.error).toBeNull();
    expect(streaming.server.position).not.toBeNull();
    expect(streaming.lag.bytes).toBeGreaterThanOrEqual(0);
    expect(streaming.lag.seconds).toBeGreaterThanOrEqual(0);
    const text = await runTidemark(['status', '-c', s.config]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${s.table}`);
    expect(text.stdout).toMatch(/streaming\s+snapshot done: 20000 rows/);
    expect(text.stdout).toMatch(/behind\s+\d+ bytes/);

    expect((await sync.kill('SIGTERM')).code).toBe(0);
    const stopped = await status(s.config);
    expect(stopped.lastCommit).toMatchObject({ at: expect.any(String), ageSeconds: expect.any(Number), seq: expect.any(Number) });
    expect(stopped.stream).not.toBeNull();

    // Changes after the stop put the checkpoint behind by exactly their binlog bytes.
    await s.conn.query(`UPDATE ${TABLE} SET version = version + 1 WHERE id <= 100`);
    const behind = await status(s.config);
    const here = behind.server.position!;
    expect(behind.stream).toEqual(stopped.stream);
    if (here.file === behind.stream!.file) expect(behind.lag.bytes).toBe(here.pos - behind.stream!.pos);
    expect(behind.lag.bytes).toBeGreaterThan(0);
    expect(behind.lag.seconds).toBeGreaterThan(0);
    expect(behind.lag.note).toContain('as of the last commit');

    // Across a rotation the rest of the checkpoint's file counts too.
    await s.conn.query('FLUSH BINARY LOGS');
    await s.conn.query(`UPDATE ${TABLE} SET version = version + 1 WHERE id <= 10`);
    const rotated = await status(s.config);
    const sizes = await binlogSizes(s.conn);
    const from = rotated.stream!;
    const to = rotated.server.position!;
    expect(to.file).not.toBe(from.file);
    const seq = (f: string) => Number(/\.(\d+)$/.exec(f)![1]);
    let expected = sizes.get(from.file)! - from.pos + to.pos;
    for (const [f, size] of sizes) if (seq(f) > seq(from.file) && seq(f) < seq(to.file)) expected += size;
    expect(rotated.lag.bytes).toBe(expected);

    // An unreachable source still shows the checkpoint; only the byte lag is unknown.
    const unreachable = writeConfig(
      s.dir,
      {
        name: NAME,
        source: { host: '127.0.0.1', port: 1, user: 'nobody', tables: [s.table], connectTimeoutMs: 2000 },
        checkpoint: { path: s.checkpoint },
        sink: { type: 'jsonl', path: s.out },
      },
      'unreachable.yaml',
    );
    const offline = await status(unreachable);
    expect(offline.tables[0]!.phase).toBe('streaming');
    expect(offline.stream).toEqual(rotated.stream);
    expect(offline.server).toMatchObject({ identity: null, position: null, error: expect.stringContaining('cannot reach') });
    expect(offline.lag.bytes).toBeNull();
    expect(offline.lag.seconds).toBeGreaterThan(0);
    const offlineText = await runTidemark(['status', '-c', unreachable]);
    expect(offlineText.code).toBe(0);
    expect(offlineText.stdout).toContain('the source could not be asked');
    await s.conn.end();
  });
});

describe('reset', () => {
  const ROWS = 300;

  it('refuses without --yes off a terminal and while sync runs, then forgets the checkpoint so the next sync snapshots again', async () => {
    const s = await setup('mysql', 7720, ROWS, 50);
    const first = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(first.code, first.stderr).toBe(0);
    expect(readJsonl(s.out).filter((l) => l.value?.op === 'r')).toHaveLength(ROWS);

    const unconfirmed = await runTidemark(['reset', '-c', s.config]);
    expect(unconfirmed.code).toBe(1);
    expect(unconfirmed.stderr).toContain('Pass --yes');
    expect(existsSync(s.checkpoint)).toBe(true);

    const sync = tidemark(['sync', '-c', s.config]);
    await sync.waitForLog((l) => l.msg === 'streaming');
    const whileRunning = await runTidemark(['reset', '-c', s.config, '--yes']);
    expect(whileRunning.code).toBe(1);
    expect(whileRunning.stderr).toContain('running tidemark sync');
    expect(existsSync(s.checkpoint)).toBe(true);
    expect((await sync.kill('SIGTERM')).code).toBe(0);

    await s.conn.query(`UPDATE ${TABLE} SET version = version + 1 WHERE id <= 5`);
    const reset = await runTidemark(['reset', '-c', s.config, '--yes']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain(`deleted ${s.checkpoint}`);
    expect(reset.stdout).toContain(`${s.out}`);
    for (const f of [s.checkpoint, `${s.checkpoint}-wal`, `${s.checkpoint}-shm`]) expect(existsSync(f), f).toBe(false);

    const gone = await runTidemark(['status', '-c', s.config]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`no checkpoint at ${s.checkpoint}: sync has not run yet`);
    const again = await runTidemark(['reset', '-c', s.config, '--yes']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to reset');

    const resync = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(resync.code, resync.stderr).toBe(0);
    expect(resync.logs.filter((l) => l.msg === 'chunk done').length).toBeGreaterThanOrEqual(ROWS / 50);
    // The next sync cut the old output to nothing: every row is read once, at its current version.
    const lines = readJsonl(s.out);
    expect(lines.filter((l) => l.value?.op === 'r')).toHaveLength(ROWS);
    expect(lines.filter((l) => l.value?.op !== 'r')).toHaveLength(0);
    await expectConsistent(s);
    await s.conn.end();
  });

  // util-linux `script` (Debian's essential bsdutils) provides the terminal.
  it('on a terminal, asks for the connector name and resets only when it is typed', async () => {
    const s = await setup('mysql', 7730, ROWS, 100);
    const first = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(first.code, first.stderr).toBe(0);
    const bin = fileURLToPath(new URL('../../bin/tidemark', import.meta.url));
    // `script` runs the command on a pseudo-terminal and passes our input to it.
    const onTerminal = (input: string) =>
      spawnSync('script', ['-qec', `'${process.execPath}' '${bin}' reset -c '${s.config}'`, '/dev/null'], { input, encoding: 'utf8', timeout: 30_000 });

    const wrong = onTerminal('not-the-name\n');
    expect(wrong.stdout).toContain(`Type the connector name (${NAME}) to confirm`);
    expect(wrong.stdout).toContain(s.out);
    expect(wrong.status, wrong.stdout).toBe(1);
    expect(existsSync(s.checkpoint)).toBe(true);

    const right = onTerminal(`${NAME}\n`);
    expect(right.status, right.stdout).toBe(0);
    expect(existsSync(s.checkpoint)).toBe(false);
    await s.conn.end();
  });
});
