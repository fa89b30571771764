import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ConsistencyOptions,
  checkConsistency,
  formatReport,
  type Op,
  type OutputLine,
  type ProblemKind,
  type Row,
  readJsonl,
} from '../support/consistency.js';

const TABLE = 'shop.items';
const OPTS: ConsistencyOptions = { keyColumns: { [TABLE]: ['id'] } };

const row = (id: number, version: number, payload = `p${version}`): Row => ({ id, version, payload, amount: '12.50' });

let pos = 0;
let txnSeq = 0;
const txn = (): string => `3e11fa47-71ca-11e1-9e33-c80aa9429562:${++txnSeq}`;

function event(op: Op, before: Row | null, after: Row | null, gtid = txn()): OutputLine {
  pos += 100;
  const image = (after ?? before)!;
  return {
    topic: `tm.${TABLE}`,
    key: { id: image.id },
    value: {
      before,
      after,
      source: { db: 'shop', table: 'items', file: 'binlog.000001', pos, row: 0, gtid, snapshot: op === 'r', ts_ms: pos, server_id: 1 },
      op,
      ts_ms: pos,
    },
  };
}

const read = (r: Row): OutputLine => event('r', null, r);
const create = (r: Row, gtid?: string): OutputLine => event('c', null, r, gtid);
const update = (from: Row, to: Row, gtid?: string): OutputLine => event('u', from, to, gtid);
const del = (r: Row, gtid?: string): OutputLine => event('d', r, null, gtid);
const tombstone = (id: number): OutputLine => ({ topic: `tm.${TABLE}`, key: { id }, value: null });
/** The same change delivered again: same source, later delivery time. */
const redelivered = (line: OutputLine): OutputLine => ({ ...line, value: { ...line.value!, ts_ms: line.value!.ts_ms! + 1 } });

const check = (lines: OutputLine[], rows: Row[], opts: Partial<ConsistencyOptions> = {}) =>
  checkConsistency(lines, new Map([[TABLE, rows]]), { ...OPTS, ...opts });
const kinds = (lines: OutputLine[], rows: Row[], opts?: Partial<ConsistencyOptions>): ProblemKind[] => check(lines, rows, opts).problems.map((p) => p.kind);

function expectConsistent(lines: OutputLine[], rows: Row[], opts?: Partial<ConsistencyOptions>): void {
  const report = check(lines, rows, opts);
  expect(report.ok, formatReport(report)).toBe(true);
}

describe('checkConsistency', () => {
  it('passes a consistent history of creates, updates, deletes with tombstones and a re-insert', () => {
    const lines = [
      create(row(1, 1)),
      update(row(1, 1), row(1, 2)),
      create(row(2, 1)),
      update(row(1, 2), row(1, 3)),
      del(row(2, 1)),
      tombstone(2),
      create(row(2, 1, 'again')),
    ];
    const report = check(lines, [row(1, 3), row(2, 1, 'again')]);
    expect(report.ok, formatReport(report)).toBe(true);
    expect(report.counts).toEqual({ lines: 7, events: { r: 0, c: 3, u: 2, d: 1, t: 0 }, tombstones: 1, keys: 2, liveKeys: 2, sourceRows: 2 });
  });

  it('reports a missing update as a gap, naming both lines', () => {
    const report = check([create(row(1, 1)), update(row(1, 2), row(1, 3))], [row(1, 3)]);
    expect(report.problems.map((p) => p.kind)).toEqual(['gap']);
    expect(report.problems[0]).toMatchObject({ table: TABLE, key: '[1]', lines: [1, 2] });
    expect(report.problems[0]!.message).toMatch(/version jumps from 1 .* to 3/);
  });

  it('reports a create that is neither version 1 nor a key change', () => {
    expect(kinds([create(row(1, 4))], [row(1, 4)])).toEqual(['gap']);
  });

  it('reports a change redelivered from the same source position as a duplicate', () => {
    const u = update(row(1, 1), row(1, 2));
    expect(kinds([create(row(1, 1)), u, redelivered(u), update(row(1, 2), row(1, 3))], [row(1, 3)])).toEqual(['duplicate']);
  });

  it('reports the same change re-emitted at another position as a duplicate, not a gap', () => {
    const lines = [create(row(1, 1)), update(row(1, 1), row(1, 2)), update(row(1, 1), row(1, 2)), update(row(1, 2), row(1, 3))];
    expect(kinds(lines, [row(1, 3)])).toEqual(['duplicate']);
  });

  it('reports a replayed stretch after a delete, which the version chain alone would accept', () => {
    const c = create(row(1, 1));
    const d = del(row(1, 1));
    expect(kinds([c, d, tombstone(1), redelivered(c), redelivered(d), tombstone(1)], [])).toEqual(['duplicate', 'duplicate', 'duplicate']);
  });

  it('reports an identical line as a duplicate line', () => {
    const c = create(row(1, 1));
    const report = check([c, c], [row(1, 1)]);
    expect(report.problems).toMatchObject([{ kind: 'duplicate-line', lines: [1, 2] }]);
  });

  it('reports a key the source has but the output never mentions', () => {
    const report = check([create(row(1, 1))], [row(1, 1), row(7, 2)]);
    expect(report.problems).toMatchObject([{ kind: 'missing', key: '[7]' }]);
  });

  it('reports a key the output deleted but the source still has', () => {
    expect(kinds([create(row(1, 1)), del(row(1, 1))], [row(1, 1)])).toEqual(['missing']);
  });

  it('reports a live key the source does not have', () => {
    const report = check([create(row(1, 1)), create(row(9, 1))], [row(1, 1)]);
    expect(report.problems).toMatchObject([{ kind: 'extra', key: '[9]', lines: [2] }]);
  });

  it('reports a final value that differs from the source, column by column', () => {
    const report = check([create(row(1, 1)), update(row(1, 1), row(1, 2, 'new'))], [row(1, 2, 'newer')]);
    expect(report.problems.map((p) => p.kind)).toEqual(['mismatch']);
    expect(report.problems[0]!.message).toContain('payload: output "new", source "newer"');
  });

  it('reports an update whose before is not the previous after', () => {
    expect(kinds([create(row(1, 1)), update(row(1, 1, 'other'), row(1, 2))], [row(1, 2)])).toEqual(['mismatch']);
  });

  it('passes a snapshot read at any version followed by the next updates', () => {
    expectConsistent([read(row(1, 7)), read(row(2, 1)), update(row(1, 7), row(1, 8)), update(row(1, 8), row(1, 9))], [row(1, 9), row(2, 1)]);
  });

  it('reports a second snapshot read unless the table is re-snapshotted on purpose', () => {
    const lines = [read(row(1, 7)), update(row(1, 7), row(1, 8)), read(row(1, 8))];
    expect(kinds(lines, [row(1, 8)])).toEqual(['order']);
    const r = read(row(1, 7));
    expect(kinds([r, redelivered(r)], [row(1, 7)])).toEqual(['duplicate']);
    expectConsistent(lines, [row(1, 8)], { allowReread: new Set([TABLE]) });
    expect(kinds([read(row(1, 7)), update(row(1, 7), row(1, 8)), read(row(1, 7))], [row(1, 7)], { allowReread: new Set([TABLE]) })).toEqual(['order']);
  });

  it('passes a primary-key change emitted as delete, tombstone, create in one transaction', () => {
    const g = txn();
    expectConsistent([read(row(1, 4)), del(row(1, 4), g), tombstone(1), create(row(100, 5), g)], [row(100, 5)]);
  });

  it('pairs a moved row only with a delete of its previous version in the same transaction', () => {
    expect(kinds([read(row(1, 4)), del(row(1, 4)), tombstone(1), create(row(100, 5))], [row(100, 5)])).toEqual(['gap']);
    const g = txn();
    expect(kinds([read(row(1, 4)), del(row(1, 4), g), create(row(100, 7), g)], [row(100, 7)])).toEqual(['gap']);
    expectConsistent([create(row(100, 5))], [row(100, 5)], { allowUnpairedMoves: true });
  });

  it('accepts tombstones after deletes and reports stray or repeated ones', () => {
    expectConsistent([read(row(1, 1)), del(row(1, 1)), tombstone(1)], []);
    expectConsistent([read(row(1, 1)), read(row(2, 1)), del(row(1, 1)), del(row(2, 1)), tombstone(1), tombstone(2)], []);
    expect(kinds([read(row(1, 1)), tombstone(1)], [row(1, 1)])).toEqual(['order']);
    expect(kinds([read(row(1, 1)), del(row(1, 1)), tombstone(1), tombstone(1)], [])).toEqual(['duplicate']);
  });

  it('treats a truncate as the end of every live key of the table', () => {
    const t: OutputLine = {
      topic: `tm.${TABLE}`,
      key: null,
      value: { before: null, after: null, source: { db: 'shop', table: 'items', gtid: txn() }, op: 't' },
    };
    expectConsistent([read(row(1, 3)), read(row(2, 1)), t, create(row(1, 1))], [row(1, 1)]);
  });

  it('reports a table without key columns and one missing from the source map', () => {
    const other: OutputLine = { ...create(row(1, 1)), topic: 'tm.shop.other' };
    const report = checkConsistency([other], new Map(), { keyColumns: {} });
    expect(report.problems.map((p) => p.kind)).toEqual(['malformed']);
    expect(checkConsistency([create(row(1, 1))], new Map(), OPTS).problems.map((p) => p.kind)).toEqual(['extra']);
  });

  it('keeps the problem list short but counts everything', () => {
    const rows = Array.from({ length: 80 }, (_, i) => row(i + 1, 1));
    const report = check([], rows);
    expect(report.problems).toHaveLength(50);
    expect(report.problemCount).toBe(80);
    expect(formatReport(report)).toContain('… and 30 more');
  });
});

describe('readJsonl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tidemark-jsonl-'));

  it('reads one object per line', () => {
    const lines = [create(row(1, 1)), tombstone(1)];
    const path = join(dir, 'ok.jsonl');
    writeFileSync(path, lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    expect(readJsonl(path)).toEqual(lines);
  });

  it('names the line that is not JSON', () => {
    const path = join(dir, 'torn.jsonl');
    writeFileSync(path, `${JSON.stringify(tombstone(1))}\n{"topic":"tm.shop.it`);
    expect(() => readJsonl(path)).toThrow(/torn\.jsonl:2: not a JSON line/);
  });
});
