import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, type JsonlSetup, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, sourceState } from '../support/workload.js';

const TABLES = [{ table: 'orders', key: 'int' as const, rows: 50 }];

async function setup(flavour: Flavour, serverId: number): Promise<JsonlSetup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'xa');
  for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const config = writeConfig(dir, {
    name: 'xa',
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.orders`] },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: { type: 'jsonl', path: out },
    commit: { maxRecords: 100, maxDelayMs: 50 },
  });
  return { db, conn, dir, config, out };
}

/** Runs `body` inside XA START … XA END on its own connection; returns that connection, for XA PREPARE/COMMIT/ROLLBACK. */
async function xa(url: string, db: string, xid: string, body: string[]): Promise<mysql.Connection> {
  const c = await mysql.createConnection({ uri: url, database: db });
  await c.query(`XA START '${xid}'`);
  for (const sql of body) await c.query(sql);
  await c.query(`XA END '${xid}'`);
  return c;
}

const insert = (id: number) => `INSERT INTO orders (id, version, payload, amount) VALUES (${id}, 1, 'xa ${id}', 1.00)`;
const bump = (id: number) => `UPDATE orders SET version = version + 1, payload = 'xa bump' WHERE id = ${id}`;

async function expectConsistent(s: JsonlSetup): Promise<void> {
  const { source, keyColumns } = await sourceState(s.conn, s.db, TABLES);
  const report = checkConsistency(readJsonl(s.out), source, { keyColumns });
  expect(report.ok, formatReport(report)).toBe(true);
}

/** Waits until the output holds a change of `id`: then it is committed, and the checkpoint is past it. */
async function waitForChange(out: string, id: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!readJsonl(out).some((l) => l.value?.op === 'c' && l.value.after?.id === id)) {
    if (Date.now() > deadline) throw new Error(`no change of id ${id} in ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each(FLAVOURS)('XA transactions on %s', (flavour) => {
  const url = urlOf(flavour);
  const ids = (base: number) => base + (flavour === 'mysql' ? 0 : 50);

  it('emits a prepared XA transaction once, whole, at its commit; a rolled-back one never; one phase like a commit', async () => {
    const s = await setup(flavour, ids(7500));
    const sync = tidemark(['sync', '-c', s.config]);
    await sync.waitForLog((l) => l.msg === 'streaming');

    const a = await xa(url, s.db, 'a', [insert(101), insert(102), bump(1)]);
    await a.query("XA PREPARE 'a'");
    // Committed while 'a' is prepared: it comes first in the binlog and in the output.
    await s.conn.query(insert(200));
    await a.query("XA COMMIT 'a'");
    await a.end();

    const b = await xa(url, s.db, 'b', [insert(103), bump(2)]);
    await b.query("XA PREPARE 'b'");
    await b.query("XA ROLLBACK 'b'");
    await b.end();

    const c = await xa(url, s.db, 'c', [insert(104), bump(3)]);
    await c.query("XA COMMIT 'c' ONE PHASE");
    await c.end();

    await s.conn.query(insert(201));
    await waitForChange(s.out, 201);
    expect((await sync.kill('SIGTERM')).code).toBe(0);

    const changes = readJsonl(s.out).filter((l) => l.value !== null && l.value.op !== 'r');
    const idOf = (l: (typeof changes)[number]) => (l.value!.after ?? l.value!.before)!.id;
    expect(changes.map(idOf)).toEqual([200, 101, 102, 1, 104, 3, 201]);
    // The three changes of 'a' are one source transaction: one position, rows numbered within it.
    const fromA = changes.slice(1, 4).map((l) => l.value!.source);
    expect(new Set(fromA.map((src) => `${src.file}:${src.pos}`)).size).toBe(1);
    expect(fromA.map((src) => src.row)).toEqual([0, 1, 2]);
    await expectConsistent(s);
    await s.conn.end();
  });

  it('reads no chunk while an XA transaction is prepared, so one committed during the snapshot is not lost', async () => {
    const s = await setup(flavour, ids(7520));
    const p = await xa(url, s.db, 'p', [insert(401), bump(5)]);
    await p.query("XA PREPARE 'p'");
    const sync = tidemark(['sync', '-c', s.config]);
    await sync.waitForLog((l) => l.msg === 'waiting for prepared XA transactions to end before reading a chunk');
    await p.query("XA COMMIT 'p'");
    await p.end();
    await sync.waitForLog((l) => l.msg === 'streaming');
    await s.conn.query(insert(402));
    await waitForChange(s.out, 402);
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    await expectConsistent(s);
    await s.conn.end();
  });

  it('loses and doubles nothing when killed between XA PREPARE and XA COMMIT', async () => {
    const s = await setup(flavour, ids(7510));
    const sync = tidemark(['sync', '-c', s.config]);
    await sync.waitForLog((l) => l.msg === 'streaming');
    const k = await xa(url, s.db, 'k', [insert(301), bump(4)]);
    await k.query("XA PREPARE 'k'");
    // A change after the prepare, committed to the sink: the checkpoint is now past the XA PREPARE.
    await s.conn.query(insert(300));
    await waitForChange(s.out, 300);
    expect((await sync.kill('SIGKILL')).signal).toBe('SIGKILL');
    await k.query("XA COMMIT 'k'");
    await k.end();
    await s.conn.query(insert(302));

    const resumed = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(resumed.code, resumed.stderr.slice(-3000)).toBe(0);
    // Killed again after the commit: the restart point is gone, nothing is read twice.
    const again = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(again.code, again.stderr.slice(-3000)).toBe(0);
    const changes = readJsonl(s.out).filter((l) => l.value !== null && l.value.op !== 'r');
    expect(changes.map((l) => (l.value!.after ?? l.value!.before)!.id)).toEqual([300, 301, 4, 302]);
    await expectConsistent(s);
    await s.conn.end();
  });
});
