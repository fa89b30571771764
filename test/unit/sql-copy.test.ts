import { describe, expect, it } from 'vitest';
import type { ChangeEvent, EventSource, RowEvent } from '../../src/events/event.js';
import { hasColumns, rowHeads, valueEnd } from '../../src/sink/json-rows.js';
import { copyField, copyLine, isPlainInteger, postgresText } from '../../src/sink/postgres-values.js';
import { planEvents } from '../../src/sink/sql-plan.js';
import type { ColumnInfo } from '../../src/source/schema.js';
import { col } from '../support/columns.js';

const COLUMNS: ColumnInfo[] = [
  col('id', 'int'),
  col('big', 'bigint', { columnType: 'bigint unsigned', unsigned: true }),
  col('dec', 'decimal', { numericPrecision: 10, numericScale: 2 }),
  col('f', 'float'),
  col('d', 'double'),
  col('vc', 'varchar', { columnType: 'varchar(50)', nullable: true }),
  col('tx', 'text', { nullable: true }),
  col('bl', 'blob', { nullable: true }),
  col('bt', 'bit', { columnType: 'bit(10)', numericPrecision: 10 }),
  col('st', 'set', { columnType: "set('a','b\"c')" }),
  col('js', 'json', { nullable: true }),
  col('g', 'geometry', { nullable: true }),
  col('dt', 'datetime', { columnType: 'datetime(6)', datetimePrecision: 6 }),
  col('"odd\\name', 'varchar', { columnType: 'varchar(5)' }),
];

const ROWS: Record<string, unknown>[] = [
  {
    id: 1,
    big: '18446744073709551615',
    dec: '12.50',
    f: -0,
    d: 1.5e300,
    vc: 'plain',
    tx: 'tab\there, newline\nand \\ backslash, "quotes", \r, \u0001 and \u2028 ünï',
    bl: 'AAEC/w==',
    bt: 513,
    st: ['a', 'b"c'],
    js: '{"a": [1, "x,}"]}',
    g: { wkb: 'AQEAAAAAAAAAAADwPwAAAAAAAABA', srid: 4326 },
    dt: '2024-02-29 23:59:59.999999',
    '"odd\\name': 'x',
  },
  {
    id: -2147483648,
    big: 0,
    dec: '-0.01',
    f: 3.4028234663852886e38,
    d: -0.000001,
    vc: null,
    tx: '',
    bl: null,
    bt: 'AQI=',
    st: [],
    js: null,
    g: null,
    dt: '0001-01-01 00:00:00.000000',
    '"odd\\name': '\\',
  },
  {
    id: 123456789012345,
    big: 9007199254740992,
    dec: '0.00',
    f: 0,
    d: -0,
    vc: 'ends with \\',
    tx: '"',
    bl: '',
    bt: 0,
    st: ['a'],
    js: '[]',
    g: { wkb: 'AQEAAAAAAAAAAADwPwAAAAAAAABA', srid: 0 },
    dt: '2000-01-01 00:00:00.000000',
    '"odd\\name': '}{,"',
  },
];

/** What the COPY line was before it was read from the JSON text: each value of the parsed row, converted. */
function reference(json: string): string {
  const row = JSON.parse(json) as Record<string, unknown>;
  const texts = COLUMNS.map(postgresText);
  return COLUMNS.map((c, i) => {
    const v = row[c.name];
    return v === null || v === undefined ? '\\N' : copyField(texts[i]!(v));
  }).join('\t');
}

describe('COPY text read from a row’s JSON text', () => {
  const heads = rowHeads(COLUMNS.map((c) => c.name));
  const texts = COLUMNS.map(postgresText);

  it('is the text of each parsed and converted value, for every kind of value', () => {
    for (const row of ROWS) {
      const json = JSON.stringify(row);
      expect(hasColumns(json, heads)).toBe(true);
      expect(copyLine(json, heads, texts)).toBe(reference(json));
    }
  });

  it('matches only rows of exactly the columns, in their order, as JSON.stringify writes them', () => {
    const row = ROWS[0]!;
    const json = JSON.stringify(row);
    const { id, ...rest } = row;
    const others = [
      JSON.stringify({ ...rest, id }),
      JSON.stringify(rest),
      JSON.stringify({ ...row, extra: 1 }),
      JSON.stringify(row, null, 1),
      json.slice(0, -1),
      `${json} `,
    ];
    for (const other of others) {
      expect(hasColumns(other, heads)).toBe(false);
      expect(copyLine(other, heads, texts)).toBeUndefined();
    }
  });

  it('finds the end of each kind of value', () => {
    const json = '{"a":"x\\\\","b":{"c":["}",{"d":"\\""}]},"e":-1.5e-7,"f":true,"g":[]}';
    const ends = ['"x\\\\"', '{"c":["}",{"d":"\\""}]}', '-1.5e-7', 'true', '[]'];
    let at = 0;
    for (const [i, head] of rowHeads(['a', 'b', 'e', 'f', 'g']).entries()) {
      at += head.length;
      const end = valueEnd(json, at);
      expect(json.slice(at, end)).toBe(ends[i]);
      at = end;
    }
    expect(valueEnd('{"a":"open', 5)).toBe(-1);
    expect(valueEnd('{"a":[1,2', 5)).toBe(-1);
  });

  it('takes an integer token as it stands only when JSON.stringify would write it so', () => {
    for (const token of ['0', '7', '-7', '123456789012345', '-123456789012345']) expect(isPlainInteger(token)).toBe(true);
    for (const token of ['-0', '01', '1.5', '1e3', '-', '', '1234567890123456', 'true']) expect(isPlainInteger(token)).toBe(false);
  });
});

describe('planEvents', () => {
  const source = (pos: number): EventSource => ({ file: 'binlog.000001', pos, gtid: null, serverId: 0, tsMs: 0, snapshot: true });
  const event = (op: RowEvent['op'], id: number, at: EventSource, table = 't'): RowEvent => ({
    op,
    db: 'd',
    table,
    key: `{"id":${id}}`,
    before: op === 'r' || op === 'c' ? null : `{"id":${id},"v":0}`,
    after: op === 'd' ? null : `{"id":${id},"v":${id}}`,
    row: 0,
    source: at,
  });
  const changesOf = (events: ChangeEvent[]) => {
    const step = planEvents(events).steps[0];
    if (step?.kind !== 'rows') throw new Error('expected a rows step');
    return [...step.tables.values()];
  };

  it('takes one chunk read as it is: its rows, in order, all snapshot reads', () => {
    const at = source(4);
    const events = [event('r', 3, at), event('r', 1, at), event('r', 2, at)];
    const plan = planEvents(events);
    expect(plan.changes).toBe(3);
    expect(plan.last).toBe(at);
    const [changes] = changesOf(events);
    expect(changes).toMatchObject({ db: 'd', table: 't', deletes: [], onlyReads: true });
    expect(changes!.upserts).toEqual(events);
  });

  it('folds by key whatever else the batch holds', () => {
    const [a, b] = [source(4), source(9)];
    // Two reads of the same key, of two chunk reads: the later one wins.
    expect(changesOf([event('r', 1, a), event('r', 1, b)])[0]!.upserts).toEqual([event('r', 1, b)]);
    const mixed = changesOf([event('r', 1, a), event('u', 1, a), event('d', 2, a), event('c', 3, a), event('d', 3, a)]);
    expect(mixed[0]!.upserts.map((e) => e.op)).toEqual(['u']);
    expect(mixed[0]!.deletes.map((e) => e.key)).toEqual(['{"id":2}', '{"id":3}']);
    expect(mixed[0]!.onlyReads).toBe(false);
    expect(changesOf([event('r', 1, a), event('r', 2, a, 'other')])).toHaveLength(2);
  });
});
