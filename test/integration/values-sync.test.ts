import { join } from 'node:path';
import { isDeepStrictEqual as isEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ALL_TYPES_DDL, ALL_TYPES_INSERTS, expectedAllTypesRows, flavourTypesTable, type ValuesTable } from '../support/all-types.js';
import { type Envelope, type Row, readJsonl } from '../support/consistency.js';
import { FLAVOURS, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, writeConfig } from '../support/tidemark.js';

// values.test.ts proves the encoder in-process on the same tables; this file proves the same values survive
// the real `tidemark sync` path (snapshot chunks, binlog, sink, JSON).

const DDL = ALL_TYPES_DDL;
const INSERTS = ALL_TYPES_INSERTS;
const N = INSERTS.length;
const expectedRows = expectedAllTypesRows;

function withoutId(row: Row | null | undefined): Row | null | undefined {
  if (!row) return row;
  const { id: _id, ...rest } = row;
  return rest;
}

/** Each column of each row as read by the snapshot (row i) and by the binlog (its copy N + i) against the expected value. */
function mismatchesOf(events: Envelope[], expected: Row[]): string[] {
  const n = expected.length;
  const mismatches: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = only(events, 'r', i + 1);
    const c = only(events, 'c', n + i + 1);
    expect(r.source.snapshot, `row ${i + 1} is a snapshot read`).toBe(true);
    expect(c.source.snapshot, `row ${n + i + 1} comes from the binlog`).toBe(false);
    expect(r.before).toBeNull();
    expect(c.before).toBeNull();
    // Collected per column first, so one run names every difference rather than the first.
    for (const col of Object.keys(expected[i]!)) {
      const want = expected[i]![col];
      const fromSnapshot = r.after![col];
      const fromBinlog = c.after![col];
      if (!isEqual(fromSnapshot, want) || !isEqual(fromBinlog, want)) {
        mismatches.push(
          `row ${i + 1} ${col}: snapshot ${JSON.stringify(fromSnapshot)}, binlog ${JSON.stringify(fromBinlog)}, expected ${JSON.stringify(want)}`,
        );
      }
    }
  }
  return mismatches;
}

/** The one event of `op` on row `id`; more than one is a duplicate across runs and fails. */
function only(events: Envelope[], op: Envelope['op'], id: number): Envelope {
  const found = events.filter((e) => e.op === op && (e.after ?? e.before)?.id === id);
  expect(found, `${op} events for id ${id}`).toHaveLength(1);
  return found[0]!;
}

describe.each(FLAVOURS)('canonical values through tidemark sync on %s', (flavour) => {
  it('writes every type identically from the snapshot and from the binlog', async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'vsync');
    const dir = tempDir();
    const out = join(dir, 'out.jsonl');
    const more: ValuesTable = flavourTypesTable(flavour);
    const M = more.inserts.length;
    try {
      await conn.query(DDL);
      await conn.query(more.ddl);
      // A non-UTC writer proves tidemark's TIMESTAMP values do not depend on the writing session's zone.
      await conn.query("SET time_zone = '+05:30', sql_mode = ''");
      for (let i = 0; i < N; i++) await conn.query(INSERTS[i]!(i + 1));
      for (let i = 0; i < M; i++) await conn.query(more.inserts[i]!(i + 1));

      const config = writeConfig(dir, {
        name: 'vals',
        source: { ...sourceFromUrl(urlOf(flavour)), serverId: flavour === 'mysql' ? 7900 : 7950, tables: [`${db}.t`, `${db}.${more.name}`] },
        // Rows in more than one chunk, so chunk boundaries (and the streaming reader behind them) are crossed.
        snapshot: { mode: 'initial', chunkSize: 2, parallelism: 2 },
        checkpoint: { path: join(dir, 'checkpoint.sqlite') },
        sink: { type: 'jsonl', path: out },
        commit: { maxRecords: 100, maxDelayMs: 100 },
      });
      const sync = async (): Promise<Record<string, unknown>[]> => {
        const run = await runTidemark(['sync', '-c', config, '--until-caught-up']);
        expect(run.code, run.stderr.slice(-4000)).toBe(0);
        return run.logs;
      };

      const firstLogs = await sync();
      expect(firstLogs.filter((l) => l.msg === 'chunk done').length).toBeGreaterThanOrEqual(2);

      for (let i = 0; i < N; i++) await conn.query(INSERTS[i]!(N + i + 1));
      for (let i = 0; i < M; i++) await conn.query(more.inserts[i]!(M + i + 1));
      await sync();

      // Row 1 holds every maximum and row 4 the zero dates and invalid ENUM, so both images of each are checked
      // for all of them; the deleted copies are the minimum and all-NULL rows, read back from the binlog's before image.
      await conn.query("UPDATE t SET vc = 'updated' WHERE id IN (1, 4)");
      await conn.query(`DELETE FROM t WHERE id IN (${N + 2}, ${N + 3})`);
      await sync();

      const lines = readJsonl(out);
      const topic = `vals.${db}.t`;
      const moreTopic = `vals.${db}.${more.name}`;
      expect(lines.every((l) => l.topic === topic || l.topic === moreTopic)).toBe(true);
      const eventsOf = (t: string) =>
        lines
          .filter((l) => l.topic === t)
          .map((l) => l.value as Envelope | null)
          .filter((v): v is Envelope => v !== null);
      const events = eventsOf(topic);
      const expected = expectedRows(flavour);

      const moreEvents = eventsOf(moreTopic);
      expect(moreEvents.map((e) => e.op).sort()).toEqual([...'r'.repeat(M), ...'c'.repeat(M)].sort());
      const moreMismatches = mismatchesOf(moreEvents, more.expected());
      expect(moreMismatches, moreMismatches.join('\n')).toEqual([]);
      for (let i = 0; i < M; i++) expect(withoutId(only(moreEvents, 'c', M + i + 1).after)).toStrictEqual(withoutId(only(moreEvents, 'r', i + 1).after));

      const counts = { r: 0, c: 0, u: 0, d: 0, t: 0 };
      for (const e of events) counts[e.op]++;
      expect(counts).toEqual({ r: N, c: N, u: 2, d: 2, t: 0 });

      const mismatches = mismatchesOf(events, expected);
      expect(mismatches, mismatches.join('\n')).toEqual([]);
      for (let i = 0; i < N; i++) {
        const r = only(events, 'r', i + 1);
        const c = only(events, 'c', N + i + 1);
        expect(r.after!.id).toBe(i + 1);
        expect(c.after!.id).toBe(N + i + 1);
        expect(withoutId(c.after), `row ${N + i + 1} vs row ${i + 1}`).toStrictEqual(withoutId(r.after));
        expect(withoutId(r.after), `row ${i + 1}`).toStrictEqual(expected[i]);
      }

      for (const id of [1, 4]) {
        const u = only(events, 'u', id);
        expect(u.source.snapshot).toBe(false);
        expect(u.before, `update of ${id}: before is the snapshot's after`).toStrictEqual(only(events, 'r', id).after);
        expect(u.after).toStrictEqual({ id, ...expected[id - 1], vc: 'updated' });
      }
      for (const id of [N + 2, N + 3]) {
        const d = only(events, 'd', id);
        expect(d.source.snapshot).toBe(false);
        expect(d.after).toBeNull();
        expect(d.before, `delete of ${id}: before is the create's after`).toStrictEqual(only(events, 'c', id).after);
        expect(d.before).toStrictEqual({ id, ...expected[id - N - 1] });
      }
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });
});
