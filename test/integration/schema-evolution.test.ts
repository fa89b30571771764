import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, type OutputLine, readJsonl, selectAllCanonical } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';

// A stream behind an ALTER must encode each row with the columns of its time, not the server's columns now.
const STEPS: { ddl?: string; writes: string[]; expect: { op: 'c' | 'u'; id: number; columns: string[]; values?: Record<string, unknown> }[] }[] = [
  { writes: ["INSERT INTO items VALUES (6, 1, 'six', 60, 6, 'text six')"], expect: [{ op: 'c', id: 6, columns: ['id', 'version', 'a', 'b', 'n', 't'] }] },
  {
    ddl: 'ALTER TABLE items ADD COLUMN c VARCHAR(10) AFTER a',
    writes: ["INSERT INTO items VALUES (7, 1, 'seven', 'c7', 70, 7, 'text seven')", "UPDATE items SET version = version + 1, c = 'c1' WHERE id = 1"],
    expect: [
      { op: 'c', id: 7, columns: ['id', 'version', 'a', 'c', 'b', 'n', 't'] },
      { op: 'u', id: 1, columns: ['id', 'version', 'a', 'c', 'b', 'n', 't'], values: { c: 'c1' } },
    ],
  },
  {
    ddl: '/* drop */ ALTER TABLE items DROP COLUMN b',
    writes: ["INSERT INTO items VALUES (8, 1, 'eight', 'c8', 8, 'text eight')", 'UPDATE items SET version = version + 1 WHERE id = 2'],
    expect: [
      { op: 'c', id: 8, columns: ['id', 'version', 'a', 'c', 'n', 't'] },
      { op: 'u', id: 2, columns: ['id', 'version', 'a', 'c', 'n', 't'] },
    ],
  },
  {
    ddl: 'ALTER TABLE items CHANGE a a2 VARCHAR(30)',
    writes: ["UPDATE items SET version = version + 1, a2 = 'three!' WHERE id = 3"],
    expect: [{ op: 'u', id: 3, columns: ['id', 'version', 'a2', 'c', 'n', 't'], values: { a2: 'three!' } }],
  },
  {
    ddl: 'ALTER TABLE items MODIFY n BIGINT UNSIGNED',
    writes: ["INSERT INTO items VALUES (9, 1, 'nine', 'c9', 18446744073709551615, 'text nine')"],
    expect: [{ op: 'c', id: 9, columns: ['id', 'version', 'a2', 'c', 'n', 't'], values: { n: '18446744073709551615' } }],
  },
  {
    ddl: 'ALTER TABLE items MODIFY t BLOB',
    writes: ["INSERT INTO items VALUES (10, 1, 'ten', 'c10', 10, 'bytes')"],
    expect: [{ op: 'c', id: 10, columns: ['id', 'version', 'a2', 'c', 'n', 't'], values: { t: Buffer.from('bytes').toString('base64') } }],
  },
  {
    ddl: 'ALTER TABLE items RENAME COLUMN c TO c2',
    writes: ["UPDATE items SET version = version + 1, c2 = 'c4' WHERE id = 4"],
    expect: [{ op: 'u', id: 4, columns: ['id', 'version', 'a2', 'c2', 'n', 't'], values: { c2: 'c4' } }],
  },
  // Every row brought to the last version, so the folded output can equal the table.
  { ddl: 'ALTER TABLE items DROP COLUMN t', writes: ['UPDATE items SET version = version + 1'], expect: [] },
];

async function setup(flavour: Flavour, serverId: number) {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'evolve');
  await conn.query('CREATE TABLE items (id INT PRIMARY KEY, version INT NOT NULL, a VARCHAR(20), b INT, n INT, t TEXT)');
  for (let id = 1; id <= 5; id++) await conn.query('INSERT INTO items VALUES (?, 1, ?, ?, ?, ?)', [id, `row ${id}`, id * 10, id, `text ${id}`]);
  const dir = tempDir();
  const out = join(dir, 'out.jsonl');
  const config = writeConfig(dir, {
    name: 'evolve',
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.items`] },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: { type: 'jsonl', path: out },
    commit: { maxRecords: 100, maxDelayMs: 50 },
  });
  return { db, conn, out, config };
}

function expectSegments(lines: OutputLine[], db: string): void {
  const changes = lines.filter((l) => l.topic === `evolve.${db}.items` && l.value !== null && l.value.op !== 'r');
  const expected = STEPS.flatMap((s) => s.expect);
  const seen = changes.slice(0, expected.length).map((l) => ({ op: l.value!.op, id: l.value!.after!.id, columns: Object.keys(l.value!.after!) }));
  expect(seen).toEqual(expected.map(({ op, id, columns }) => ({ op, id, columns })));
  expected.forEach((e, i) => {
    if (e.values) expect(changes[i]!.value!.after).toMatchObject(e.values);
  });
  const schemaEvents = lines
    .filter((l) => l.topic === 'evolve')
    .map((l) => l.value as unknown as { ddl: string; tableChanges: { type: string; table: { columns: { name: string }[] } }[] });
  expect(schemaEvents.map((e) => e.ddl)).toEqual(STEPS.flatMap((s) => (s.ddl ? [s.ddl] : [])));
  expect(schemaEvents.map((e) => e.tableChanges[0]!.table.columns.map((c) => c.name))).toEqual([
    ['id', 'version', 'a', 'c', 'b', 'n', 't'],
    ['id', 'version', 'a', 'c', 'n', 't'],
    ['id', 'version', 'a2', 'c', 'n', 't'],
    ['id', 'version', 'a2', 'c', 'n', 't'],
    ['id', 'version', 'a2', 'c', 'n', 't'],
    ['id', 'version', 'a2', 'c2', 'n', 't'],
    ['id', 'version', 'a2', 'c2', 'n'],
  ]);
}

async function expectFoldedEqualsSource(s: Awaited<ReturnType<typeof setup>>): Promise<void> {
  const source = new Map([[`${s.db}.items`, await selectAllCanonical(s.conn, s.db, 'items', ['id'])]]);
  const rows = readJsonl(s.out).filter((l) => l.topic !== 'evolve');
  const report = checkConsistency(rows, source, { keyColumns: { [`${s.db}.items`]: ['id'] }, columnsChange: true });
  expect(report.ok, formatReport(report)).toBe(true);
}

async function runSteps(s: Awaited<ReturnType<typeof setup>>): Promise<void> {
  for (const step of STEPS) {
    if (step.ddl) await s.conn.query(step.ddl);
    for (const w of step.writes) await s.conn.query(w);
  }
}

describe.each(FLAVOURS)('schema evolution on %s', (flavour) => {
  const ids = (base: number) => base + (flavour === 'mysql' ? 0 : 50);

  it('restarted far behind several ALTERs, encodes each row with the columns of its time', async () => {
    const s = await setup(flavour, ids(7800));
    const first = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    await runSteps(s);
    const behind = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(behind.code, behind.stderr.slice(-3000)).toBe(0);
    expectSegments(readJsonl(s.out), s.db);
    await expectFoldedEqualsSource(s);
    await s.conn.end();
  });

  it('does the same while streaming live', async () => {
    const s = await setup(flavour, ids(7810));
    const sync = tidemark(['sync', '-c', s.config]);
    await sync.waitForLog((l) => l.msg === 'streaming');
    await runSteps(s);
    await s.conn.query('UPDATE items SET version = version + 1 WHERE id = 5');
    for (let waited = 0; !readJsonl(s.out).some((l) => l.value?.after?.id === 5 && l.value.after.version === 3); waited += 50) {
      if (waited > 20_000) throw new Error(`the last change did not arrive; stderr:\n${sync.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await sync.kill('SIGTERM')).code).toBe(0);
    expectSegments(readJsonl(s.out), s.db);
    await expectFoldedEqualsSource(s);
    await s.conn.end();
  });
});

describe.each(FLAVOURS)('a DDL statement tidemark cannot read on %s', (flavour) => {
  it('stops the run, naming the statement, when the stream is behind it; nothing after it is committed', async () => {
    const s = await setup(flavour, flavour === 'mysql' ? 7830 : 7880);
    const first = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    await s.conn.query('ALTER TABLE items CONVERT TO CHARACTER SET latin1');
    await s.conn.query("INSERT INTO items (id, version, a) VALUES (100, 1, 'after')");
    const behind = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 30_000);
    expect(behind.code, behind.stderr.slice(-2000)).toBe(1);
    expect(behind.stderr).toMatch(/cannot read the DDL statement "ALTER TABLE items CONVERT TO CHARACTER SET latin1".*stream is behind it/);
    expect(readJsonl(s.out).some((l) => l.value?.after?.id === 100)).toBe(false);
    await s.conn.end();
  });
});

describe.each(FLAVOURS)('the row images against the schema history on %s', (flavour) => {
  it('stop the stream when they disagree, instead of encoding rows with the wrong columns', async () => {
    const s = await setup(flavour, flavour === 'mysql' ? 7840 : 7890);
    const first = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
    expect(first.code, first.stderr.slice(-2000)).toBe(0);
    // A history that missed a DDL statement: its version lacks the column b the table has.
    const db = new Database(join(dirname(s.config), 'checkpoint.sqlite'));
    const row = db.prepare('SELECT rowid, schema_json FROM schema_history ORDER BY seq DESC LIMIT 1').get() as { rowid: number; schema_json: string };
    const schema = JSON.parse(row.schema_json) as { columns: { name: string }[] };
    schema.columns = schema.columns.filter((c) => c.name !== 'b');
    db.prepare('UPDATE schema_history SET schema_json = ? WHERE rowid = ?').run(JSON.stringify(schema), row.rowid);
    db.close();
    await s.conn.query("INSERT INTO items VALUES (50, 1, 'fifty', 500, 5, 'text')");
    const run = await runTidemark(['sync', '-c', s.config, '--until-caught-up'], undefined, 30_000);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /row images of \S+\.items .* have the columns \(id int, version int, a varchar\(20\), b int, n int, t text\), but tidemark's schema history has/,
    );
    expect(readJsonl(s.out).some((l) => l.value?.after?.id === 50)).toBe(false);
    await s.conn.end();
  });
});
