import { describe, expect, it } from 'vitest';
import type { CheckpointUpdate } from '../../src/checkpoint/store.js';
import type { ChangeEvent, RowEvent } from '../../src/events/event.js';
import type { Position } from '../../src/source/position.js';
import type { Committer } from '../../src/sync/committer.js';
import { Batcher, type CommitSummary, commitDue } from '../../src/sync/stream/batcher.js';

const limits = { maxRecords: 3, maxDelayMs: 50 };
const at = (pos: number): Position => ({ file: 'binlog.000001', pos });

function event(op: RowEvent['op'], snapshot = false): RowEvent {
  return {
    op,
    db: 'd',
    table: 't',
    key: '{"id":1}',
    before: null,
    after: '{"id":1}',
    row: 0,
    source: { file: 'f', pos: 1, gtid: null, serverId: 1, tsMs: 0, snapshot },
  };
}

describe('commitDue', () => {
  const batch = (records: number, startedMs: number, hasEnd = true) => ({ records, startedMs, hasEnd });
  it('is never due without a position to commit up to', () => {
    expect(commitDue(batch(10, 1, false), 0, 10_000, true, limits)).toBe(false);
  });
  it('is due at maxRecords, not one before', () => {
    expect(commitDue(batch(2, 1000), 1000, 1001, false, limits)).toBe(false);
    expect(commitDue(batch(3, 1000), 1000, 1001, false, limits)).toBe(true);
  });
  it('is due maxDelayMs after the batch started, not one millisecond before', () => {
    expect(commitDue(batch(1, 1000), 0, 1049, false, limits)).toBe(false);
    expect(commitDue(batch(1, 1000), 0, 1050, false, limits)).toBe(true);
  });
  it('commits a position with no change only when idle, and at most once a second', () => {
    expect(commitDue(batch(0, 0), 1000, 1999, true, limits)).toBe(false);
    expect(commitDue(batch(0, 0), 1000, 2000, true, limits)).toBe(true);
    expect(commitDue(batch(0, 0), 1000, 5000, false, limits)).toBe(false);
  });
});

/** A committer that records what it was given and finishes each commit when told to. */
function fakeCommitter() {
  const commits: { events: ChangeEvent[]; update: CheckpointUpdate; finish: (err?: Error) => void }[] = [];
  const committer = {
    commit(events: ChangeEvent[], update: CheckpointUpdate) {
      return new Promise<void>((resolve, reject) => commits.push({ events, update, finish: (err) => (err ? reject(err) : resolve()) }));
    },
  };
  return { committer: committer as unknown as Committer, commits };
}

describe('Batcher', () => {
  it('commits whole transactions with the position and source time of the last one, counting streamed ops', async () => {
    const { committer, commits } = fakeCommitter();
    const summaries: CommitSummary[] = [];
    const b = new Batcher(committer, limits, { countOps: true, committed: (s) => void summaries.push(s), failed: () => {} });
    b.addTransaction([event('c'), event('u')], at(10), 111);
    b.addTransaction([event('u')], at(20), 222);
    await b.flushIfDue(false);
    expect(commits).toHaveLength(1);
    expect(commits[0]!.events).toHaveLength(3);
    expect(commits[0]!.update).toEqual({ stream: at(20), restart: null, sourceTsMs: 222 });
    commits[0]!.finish();
    await b.flush();
    expect(summaries).toEqual([
      {
        end: at(20),
        sourceTsMs: 222,
        chunksDone: [],
        byOp: new Map([
          ['c', 1],
          ['u', 2],
        ]),
      },
    ]);
    expect(b.committedSinceStart).toBe(true);
  });

  it("records the restart point of the batch's last transaction: where an open XA transaction must be read again from", async () => {
    const { committer, commits } = fakeCommitter();
    const b = new Batcher(committer, limits, { countOps: false, committed: () => {}, failed: () => {} });
    b.addTransaction([event('c')], at(10), 1);
    b.addPosition(at(20), at(5));
    const first = b.flush();
    await new Promise((r) => setTimeout(r, 0));
    expect(commits[0]!.update).toMatchObject({ stream: at(20), restart: at(5) });
    commits[0]!.finish();
    await first;
    b.addTransaction([event('c')], at(30), 2);
    const second = b.flush();
    await new Promise((r) => setTimeout(r, 0));
    expect(commits[1]!.update).toMatchObject({ stream: at(30), restart: null });
    commits[1]!.finish();
    await second;
  });

  it('carries the tables a transaction truncated, at its end, into the commit', async () => {
    const { committer, commits } = fakeCommitter();
    const b = new Batcher(committer, limits, { countOps: false, committed: () => {}, failed: () => {} });
    b.addTransaction([event('t')], at(10), 1, { truncated: ['d.t'] });
    b.addTransaction([event('c')], at(20), 2);
    const flushed = b.flush();
    await new Promise((r) => setTimeout(r, 0));
    expect(commits[0]!.update.truncates).toEqual([{ table: 'd.t', at: at(10) }]);
    commits[0]!.finish();
    await flushed;
  });

  it('never splits a transaction larger than maxRecords', async () => {
    const { committer, commits } = fakeCommitter();
    const b = new Batcher(committer, limits, { countOps: false, committed: () => {}, failed: () => {} });
    b.addTransaction([event('c'), event('c'), event('c'), event('c'), event('c')], at(10), 1);
    await b.flushIfDue(false);
    expect(commits.map((c) => c.events.length)).toEqual([5]);
  });

  it('keeps at most one commit in flight: the next batch fills meanwhile and waits for it', async () => {
    const { committer, commits } = fakeCommitter();
    const b = new Batcher(committer, limits, { countOps: false, committed: () => {}, failed: () => {} });
    b.addTransaction([event('c'), event('c'), event('c')], at(10), 1);
    await b.flushIfDue(false);
    b.addTransaction([event('c'), event('c'), event('c')], at(20), 2);
    const second = b.flushIfDue(false);
    await new Promise((r) => setTimeout(r, 10));
    expect(commits).toHaveLength(1);
    commits[0]!.finish();
    await second;
    expect(commits).toHaveLength(2);
    expect(commits[1]!.update.stream).toEqual(at(20));
  });

  it('merges a chunk read while streaming with its done record, at the position the stream reached', async () => {
    const { committer, commits } = fakeCommitter();
    const b = new Batcher(committer, limits, { countOps: true, committed: () => {}, failed: () => {} });
    const done = { table: 'd.t', idx: 4, lw: at(5), hw: at(6), rows: 1 };
    b.addChunk([event('r', true)], done, at(30));
    const flushed = b.flush();
    await new Promise((r) => setTimeout(r, 0));
    expect(commits[0]!.update).toEqual({ stream: at(30), restart: null, chunksDone: [done] });
    commits[0]!.finish();
    await flushed;
  });

  it('reports a failed commit at once and keeps it for the run to throw', async () => {
    const { committer, commits } = fakeCommitter();
    let failed = 0;
    const b = new Batcher(committer, limits, { countOps: false, committed: () => {}, failed: () => failed++ });
    b.addPosition(at(10));
    await b.flushIfDue(true);
    commits[0]!.finish(new Error('fenced'));
    await new Promise((r) => setTimeout(r, 0));
    expect(failed).toBe(1);
    expect(b.failure?.message).toBe('fenced');
  });
});
