import { describe, expect, it } from 'vitest';
import { DebeziumEncoder } from '../../src/events/debezium.js';
import type { ChangeEvent, OutputRecord, RowEvent } from '../../src/events/event.js';

const NOW = 1_767_225_600_123;

function event(op: RowEvent['op'], over: Partial<RowEvent> = {}): RowEvent {
  return {
    op,
    db: 'shop',
    table: 'orders',
    key: '{"id":7}',
    before: op === 'c' || op === 'r' ? null : '{"id":7,"version":1}',
    after: op === 'd' ? null : '{"id":7,"version":2}',
    row: 2,
    source: {
      file: 'binlog.000010',
      pos: 4567,
      gtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:23',
      serverId: 101,
      tsMs: 1_700_000_000_000,
      snapshot: false,
    },
    ...over,
  };
}

interface Parsed {
  topic: string;
  key: unknown;
  value: unknown;
}

/** The records with their JSON parsed, so assertions read as objects. */
function encode(enc: DebeziumEncoder, e: ChangeEvent): Parsed[] {
  const out: OutputRecord[] = [];
  enc.encode(e, out, NOW);
  return out.map((r) => ({ topic: r.topic, key: JSON.parse(r.key), value: r.value === null ? null : JSON.parse(r.value) }));
}

describe('DebeziumEncoder', () => {
  const enc = new DebeziumEncoder({ name: 'tm', tombstones: true, schemaChanges: true });

  it('names topics <name>.<db>.<table>', () => {
    expect(enc.topic('shop', 'orders')).toBe('tm.shop.orders');
    expect(new DebeziumEncoder({ name: 'prod-eu', tombstones: false, schemaChanges: true }).topic('a_b', 'c')).toBe('prod-eu.a_b.c');
  });

  it('writes the full envelope of an update', () => {
    expect(encode(enc, event('u'))).toEqual([
      {
        topic: 'tm.shop.orders',
        key: { id: 7 },
        value: {
          before: { id: 7, version: 1 },
          after: { id: 7, version: 2 },
          source: {
            version: '0.1.0',
            connector: 'mysql',
            name: 'tm',
            ts_ms: 1_700_000_000_000,
            snapshot: false,
            db: 'shop',
            table: 'orders',
            server_id: 101,
            gtid: '3e11fa47-71ca-11e1-9e33-c80aa9429562:23',
            file: 'binlog.000010',
            pos: 4567,
            row: 2,
          },
          op: 'u',
          ts_ms: NOW,
        },
      },
    ]);
  });

  it('marks snapshot reads and keeps a null GTID', () => {
    const [r] = encode(enc, event('r', { row: 0, source: { ...event('r').source, snapshot: true, gtid: null, serverId: 0 } }));
    const value = r!.value as { op: string; before: unknown; after: unknown; source: Record<string, unknown> };
    expect(r!.topic).toBe('tm.shop.orders');
    expect(value.op).toBe('r');
    expect(value.before).toBeNull();
    expect(value.after).toEqual({ id: 7, version: 2 });
    expect(value.source).toMatchObject({ snapshot: true, gtid: null, server_id: 0, row: 0, file: 'binlog.000010', pos: 4567 });
  });

  it('appends to the output array it is given', () => {
    const out: OutputRecord[] = [{ topic: 'x', key: '{}', value: '1' }];
    enc.encode(event('c'), out, NOW);
    expect(out).toHaveLength(2);
    expect(out[0]).toEqual({ topic: 'x', key: '{}', value: '1' });
    expect((JSON.parse(out[1]!.value!) as { op: string }).op).toBe('c');
  });

  it('writes exactly the JSON of the envelope object, field for field and in order', () => {
    const out: OutputRecord[] = [];
    const before = { id: 7, s: 'a "quoted" \\ line\n', n: null };
    const after = { id: 7, j: { x: [1, '😀'] } };
    const e = event('u', { before: JSON.stringify(before), after: JSON.stringify(after) });
    enc.encode(e, out, NOW);
    const envelope = {
      before,
      after,
      source: {
        version: '0.1.0',
        connector: 'mysql',
        name: 'tm',
        ts_ms: e.source.tsMs,
        snapshot: false,
        db: 'shop',
        table: 'orders',
        server_id: 101,
        gtid: e.source.gtid,
        file: 'binlog.000010',
        pos: 4567,
        row: 2,
      },
      op: 'u',
      ts_ms: NOW,
    };
    expect(out[0]!.value).toBe(JSON.stringify(envelope));
    expect(out[0]!.key).toBe(JSON.stringify({ id: 7 }));
  });

  it('follows a delete with a tombstone when enabled', () => {
    const out = encode(enc, event('d'));
    expect(out).toHaveLength(2);
    expect(out[0]).toMatchObject({ topic: 'tm.shop.orders', key: { id: 7 }, value: { op: 'd', before: { id: 7, version: 1 }, after: null } });
    expect(out[1]).toEqual({ topic: 'tm.shop.orders', key: { id: 7 }, value: null });
  });

  it('writes no tombstone when disabled, and none for other ops', () => {
    const off = new DebeziumEncoder({ name: 'tm', tombstones: false, schemaChanges: true });
    expect(encode(off, event('d'))).toHaveLength(1);
    expect(encode(off, event('d'))[0]!.value).not.toBeNull();
    for (const op of ['c', 'u', 'r', 't'] as const) expect(encode(enc, event(op)), op).toHaveLength(1);
  });
});
