import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, type JsonlSetup, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter } from '../support/workload.js';

const TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 12_000 },
  { table: 'events', key: 'sparse-int', rows: 6_000 },
  { table: 'customers', key: 'string', rows: 5_000 },
  { table: 'lines', key: 'composite', rows: 5_000 },
];

type Setup = JsonlSetup;

/** Fresh tables large enough for dozens of 250-row chunks, and a config capturing them. */
async function setup(flavour: Flavour, serverId: number): Promise<Setup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'sync');
  for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
  await conn.query(`ANALYZE TABLE ${TABLES.map((t) => `\`${db}\`.\`${t.table}\``).join(', ')}`);
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const config = writeConfig(dir, {
    name: 'shop',
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.*`] },
    snapshot: { mode: 'initial', chunkSize: 250, parallelism: 2 },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: { type: 'jsonl', path: out },
    commit: { maxRecords: 2000, maxDelayMs: 200 },
  });
  return { db, conn, dir, config, out };
}

async function expectConsistent(s: Setup): Promise<void> {
  const { source, keyColumns } = await sourceState(s.conn, s.db, TABLES);
  const report = checkConsistency(readJsonl(s.out), source, { keyColumns, allowUnpairedMoves: true });
  expect(report.ok, formatReport(report)).toBe(true);
  expect(report.counts.events.r).toBeGreaterThanOrEqual(TABLES.reduce((n, t) => n + t.rows, 0) - 2000);
}

const writerTables = TABLES.map((t) => ({ table: t.table, key: t.key }));

describe.each(FLAVOURS)('sync on %s', (flavour) => {
  it('snapshots and streams under a concurrent writer with no gap and no duplicate', async () => {
    const s = await setup(flavour, 7100 + (flavour === 'mysql' ? 0 : 50));
    const writer = startWriter(urlOf(flavour), s.db, writerTables, { tps: 400, seed: 7 });
    // Each chunk read is stretched so the writer's changes land between watermarks and SELECTs.
    const sync = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CHUNK_DELAY_MS: '25' });
    await sync.waitForLog((l) => l.msg === 'snapshot complete');
    await sync.waitForLog((l) => l.msg === 'streaming');
    await new Promise((r) => setTimeout(r, 2000));
    const stats = await writer.stop();
    expect(stats.updates).toBeGreaterThan(100);
    expect(stats.keyChanges).toBeGreaterThan(0);
    expect(stats.transactions).toBeGreaterThan(0);
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(finish.code, finish.stderr).toBe(0);
    await expectConsistent(s);
    const chunkLogs = sync.logs.filter((l) => l.msg === 'chunk done');
    expect(chunkLogs.length).toBeGreaterThan(48);
    // MySQL chunks are made exact by replaying the binlog between their watermarks; MariaDB's need none.
    const backfilled = chunkLogs.reduce((n, l) => n + Number(l.backfilled), 0);
    if (flavour === 'mysql') expect(backfilled).toBeGreaterThan(0);
    else expect(backfilled).toBe(0);
    await s.conn.end();
  });

  it('survives SIGKILL inside a chunk, between chunks, after the last chunk and while streaming', async () => {
    const s = await setup(flavour, 7200 + (flavour === 'mysql' ? 0 : 50));
    const writer = startWriter(urlOf(flavour), s.db, writerTables, { tps: 300, seed: 11 });
    const killAt: { name: string; when: (p: ReturnType<typeof tidemark>) => Promise<void> }[] = [
      // A chunk read starts right after the previous one commits; 30 ms in, one is in flight.
      {
        name: 'inside a chunk',
        when: async (p) => {
          await p.waitForLog((l) => l.msg === 'chunk done');
          await new Promise((r) => setTimeout(r, 30));
        },
      },
      { name: 'between chunks', when: (p) => p.waitForLog(() => p.count('chunk done') >= 10) },
      { name: 'after the last chunk', when: (p) => p.waitForLog((l) => l.msg === 'snapshot complete') },
      {
        name: 'while streaming',
        when: async (p) => {
          await p.waitForLog((l) => l.msg === 'streaming');
          await new Promise((r) => setTimeout(r, 1500));
        },
      },
    ];
    for (const k of killAt) {
      const p = tidemark(['sync', '-c', s.config]);
      await k.when(p);
      const exit = await p.kill('SIGKILL');
      expect(exit.signal, `${k.name}: ${p.stderr.slice(-2000)}`).toBe('SIGKILL');
    }
    await writer.stop();
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(finish.code, finish.stderr).toBe(0);
    await expectConsistent(s);
    await s.conn.end();
  });
});
