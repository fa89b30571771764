import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointStore } from '../../src/checkpoint/store.js';
import { DebeziumEncoder } from '../../src/events/debezium.js';
import type { ChangeEvent, OutputRecord } from '../../src/events/event.js';
import { encodeLines, JsonlSink } from '../../src/sink/jsonl.js';
import type { PreparedBatch, Sink } from '../../src/sink/sink.js';
import type { Position } from '../../src/source/position.js';
import { Committer } from '../../src/sync/committer.js';

let dir: string;
let dbPath: string;
let outPath: string;
const cleanup: (() => unknown)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-committer-'));
  dbPath = join(dir, 'checkpoint.db');
  outPath = join(dir, 'out.jsonl');
});

afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
  rmSync(dir, { recursive: true, force: true });
});

function openStore(): CheckpointStore {
  const s = CheckpointStore.open(dbPath);
  let closed = false;
  const close = s.close.bind(s);
  s.close = () => {
    if (!closed) close();
    closed = true;
  };
  cleanup.push(() => s.close());
  return s;
}

function openSink(): JsonlSink {
  const s = new JsonlSink(outPath);
  cleanup.push(() => s.close());
  return s;
}

const encoder = new DebeziumEncoder({ name: 'tm', tombstones: false, schemaChanges: true });
const pos = (n: number): Position => ({ file: 'binlog.000004', pos: n });

function change(id: number): ChangeEvent {
  return {
    op: 'c',
    db: 'db',
    table: 't',
    key: JSON.stringify({ id }),
    before: null,
    after: JSON.stringify({ id, version: 1 }),
    row: 0,
    source: { file: 'binlog.000004', pos: 1000 + id, gtid: null, serverId: 1, tsMs: 1, snapshot: false },
  };
}

function outputIds(): number[] {
  return readFileSync(outPath, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { key: { id: number } }).key.id);
}

function recordsOf(events: ChangeEvent[]): OutputRecord[] {
  const out: OutputRecord[] = [];
  for (const e of events) encoder.encode(e, out, 1);
  return out;
}

describe('Committer', () => {
  it('commits output and checkpoint together', async () => {
    const store = openStore();
    store.addTable('db.t', 'snapshotting', ['id'], null);
    store.addChunk('db.t', 0, null, null);
    const committer = new Committer(store, openSink(), encoder);
    await committer.recover();
    await committer.commit([change(1), change(2)], { chunksDone: [{ table: 'db.t', idx: 0, lw: pos(10), hw: pos(20), rows: 2 }] });
    expect(outputIds()).toEqual([1, 2]);
    expect(store.lastCommittedSeq()).toBe(1);
    expect(store.sinkState()?.split('@')[0]).toBe(String(statSync(outPath).size));
    expect(store.pendingCommit()).toBeUndefined();
    expect(store.tables()[0]!.state).toBe('streaming');
    expect(committer.committedRecords).toBe(2);
  });

  it('recover finishes a pending commit whose output the file holds', async () => {
    const store = openStore();
    store.addTable('db.t', 'snapshotting', ['id'], null);
    store.addChunk('db.t', 0, null, null);
    const first = new Committer(store, openSink(), encoder);
    await first.recover();
    await first.commit([change(1)], { stream: pos(100) });
    const committedLength = statSync(outPath).size;

    // Crash between the sink's commit (step 2) and finishing it in SQLite (step 3).
    const bytes = encodeLines(recordsOf([change(2), change(3)]));
    const seq = store.beginCommit(
      { chunksDone: [{ table: 'db.t', idx: 0, lw: pos(110), hw: pos(120), rows: 2 }], stream: pos(200) },
      String(committedLength + bytes.length),
    );
    appendFileSync(outPath, bytes);
    store.close();

    const store2 = openStore();
    const second = new Committer(store2, openSink(), encoder);
    await second.recover();
    expect(store2.pendingCommit()).toBeUndefined();
    expect(store2.lastCommittedSeq()).toBe(seq);
    expect(store2.sinkState()?.split('@')[0]).toBe(String(committedLength + bytes.length));
    expect(store2.streamPosition()).toEqual(pos(200));
    expect(store2.chunks('db.t')[0]!.status).toBe('done');
    expect(outputIds()).toEqual([1, 2, 3]);

    // The sink was opened at the recovered length: the next commit appends after it.
    await second.commit([change(4)], {});
    expect(outputIds()).toEqual([1, 2, 3, 4]);
    expect(store2.lastCommittedSeq()).toBe(seq + 1);
  });

  it('recover discards a pending commit the file does not hold, and truncates the torn output', async () => {
    const store = openStore();
    store.addTable('db.t', 'snapshotting', ['id'], null);
    store.addChunk('db.t', 0, null, null);
    const first = new Committer(store, openSink(), encoder);
    await first.recover();
    await first.commit([change(1)], { stream: pos(100) });
    const committedLength = statSync(outPath).size;

    // Crash in the middle of the sink's write.
    const bytes = encodeLines(recordsOf([change(2), change(3)]));
    store.beginCommit(
      { chunksDone: [{ table: 'db.t', idx: 0, lw: pos(110), hw: pos(120), rows: 2 }], stream: pos(200) },
      String(committedLength + bytes.length),
    );
    appendFileSync(outPath, bytes.subarray(0, bytes.length - 5));
    store.close();

    const store2 = openStore();
    const second = new Committer(store2, openSink(), encoder);
    await second.recover();
    expect(store2.pendingCommit()).toBeUndefined();
    expect(store2.lastCommittedSeq()).toBe(1);
    expect(store2.sinkState()?.split('@')[0]).toBe(String(committedLength));
    expect(store2.streamPosition()).toEqual(pos(100));
    expect(store2.chunks('db.t')[0]!.status).toBe('pending');
    expect(statSync(outPath).size).toBe(committedLength);
    expect(outputIds()).toEqual([1]);

    // The discarded batch is produced again under the same sequence number.
    await second.commit([change(2), change(3)], { chunksDone: [{ table: 'db.t', idx: 0, lw: pos(110), hw: pos(120), rows: 2 }] });
    expect(outputIds()).toEqual([1, 2, 3]);
    expect(store2.lastCommittedSeq()).toBe(2);
    expect(store2.tables()[0]!.state).toBe('streaming');
  });

  it('recover with nothing pending only opens the sink at the committed state', async () => {
    const store = openStore();
    const first = new Committer(store, openSink(), encoder);
    await first.recover();
    await first.commit([change(1)], {});
    const committedLength = statSync(outPath).size;
    appendFileSync(outPath, 'stray output of an uncommitted batch\n');
    store.close();

    const store2 = openStore();
    await new Committer(store2, openSink(), encoder).recover();
    expect(statSync(outPath).size).toBe(committedLength);
    expect(store2.lastCommittedSeq()).toBe(1);
  });

  it('serialises commits: each starts only after the one before has finished', async () => {
    const store = openStore();
    const inner = openSink();
    const log: string[] = [];
    let inFlight = 0;
    // Slow, out-of-order-finishing commits expose any overlap.
    const delays = [30, 1, 10];
    let n = 0;
    const slow: Sink = {
      guarantee: 'exactly-once',
      holds: (s) => inner.holds(s),
      open: (s) => inner.open(s),
      prepare: (records: OutputRecord[], seq: number) => {
        log.push(`prepare ${seq}`);
        return inner.prepare(records);
      },
      commit: async (batch: PreparedBatch) => {
        inFlight++;
        expect(inFlight).toBe(1);
        const i = n++;
        log.push(`commit ${i + 1} start (pending ${store.pendingCommit()?.seq})`);
        await new Promise((r) => setTimeout(r, delays[i]));
        await inner.commit(batch);
        log.push(`commit ${i + 1} end`);
        inFlight--;
      },
      close: () => inner.close(),
    };
    const committer = new Committer(store, slow, encoder);
    await committer.recover();
    const done = [
      committer.commit([change(1)], { stream: pos(1) }),
      committer.commit([change(2), change(3)], { stream: pos(2) }),
      committer.commit([change(4)], { stream: pos(3) }),
    ];
    await Promise.all(done);
    await committer.drain();
    expect(log).toEqual([
      'prepare 1',
      'commit 1 start (pending 1)',
      'commit 1 end',
      'prepare 2',
      'commit 2 start (pending 2)',
      'commit 2 end',
      'prepare 3',
      'commit 3 start (pending 3)',
      'commit 3 end',
    ]);
    expect(outputIds()).toEqual([1, 2, 3, 4]);
    expect(store.lastCommittedSeq()).toBe(3);
    expect(store.streamPosition()).toEqual(pos(3));
    expect(store.sinkState()?.split('@')[0]).toBe(String(statSync(outPath).size));
    expect(committer.committedRecords).toBe(4);
  });

  it('a failed sink commit rejects its own promise and leaves the commit pending', async () => {
    const store = openStore();
    const inner = openSink();
    const failing: Sink = {
      guarantee: 'exactly-once',
      holds: (s) => inner.holds(s),
      open: (s) => inner.open(s),
      prepare: (records) => inner.prepare(records),
      commit: async () => {
        throw new Error('disk full');
      },
      close: () => inner.close(),
    };
    const committer = new Committer(store, failing, encoder);
    await committer.recover();
    await expect(committer.commit([change(1)], { stream: pos(9) })).rejects.toThrow('disk full');
    await expect(committer.drain()).resolves.toBeUndefined();
    expect(store.pendingCommit()?.seq).toBe(1);
    expect(store.lastCommittedSeq()).toBe(0);
    expect(store.streamPosition()).toBeUndefined();
    expect(committer.committedRecords).toBe(0);
  });
});
