import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../support/consistency.js';
import { FLAVOURS, freshDatabase, urlOf } from '../support/db.js';
import { readCommitted } from '../support/kafka.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, sourceState } from '../support/workload.js';

// A row no converter can read is simulated by the fault hook TIDEMARK_TEST_POISON_VALUE: a row holding that
// text fails to encode, on both paths, as a row of a type tidemark cannot read would.
const POISON = 'poison-row';
const ENV = { TIDEMARK_TEST_POISON_VALUE: POISON };
const TABLES = [{ table: 'orders', key: 'int' as const, rows: 600 }];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe.each(FLAVOURS)('dead letters on %s', (flavour) => {
  const url = urlOf(flavour);
  const ids = (base: number) => base + (flavour === 'mysql' ? 0 : 50);

  async function setup(serverId: number, mode: 'fail' | 'dead-letter', extra: Record<string, unknown> = {}) {
    const { db, conn } = await freshDatabase(url, 'dead');
    for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
    const dir = tempDir();
    const out = join(dir, 'out.jsonl');
    const config = writeConfig(dir, {
      name: 'dead',
      source: { ...sourceFromUrl(url), serverId, tables: [`${db}.orders`] },
      snapshot: { chunkSize: 100, parallelism: 2 },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'jsonl', path: out },
      commit: { maxRecords: 100, maxDelayMs: 50 },
      errors: { mode },
      ...extra,
    });
    return { db, conn, dir, out, config };
  }

  it('writes rows that cannot be encoded to <path>.dead.jsonl once each, across a kill, and counts them', async () => {
    const port = await freePort();
    const s = await setup(ids(7700), 'dead-letter', { metrics: { port } });
    await s.conn.query('UPDATE orders SET payload = ? WHERE id = 7', [POISON]);
    const first = tidemark(['sync', '-c', s.config], ENV);
    await first.waitForLog((l) => l.msg === 'streaming');
    await s.conn.query('UPDATE orders SET version = version + 1, payload = ? WHERE id = 8', [POISON]);
    await s.conn.query('INSERT INTO orders (id, version, payload, amount) VALUES (5000, 1, ?, 1.00)', [POISON]);
    await s.conn.query('UPDATE orders SET version = version + 1, payload = ? WHERE id = 9', ['fine']);
    for (let waited = 0; !readJsonl(s.out).some((l) => l.value?.after?.id === 9 && l.value.op === 'u'); waited += 50) {
      if (waited > 20_000) throw new Error(`no update of id 9 committed; stderr:\n${first.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`tidemark_dead_letters_total\\{table="${s.db}.orders",reason="decode"\\} 3`));
    expect((await first.kill('SIGKILL')).signal).toBe('SIGKILL');
    await s.conn.query('UPDATE orders SET version = version + 1 WHERE id = 10');
    const again = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], ENV);
    expect(again.code, again.stderr.slice(-2000)).toBe(0);

    const dead = readJsonl(`${s.dir}/out.dead.jsonl`);
    expect(dead.map((l) => l.topic)).toEqual(['dead.tidemark.dead', 'dead.tidemark.dead', 'dead.tidemark.dead']);
    const letters = dead.map((l) => l.value as unknown as Record<string, unknown> & { key: { id: number }; position: { snapshot: boolean } });
    expect(letters.map((v) => [v.key.id, v.position.snapshot, v.reason])).toEqual([
      [7, true, 'decode'],
      [8, false, 'decode'],
      [5000, false, 'decode'],
    ]);
    for (const v of letters) {
      expect(v).toMatchObject({ connector: 'dead', db: s.db, table: 'orders' });
      expect(v.error).toMatch(/test poison value/);
    }
    expect((letters[0]!.row as { payload: string }).payload).toBe(POISON);
    // The binlog carries text columns as bytes in their charset; a dead letter keeps them as read, in base64.
    expect((letters[1]!.row as { after: { payload: string } }).after.payload).toBe(Buffer.from(POISON).toString('base64'));

    // Everything else arrived exactly once: the output equals the source but for the three dead-lettered keys.
    const poisoned = new Set([7, 8, 5000]);
    const { source, keyColumns } = await sourceState(s.conn, s.db, TABLES);
    for (const [table, rows] of source)
      source.set(
        table,
        rows.filter((row) => !poisoned.has(Number(row.id))),
      );
    const output = readJsonl(s.out).filter((l) => !poisoned.has(Number(l.key?.id)));
    const report = checkConsistency(output, source, { keyColumns });
    expect(report.ok, formatReport(report)).toBe(true);

    const status = await runTidemark(['status', '-c', s.config, '--json']);
    expect(JSON.parse(status.stdout).deadLetters).toEqual({ total: 3, byTable: { [`${s.db}.orders`]: 3 } });
    await s.conn.end();
  });

  it('with errors.mode fail, stops at such a row naming table, key, position and the setting, committing nothing after it', async () => {
    const s = await setup(ids(7710), 'fail');
    const sync = tidemark(['sync', '-c', s.config], ENV);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await s.conn.query('UPDATE orders SET version = version + 1 WHERE id = 20');
    await s.conn.query('UPDATE orders SET version = version + 1, payload = ? WHERE id = 21', [POISON]);
    await s.conn.query('UPDATE orders SET version = version + 1 WHERE id = 22');
    const exit = await sync.exited;
    expect(exit.code).toBe(1);
    expect(sync.stderr).toMatch(
      new RegExp(`cannot encode a row of ${s.db}\\.orders with key \\{"id":21\\} in the binlog transaction ending at \\S+:\\d+.*errors\\.mode: dead-letter`),
    );
    const changed = readJsonl(s.out)
      .filter((l) => l.value?.op === 'u')
      .map((l) => l.value!.after!.id);
    expect(changed).toEqual([20]);
    expect(existsSync(`${s.dir}/out.dead.jsonl`)).toBe(false);
    // The same row stops the next run again: it is never skipped.
    const again = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], ENV);
    expect(again.code).toBe(1);
    expect(
      readJsonl(s.out)
        .filter((l) => l.value?.op === 'u')
        .map((l) => l.value!.after!.id),
    ).toEqual([20]);
    await s.conn.end();
  });
});

describe('records Kafka refuses for their size', () => {
  const url = urlOf('mysql');
  const brokers = () => inject('kafkaBrokers').split(',');

  async function setup(serverId: number, mode: 'fail' | 'dead-letter') {
    const { db, conn } = await freshDatabase(url, 'big');
    await conn.query('CREATE TABLE docs (id INT PRIMARY KEY, body LONGTEXT NOT NULL, version INT NOT NULL)');
    await conn.query('INSERT INTO docs VALUES (1, ?, 1), (2, ?, 1)', ['small', 'x'.repeat(1_200_000)]);
    const dir = tempDir();
    const prefix = `big-${serverId}-${Date.now()}`;
    const config = writeConfig(dir, {
      name: 'big',
      source: { ...sourceFromUrl(url), serverId, tables: [`${db}.docs`] },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'kafka', brokers: brokers(), topicPrefix: prefix },
      errors: { mode },
    });
    return { db, conn, dir, prefix, config };
  }

  it('go to <topicPrefix>.tidemark.dead with errors.mode dead-letter', async () => {
    const s = await setup(7730, 'dead-letter');
    const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const data = await readCommitted(brokers().join(','), [`${s.prefix}.${s.db}.docs`]);
    expect(data.map((m) => m.key)).toEqual(['{"id":1}']);
    const dead = await readCommitted(brokers().join(','), [`${s.prefix}.tidemark.dead`]);
    expect(dead).toHaveLength(1);
    const letter = JSON.parse(dead[0]!.value!) as Record<string, unknown>;
    expect(letter).toMatchObject({ connector: 'big', db: s.db, table: 'docs', key: { id: 2 }, reason: 'too-large', row: null });
    expect(String(letter.error)).toMatch(/over sink\.maxRecordBytes \(1000000\)/);
    await s.conn.end();
  });

  it('stop the run with errors.mode fail, naming the record and the settings', async () => {
    const s = await setup(7735, 'fail');
    const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(new RegExp(`${s.db}\\.docs with key \\{"id":2\\}.*sink\\.maxRecordBytes.*message\\.max\\.bytes.*errors\\.mode: dead-letter`));
    await s.conn.end();
  });
});
