import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, type OutputLine, readJsonl } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter } from '../support/workload.js';

const TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 3000 },
  { table: 'customers', key: 'string', rows: 2000 },
];
const writerTables = TABLES.map((t) => ({ table: t.table, key: t.key }));
// Chunk reads are stretched so writes land inside the chunks being read while the stream runs.
const SLOW_CHUNKS = { TIDEMARK_TEST_CHUNK_DELAY_MS: '20' };

async function setup(flavour: Flavour, serverId: number, tables: string[]) {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'sws');
  for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const configFor = (names: string[]) =>
    writeConfig(dir, {
      name: 'sws',
      source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: names.map((n) => `${db}.${n}`) },
      snapshot: { mode: 'initial', chunkSize: 200, parallelism: 2 },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: out },
      commit: { maxRecords: 1000, maxDelayMs: 100 },
    });
  return { db, conn, dir, out, config: configFor(tables), configFor };
}

async function consistency(conn: mysql.Connection, db: string, out: string, allowReread: Set<string>) {
  const { source, keyColumns } = await sourceState(conn, db, TABLES);
  const lines = readJsonl(out);
  const report = checkConsistency(lines, source, { keyColumns, allowReread, allowUnpairedMoves: true });
  expect(report.ok, formatReport(report)).toBe(true);
  return lines;
}

const isOf = (l: OutputLine, table: string, op: string) => l.value !== null && l.value.source.table === table && l.value.op === op;

describe.each(FLAVOURS)('snapshot while streaming on %s', (flavour) => {
  it('tidemark snapshot re-reads a table chunk by chunk while the stream goes on', async () => {
    const s = await setup(
      flavour,
      7800 + (flavour === 'mysql' ? 0 : 10),
      TABLES.map((t) => t.table),
    );
    const writer = startWriter(urlOf(flavour), s.db, writerTables, { tps: 300, seed: 21 });
    const sync = tidemark(['sync', '-c', s.config], SLOW_CHUNKS);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await new Promise((r) => setTimeout(r, 500));

    const request = await runTidemark(['snapshot', '-c', s.config, `${s.db}.customers`]);
    expect(request.code, request.stderr).toBe(0);
    await sync.waitForLog((l) => l.msg === 'snapshot while streaming complete' && l.table === `${s.db}.customers`);
    await new Promise((r) => setTimeout(r, 500));
    await writer.stop();
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(finish.code, finish.stderr).toBe(0);

    const lines = await consistency(s.conn, s.db, s.out, new Set([`${s.db}.customers`]));
    const rereads = lines
      .map((l, i) => (isOf(l, 'customers', 'r') ? i : -1))
      .filter((i) => i >= 0)
      .slice(TABLES[1]!.rows);
    expect(rereads.length).toBeGreaterThan(TABLES[1]!.rows / 2);
    // The stream went on between the re-read chunks: changes of the other table sit among them.
    const between = lines
      .slice(rereads[0], rereads[rereads.length - 1])
      .filter((l) => l.value !== null && l.value.source.table === 'orders' && l.value.op !== 'r');
    expect(between.length).toBeGreaterThan(0);
    expect(sync.logs.filter((l) => l.msg === 'chunk done' && l.whileStreaming).length).toBeGreaterThan(5);
    await s.conn.end();
  });

  it('a table added to source.tables after streaming started is snapshotted inside the stream', async () => {
    const s = await setup(flavour, 7820 + (flavour === 'mysql' ? 0 : 10), ['orders']);
    expect((await runTidemark(['sync', '-c', s.config, '--until-caught-up'])).code).toBe(0);
    const writer = startWriter(urlOf(flavour), s.db, writerTables, { tps: 300, seed: 22 });
    const both = s.configFor(TABLES.map((t) => t.table));
    const sync = tidemark(['sync', '-c', both], SLOW_CHUNKS);
    await sync.waitForLog((l) => l.msg === 'snapshot while streaming complete');
    await writer.stop();
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    const finish = await runTidemark(['sync', '-c', both, '--until-caught-up']);
    expect(finish.code, finish.stderr).toBe(0);
    const lines = await consistency(s.conn, s.db, s.out, new Set());
    expect(lines.filter((l) => isOf(l, 'customers', 'r')).length).toBeGreaterThan(TABLES[1]!.rows / 2);
    await s.conn.end();
  });
});
