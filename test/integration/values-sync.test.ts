import { join } from 'node:path';
import { isDeepStrictEqual as isEqual } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { readJsonl, type Envelope, type Row } from '../support/consistency.js';
import { FLAVOURS, freshDatabase, type Flavour } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, writeConfig } from '../support/tidemark.js';

// Table, edge rows and expected values are copied from values.test.ts, which proves the encoder in-process;
// this file proves the same values survive the real `tidemark sync` path (snapshot chunks, binlog, sink, JSON).

const DDL = `CREATE TABLE t (
  id INT PRIMARY KEY,
  i8 TINYINT, u8 TINYINT UNSIGNED, i16 SMALLINT, u16 SMALLINT UNSIGNED, i24 MEDIUMINT, u24 MEDIUMINT UNSIGNED,
  i32 INT, u32 INT UNSIGNED, i64 BIGINT, u64 BIGINT UNSIGNED,
  dec65 DECIMAL(65,30), dec10 DECIMAL(10,4), f FLOAT, d DOUBLE,
  ch CHAR(10), vc VARCHAR(50), tx TEXT, bn BINARY(4), vb VARBINARY(10), bl BLOB,
  dt DATE, dt0 DATETIME(0), dt3 DATETIME(3), dt6 DATETIME(6), ts0 TIMESTAMP(0) NULL, ts6 TIMESTAMP(6) NULL,
  tm0 TIME(0), tm6 TIME(6), y YEAR, j JSON, e ENUM('a','b','c😀'), s SET('a','b','c'),
  b1 BIT(1), b12 BIT(12), b64 BIT(64)
) DEFAULT CHARSET utf8mb4`;

const NINES = `${'9'.repeat(35)}.${'9'.repeat(30)}`;
const JSON_TEXT = '{"a":{"b":[1,2.5,"😀",null,true]},"big":18446744073709551615,"neg":-9223372036854775808,"safe":9007199254740991,"s":"ü €"}';

// Written in a +05:30 session with a permissive sql_mode, so TIMESTAMP literals are local time and zero dates and
// the invalid ENUM index 0 are accepted. Parameterised by id so the binlog copies are written by the very same
// literals (and the same session time zone) as the snapshotted originals.
const INSERTS: ((id: number) => string)[] = [
  (id) => `INSERT INTO t VALUES (${id}, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
    '${NINES}', 999999.9999, 1.2345678, 0.1e0 + 0.2e0,
    'é😀', 'x😀y', 'tëxt 😀', X'00FF8000', X'FFFE00', X'80818283C3',
    '9999-12-31', '9999-12-31 23:59:59', '2024-02-29 23:59:59.999', '9999-12-31 23:59:59.999999', '1970-01-01 05:30:01', '2038-01-19 08:44:07.999999',
    '838:59:59', '838:59:58.999999', 2155, '${JSON_TEXT}', 'c😀', 'a,b,c',
    b'1', b'111111111111', b'1111111111111111111111111111111111111111111111111111111111111111')`,
  (id) => `INSERT INTO t VALUES (${id}, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
    '-${NINES}', -12.34, -1234565, -1.7976931348623157e308,
    '', '', '', X'FF', X'', X'',
    '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.000001', '2000-01-01 05:30:00', '2000-01-01 05:29:59.000001',
    '-838:59:59', '-838:59:59.000000', 1901, '[]', 'a', '',
    b'0', b'0', b'0')`,
  (id) => `INSERT INTO t (id) VALUES (${id})`,
  (id) => `INSERT INTO t (id, i64, u64, dec65, dec10, f, d, ch, bn, dt, dt0, dt3, dt6, ts0, ts6, tm0, tm6, y, j, e, s, b12, b64) VALUES
    (${id}, 9007199254740992, 9007199254740991, '0.000000000000000000000000000001', -0.5, 12345.25, 2.2250738585072014e-308, 'ab  ', X'C0C1F5FF',
     '0000-00-00', '0000-00-00 00:00:00', '2024-02-29 00:00:00.5', '0000-00-00 00:00:00.000000', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000',
     '-00:01:00', '-10:00:00', 0, '"just text"', 9, 'b', b'101010101010', b'1000000000000000000000000000000000000000000000000000000000000001')`,
];
const N = INSERTS.length;

const NULL_ROW = {
  i8: null, u8: null, i16: null, u16: null, i24: null, u24: null, i32: null, u32: null, i64: null, u64: null,
  dec65: null, dec10: null, f: null, d: null, ch: null, vc: null, tx: null, bn: null, vb: null, bl: null,
  dt: null, dt0: null, dt3: null, dt6: null, ts0: null, ts6: null, tm0: null, tm6: null, y: null, j: null, e: null, s: null,
  b1: null, b12: null, b64: null,
};

/** The canonical values of rows 1..N, without `id` (the copies differ only there). */
function expectedRows(): Row[] {
  // MariaDB's JSON is a LONGTEXT recognised by its json_valid() check, and parsed like MySQL's, so one table serves both.
  return [
    {
      i8: 127, u8: 255, i16: 32767, u16: 65535, i24: 8388607, u24: 16777215, i32: 2147483647, u32: 4294967295,
      i64: '9223372036854775807', u64: '18446744073709551615',
      dec65: NINES, dec10: '999999.9999', f: 1.23457, d: 0.30000000000000004,
      ch: 'é😀', vc: 'x😀y', tx: 'tëxt 😀', bn: 'AP+AAA==', vb: '//4A', bl: 'gIGCg8M=',
      dt: '9999-12-31', dt0: '9999-12-31T23:59:59', dt3: '2024-02-29T23:59:59.999', dt6: '9999-12-31T23:59:59.999999',
      ts0: '1970-01-01T00:00:01Z', ts6: '2038-01-19T03:14:07.999999Z',
      tm0: '838:59:59', tm6: '838:59:58.999999', y: 2155,
      j: { a: { b: [1, 2.5, '😀', null, true] }, big: '18446744073709551615', neg: '-9223372036854775808', safe: 9007199254740991, s: 'ü €' },
      e: 'c😀', s: ['a', 'b', 'c'], b1: 1, b12: 4095, b64: '//////////8=',
    },
    {
      i8: -128, u8: 0, i16: -32768, u16: 0, i24: -8388608, u24: 0, i32: -2147483648, u32: 0,
      i64: '-9223372036854775808', u64: 0,
      dec65: `-${NINES}`, dec10: '-12.3400', f: -1234560, d: -1.7976931348623157e308,
      ch: '', vc: '', tx: '', bn: '/wAAAA==', vb: '', bl: '',
      dt: '1000-01-01', dt0: '1000-01-01T00:00:00', dt3: '1000-01-01T00:00:00.000', dt6: '1000-01-01T00:00:00.000001',
      ts0: '2000-01-01T00:00:00Z', ts6: '1999-12-31T23:59:59.000001Z',
      tm0: '-838:59:59', tm6: '-838:59:59.000000', y: 1901, j: [],
      e: 'a', s: [], b1: 0, b12: 0, b64: 'AAAAAAAAAAA=',
    },
    { ...NULL_ROW },
    {
      ...NULL_ROW,
      i64: '9007199254740992', u64: 9007199254740991,
      dec65: '0.000000000000000000000000000001', dec10: '-0.5000', f: 12345.2, d: 2.2250738585072014e-308,
      ch: 'ab', bn: 'wMH1/w==',
      dt: null, dt0: null, dt3: '2024-02-29T00:00:00.500', dt6: null, ts0: null, ts6: null,
      tm0: '-00:01:00', tm6: '-10:00:00.000000', y: 0, j: 'just text',
      e: '', s: ['b'], b12: 2730, b64: 'gAAAAAAAAAE=',
    },
  ];
}

const urlOf = (flavour: Flavour) => inject(flavour === 'mysql' ? 'mysqlUrl' : 'mariadbUrl');

function withoutId(row: Row | null | undefined): Row | null | undefined {
  if (!row) return row;
  const { id: _id, ...rest } = row;
  return rest;
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
    try {
      await conn.query(DDL);
      // A non-UTC writer proves tidemark's TIMESTAMP values do not depend on the writing session's zone.
      await conn.query("SET time_zone = '+05:30', sql_mode = ''");
      for (let i = 0; i < N; i++) await conn.query(INSERTS[i]!(i + 1));

      const config = writeConfig(dir, {
        name: 'vals',
        source: { ...sourceFromUrl(urlOf(flavour)), serverId: flavour === 'mysql' ? 7900 : 7950, tables: [`${db}.t`] },
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
      await sync();

      // Row 1 holds every maximum and row 4 the zero dates and invalid ENUM, so both images of each are checked
      // for all of them; the deleted copies are the minimum and all-NULL rows, read back from the binlog's before image.
      await conn.query("UPDATE t SET vc = 'updated' WHERE id IN (1, 4)");
      await conn.query(`DELETE FROM t WHERE id IN (${N + 2}, ${N + 3})`);
      await sync();

      const lines = readJsonl(out);
      const topic = `vals.${db}.t`;
      expect(lines.every((l) => l.topic === topic)).toBe(true);
      const events = lines.map((l) => l.value).filter((v): v is Envelope => v !== null);
      const expected = expectedRows();

      const counts = { r: 0, c: 0, u: 0, d: 0, t: 0 };
      for (const e of events) counts[e.op]++;
      expect(counts).toEqual({ r: N, c: N, u: 2, d: 2, t: 0 });

      const mismatches: string[] = [];
      for (let i = 0; i < N; i++) {
        const r = only(events, 'r', i + 1);
        const c = only(events, 'c', N + i + 1);
        expect(r.source.snapshot, `row ${i + 1} is a snapshot read`).toBe(true);
        expect(c.source.snapshot, `row ${N + i + 1} comes from the binlog`).toBe(false);
        expect(r.before).toBeNull();
        expect(c.before).toBeNull();
        // Collected per column first, so one run names every difference rather than the first.
        for (const col of Object.keys(expected[i]!)) {
          const want = expected[i]![col];
          const fromSnapshot = r.after![col];
          const fromBinlog = c.after![col];
          if (!isEqual(fromSnapshot, want) || !isEqual(fromBinlog, want)) {
            mismatches.push(`row ${i + 1} ${col}: snapshot ${JSON.stringify(fromSnapshot)}, binlog ${JSON.stringify(fromBinlog)}, expected ${JSON.stringify(want)}`);
          }
        }
      }
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
