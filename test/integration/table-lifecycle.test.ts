import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, type OutputLine, readJsonl, selectAllCanonical } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, startWriter } from '../support/workload.js';

async function setup(flavour: Flavour, serverId: number, tables: string, snapshot: Record<string, unknown> = {}) {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'life');
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const config = () =>
    writeConfig(dir, {
      name: 'life',
      source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.${tables}`] },
      snapshot: { chunkSize: 100, parallelism: 2, ...snapshot },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: out },
      commit: { maxRecords: 100, maxDelayMs: 50 },
    });
  return { db, conn, dir, out, config };
}

/** The folded output of each table equals the table, for the tables given. */
async function expectFolded(s: Awaited<ReturnType<typeof setup>>, lines: OutputLine[], tables: string[]): Promise<void> {
  const source = new Map<string, Record<string, unknown>[]>();
  const keyColumns: Record<string, string[]> = {};
  for (const t of tables) {
    source.set(`${s.db}.${t}`, await selectAllCanonical(s.conn, s.db, t, ['id']));
    keyColumns[`${s.db}.${t}`] = ['id'];
  }
  const rows = lines.filter((l) => tables.some((t) => l.topic === `life.${s.db}.${t}`));
  const report = checkConsistency(rows, source, { keyColumns, allowUnpairedMoves: true, columnsChange: true });
  expect(report.ok, formatReport(report)).toBe(true);
}

async function untilOutput(s: { out: string }, test: (lines: OutputLine[]) => boolean, what: string, stderr: () => string): Promise<OutputLine[]> {
  for (let waited = 0; ; waited += 50) {
    const lines = readJsonl(s.out);
    if (test(lines)) return lines;
    if (waited > 30_000) throw new Error(`no ${what} in the output; stderr:\n${stderr().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const schemaEvents = (lines: OutputLine[]) =>
  lines.filter((l) => l.topic === 'life').map((l) => (l.value as unknown as { tableChanges: { type: string; id: string }[] }).tableChanges[0]!);

describe.each(FLAVOURS)('tables coming and going while streaming on %s', (flavour) => {
  const ids = (base: number) => base + (flavour === 'mysql' ? 0 : 50);

  it('captures a table created later that matches source.tables, stops at a drop, and follows renames', async () => {
    const s = await setup(flavour, ids(7900), '*');
    await s.conn.query('CREATE TABLE first (id INT PRIMARY KEY, version INT NOT NULL, v VARCHAR(10))');
    await s.conn.query("INSERT INTO first VALUES (1, 1, 'a')");
    // Its insert at the end tells that the stream has passed every statement before it.
    await s.conn.query('CREATE TABLE marker (id INT PRIMARY KEY, version INT NOT NULL)');
    s.config();
    const sync = tidemark(['sync', '-c', `${s.dir}/tidemark.yaml`]);
    await sync.waitForLog((l) => l.msg === 'streaming');
    // Created after start: every row it ever has comes through the binlog.
    await s.conn.query('CREATE TABLE later (id INT PRIMARY KEY, version INT NOT NULL, v VARCHAR(10))');
    await s.conn.query("INSERT INTO later VALUES (1, 1, 'x'), (2, 1, 'y')");
    await s.conn.query('UPDATE later SET version = version + 1 WHERE id = 2');
    // Renamed within the captured set: captured on under the new name, snapshotted there.
    await s.conn.query('RENAME TABLE first TO renamed');
    await s.conn.query("INSERT INTO renamed VALUES (2, 1, 'b')");
    // An uncaptured database's table renamed in: it brings rows, which are snapshotted.
    const { db: other, conn: otherConn } = await freshDatabase(urlOf(flavour), 'life_other');
    await otherConn.query('CREATE TABLE outside (id INT PRIMARY KEY, version INT NOT NULL)');
    await otherConn.query('INSERT INTO outside VALUES (1, 1), (2, 1), (3, 1)');
    await s.conn.query(`RENAME TABLE \`${other}\`.outside TO \`${s.db}\`.moved_in`);
    await s.conn.query('UPDATE moved_in SET version = version + 1 WHERE id = 3');
    await s.conn.query('DROP TABLE later');
    await s.conn.query("INSERT INTO renamed VALUES (3, 1, 'c')");
    await s.conn.query('INSERT INTO marker VALUES (1, 1)');
    for (const table of ['renamed', 'moved_in']) {
      await sync.waitForLog((l) => l.msg === 'snapshot while streaming complete' && l.table === `${s.db}.${table}`);
    }
    const lines = await untilOutput(
      s,
      (ls) => ls.some((l) => l.topic === `life.${s.db}.marker` && l.value?.op === 'c'),
      'insert into marker',
      () => sync.stderr,
    );
    expect((await sync.kill('SIGTERM')).code).toBe(0);

    expect(schemaEvents(lines).map((e) => [e.type, e.id])).toEqual([
      ['CREATE', `"${s.db}"."later"`],
      ['DROP', `"${s.db}"."first"`],
      ['CREATE', `"${s.db}"."renamed"`],
      ['CREATE', `"${s.db}"."moved_in"`],
      ['DROP', `"${s.db}"."later"`],
    ]);
    const later = lines.filter((l) => l.topic === `life.${s.db}.later`).map((l) => [l.value?.op, l.key?.id]);
    expect(later).toEqual([
      ['c', 1],
      ['c', 2],
      ['u', 2],
    ]);
    await expectFolded(s, lines, ['renamed', 'moved_in']);
    await otherConn.end();
    await s.conn.end();
  });

  it('an ALTER during a snapshot of many chunks under a writer: later chunks carry the new column, nothing lost or read twice', async () => {
    const s = await setup(flavour, ids(7920), 'orders', { parallelism: 1 });
    await createWorkloadTable(s.conn, s.db, 'orders', { rows: 3000, key: 'int' });
    s.config();
    const writer = startWriter(urlOf(flavour), s.db, [{ table: 'orders', key: 'int' }], { tps: 200, seed: 9 });
    const sync = tidemark(['sync', '-c', `${s.dir}/tidemark.yaml`], { TIDEMARK_TEST_CHUNK_DELAY_MS: '40' });
    await sync.waitForLog(() => sync.count('chunk done') >= 5);
    await s.conn.query('ALTER TABLE orders ADD COLUMN note VARCHAR(20) NULL');
    await sync.waitForLog((l) => l.msg === 'streaming');
    await writer.stop();
    // Every row touched after the ALTER, so the folded output can equal the table.
    await s.conn.query("UPDATE orders SET version = version + 1, note = 'after'");
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    const finish = await runTidemark(['sync', '-c', `${s.dir}/tidemark.yaml`, '--until-caught-up']);
    expect(finish.code, finish.stderr.slice(-2000)).toBe(0);
    const lines = readJsonl(s.out);
    const reads = lines.filter((l) => l.value?.op === 'r');
    const lastRead = reads.at(-1)!;
    expect(Object.keys(lastRead.value!.after!)).toContain('note');
    expect(Object.keys(reads[0]!.value!.after!)).not.toContain('note');
    await expectFolded(s, lines, ['orders']);
    await s.conn.end();
  });

  it('a primary key change while the table is in its hand-off re-snapshots it under the new key', async () => {
    const s = await setup(flavour, ids(7940), 'pk');
    await s.conn.query('CREATE TABLE pk (id INT NOT NULL, k INT NOT NULL, version INT NOT NULL, PRIMARY KEY (id))');
    for (let i = 1; i <= 300; i++) await s.conn.query('INSERT INTO pk VALUES (?, ?, 1)', [i, 1000 - i]);
    s.config();
    const sync = tidemark(['sync', '-c', `${s.dir}/tidemark.yaml`], { TIDEMARK_TEST_CHUNK_DELAY_MS: '40' });
    await sync.waitForLog(() => sync.count('chunk done') >= 1);
    await s.conn.query('UPDATE pk SET version = version + 1 WHERE id = 300');
    await s.conn.query('ALTER TABLE pk DROP PRIMARY KEY, ADD PRIMARY KEY (k)');
    await s.conn.query('UPDATE pk SET version = version + 1 WHERE k = 999');
    await sync.waitForLog((l) => l.msg === 'snapshot while streaming complete');
    const lines = await untilOutput(
      s,
      (ls) => ls.some((l) => l.value?.op === 'u' && l.key?.k === 999),
      'update under the new key',
      () => sync.stderr,
    );
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    const afterChange = lines.slice(lines.findIndex((l) => l.topic === 'life'));
    const keys = new Set(afterChange.filter((l) => l.value?.op === 'r').map((l) => JSON.stringify(l.key)));
    expect(keys.size).toBe(300);
    expect([...keys].every((k) => Object.keys(JSON.parse(k)).join() === 'k')).toBe(true);
    await s.conn.end();
  });
});
