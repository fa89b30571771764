import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CheckpointStore } from '../../src/checkpoint/store.js';
import type { Position } from '../../src/source/position.js';

let dir: string;
let path: string;
const open: CheckpointStore[] = [];

function openStore(p = path): CheckpointStore {
  const s = CheckpointStore.open(p);
  open.push(s);
  return s;
}

function closeStore(s: CheckpointStore): void {
  s.close();
  open.splice(open.indexOf(s), 1);
}

/** Reads the file with a separate connection, as a second process would. */
function raw<T>(fn: (db: Database.Database) => T, p = path): T {
  const db = new Database(p, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const pos = (n: number, file = 'binlog.000003'): Position => ({ file, pos: n });

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-store-'));
  path = join(dir, 'nested', 'dir', 'checkpoint.db');
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('opening', () => {
  it('creates the file and its directories, migrates to the latest user_version and uses WAL', () => {
    const store = openStore();
    expect(existsSync(path)).toBe(true);
    expect(raw((db) => db.pragma('user_version', { simple: true }))).toBe(3);
    expect(raw((db) => db.pragma('journal_mode', { simple: true }))).toBe('wal');
    const tables = raw((db) =>
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name),
    );
    expect(tables).toEqual(['chunks', 'commits', 'meta', 'schema_history', 'snapshot_requests', 'tables']);
    expect(store.lastCommittedSeq()).toBe(0);
    expect(store.pendingCommit()).toBeUndefined();
    expect(store.streamPosition()).toBeUndefined();
    expect(store.sinkState()).toBeUndefined();
    expect(store.sourceIdentity()).toBeUndefined();
    expect(store.lastCommitMs()).toBeUndefined();
    expect(store.tables()).toEqual([]);
  });

  it('opens an already migrated file without running the migration again', () => {
    closeStore(openStore());
    // A second CREATE TABLE would throw "table meta already exists".
    const again = openStore();
    expect(raw((db) => db.pragma('user_version', { simple: true }))).toBe(3);
    expect(again.tables()).toEqual([]);
  });

  it('refuses a file written by a newer schema, with a clear message', () => {
    closeStore(openStore());
    const db = new Database(path);
    db.pragma('user_version = 7');
    db.close();
    expect(() => CheckpointStore.open(path)).toThrow(
      `checkpoint ${path} was written by a newer tidemark (schema 7); upgrade tidemark or point checkpoint.path elsewhere`,
    );
    // Nothing was changed by the refused open.
    expect(raw((d) => d.pragma('user_version', { simple: true }))).toBe(7);
  });
});

describe('tables and chunks', () => {
  it('records tables with their chunk key, ordered by name', () => {
    const store = openStore();
    store.addTable('shop.orders', 'snapshotting', ['tenant', 'id'], 1234);
    store.addTable('shop.items', 'pending', ['id'], null);
    expect(store.tables()).toEqual([
      { name: 'shop.items', state: 'pending', chunkKey: ['id'], chunksTotal: null, rowsEstimate: null, snapshotRows: 0, again: false },
      { name: 'shop.orders', state: 'snapshotting', chunkKey: ['tenant', 'id'], chunksTotal: null, rowsEstimate: 1234, snapshotRows: 0, again: false },
    ]);
  });

  it('restarts a table snapshot: chunks forgotten, request settled, marked as taken again', () => {
    const store = openStore();
    store.addTable('db.t', 'streaming', ['id'], 10);
    store.addChunk('db.t', 0, null, null);
    store.requestSnapshot(['db.t', 'db.u']);
    expect(store.snapshotRequests()).toEqual(['db.t', 'db.u']);
    store.restartTableSnapshot('db.t', ['id'], 20, true);
    expect(store.chunks('db.t')).toEqual([]);
    expect(store.snapshotRequests()).toEqual(['db.u']);
    expect(store.tables()).toEqual([
      { name: 'db.t', state: 'snapshotting', chunkKey: ['id'], chunksTotal: null, rowsEstimate: 20, snapshotRows: 0, again: true },
    ]);
  });

  it('stores chunk bounds as JSON and sets chunksTotal only when the last chunk (hi = null) is added', () => {
    const store = openStore();
    store.addTable('db.t', 'snapshotting', ['a', 'b'], 10);
    store.addChunk('db.t', 0, null, [10, 'x']);
    store.addChunk('db.t', 1, [10, 'x'], ['18446744073709551615', 'y']);
    expect(store.tables()[0]!.chunksTotal).toBeNull();
    store.addChunk('db.t', 2, ['18446744073709551615', 'y'], null);
    expect(store.tables()[0]!.chunksTotal).toBe(3);
    expect(store.chunks('db.t')).toEqual([
      { table: 'db.t', idx: 0, lo: null, hi: [10, 'x'], status: 'pending', lw: null, hw: null, rows: null },
      { table: 'db.t', idx: 1, lo: [10, 'x'], hi: ['18446744073709551615', 'y'], status: 'pending', lw: null, hw: null, rows: null },
      { table: 'db.t', idx: 2, lo: ['18446744073709551615', 'y'], hi: null, status: 'pending', lw: null, hw: null, rows: null },
    ]);
    expect(store.chunks('db.other')).toEqual([]);
  });

  it('rejects the same chunk twice and leaves chunksTotal alone then', () => {
    const store = openStore();
    store.addTable('db.t', 'snapshotting', ['id'], null);
    store.addChunk('db.t', 0, null, [5]);
    expect(() => store.addChunk('db.t', 0, null, null)).toThrow(/UNIQUE constraint failed/);
    // The transaction rolled back: the failed "last chunk" did not set the total.
    expect(store.tables()[0]!.chunksTotal).toBeNull();
  });

  it('round-trips the source identity and the stream start', () => {
    const store = openStore();
    store.setSourceIdentity({ flavour: 'mariadb', serverId: '17', version: '10.11.8-MariaDB' });
    store.setStreamStart({ file: 'mariadb-bin.000002', pos: 345, gtid: '0-1-99' });
    expect(store.sourceIdentity()).toEqual({ flavour: 'mariadb', serverId: '17', version: '10.11.8-MariaDB' });
    expect(store.streamPosition()).toEqual({ file: 'mariadb-bin.000002', pos: 345, gtid: '0-1-99' });
    store.setStreamStart(pos(999));
    expect(store.streamPosition()).toEqual(pos(999));
  });
});

describe('commit protocol', () => {
  function withTable(store: CheckpointStore): void {
    store.addTable('db.t', 'snapshotting', ['id'], 200);
    store.addChunk('db.t', 0, null, [100]);
    store.addChunk('db.t', 1, [100], null);
  }

  it('beginCommit records a pending commit without applying it', () => {
    const store = openStore();
    withTable(store);
    const update = { chunksDone: [{ table: 'db.t', idx: 0, lw: pos(100), hw: pos(200), rows: 99 }], stream: pos(300) };
    const seq = store.beginCommit(update, '4096');
    expect(seq).toBe(1);
    expect(store.pendingCommit()).toEqual({ seq: 1, update, sinkState: '4096' });
    expect(store.lastCommittedSeq()).toBe(0);
    expect(store.sinkState()).toBeUndefined();
    expect(store.streamPosition()).toBeUndefined();
    expect(store.chunks('db.t')[0]!.status).toBe('pending');
  });

  it('keeps the restart point of a commit until a later commit of the stream has none', () => {
    const store = openStore();
    store.setStreamStart(pos(100));
    store.finishCommit(store.beginCommit({ stream: pos(300), restart: pos(150) }, '1'));
    expect(store.streamPosition()).toEqual(pos(300));
    expect(store.streamRestart()).toEqual(pos(150));
    // A snapshot chunk commit does not move the stream, so the restart point stays.
    store.finishCommit(store.beginCommit({}, '2'));
    expect(store.streamRestart()).toEqual(pos(150));
    store.finishCommit(store.beginCommit({ stream: pos(400), restart: null }, '3'));
    expect(store.streamRestart()).toBeUndefined();
    store.finishCommit(store.beginCommit({ stream: pos(500), restart: pos(450) }, '4'));
    store.forgetProgress();
    expect(store.streamRestart()).toBeUndefined();
  });

  it('brings the high watermarks of a truncated table down to the truncate, leaving earlier ones and other tables alone', () => {
    const store = openStore();
    withTable(store);
    store.addTable('db.u', 'snapshotting', ['id'], 1);
    store.addChunk('db.u', 0, null, null);
    store.finishCommit(
      store.beginCommit(
        {
          chunksDone: [
            { table: 'db.t', idx: 0, lw: pos(100), hw: pos(200), rows: 1 },
            { table: 'db.t', idx: 1, lw: pos(500), hw: pos(600), rows: 1 },
            { table: 'db.u', idx: 0, lw: pos(500), hw: pos(600), rows: 1 },
          ],
        },
        '1',
      ),
    );
    store.finishCommit(store.beginCommit({ stream: pos(400), truncates: [{ table: 'db.t', at: pos(400) }] }, '2'));
    expect(store.chunks('db.t').map((c) => c.hw)).toEqual([pos(200), pos(400)]);
    expect(store.chunks('db.u').map((c) => c.hw)).toEqual([pos(600)]);
  });

  it('beginCommit while one is pending throws', () => {
    const store = openStore();
    store.beginCommit({}, '1');
    expect(() => store.beginCommit({}, '2')).toThrow('a sink commit is already pending');
    expect(store.pendingCommit()?.sinkState).toBe('1');
  });

  it('finishCommit applies chunks, stream and sink state, bumps the sequence and clears the pending commit', () => {
    const store = openStore();
    withTable(store);
    const before = Date.now();
    const seq = store.beginCommit({ chunksDone: [{ table: 'db.t', idx: 0, lw: pos(100), hw: pos(200), rows: 99 }], stream: pos(300) }, '4096');
    store.finishCommit(seq);
    expect(store.pendingCommit()).toBeUndefined();
    expect(store.lastCommittedSeq()).toBe(1);
    expect(store.sinkState()).toBe('4096');
    expect(store.streamPosition()).toEqual(pos(300));
    expect(store.lastCommitMs()).toBeGreaterThanOrEqual(before);
    expect(store.chunks('db.t')[0]).toEqual({ table: 'db.t', idx: 0, lo: null, hi: [100], status: 'done', lw: pos(100), hw: pos(200), rows: 99 });
    expect(store.chunks('db.t')[1]!.status).toBe('pending');
    expect(store.tables()[0]).toMatchObject({ state: 'snapshotting', snapshotRows: 99, chunksTotal: 2 });

    // The next commit gets the next sequence number; an update without stream keeps the old position.
    const seq2 = store.beginCommit({ chunksDone: [{ table: 'db.t', idx: 1, lw: pos(250), hw: pos(260), rows: 1 }] }, '5000');
    expect(seq2).toBe(2);
    store.finishCommit(seq2);
    expect(store.lastCommittedSeq()).toBe(2);
    expect(store.sinkState()).toBe('5000');
    expect(store.streamPosition()).toEqual(pos(300));
    expect(store.tables()[0]).toMatchObject({ state: 'streaming', snapshotRows: 100 });
  });

  it('turns the table to streaming only when every chunk, including the last, is done', () => {
    const store = openStore();
    store.addTable('db.t', 'snapshotting', ['id'], null);
    store.addChunk('db.t', 0, null, [10]);
    store.finishCommit(store.beginCommit({ chunksDone: [{ table: 'db.t', idx: 0, lw: pos(1), hw: pos(2), rows: 10 }] }, 'a'));
    // Every chunk known so far is done, but the splitter has not produced the last one yet.
    expect(store.tables()[0]!.state).toBe('snapshotting');
    store.addChunk('db.t', 1, [10], [20]);
    store.addChunk('db.t', 2, [20], null);
    store.finishCommit(store.beginCommit({ chunksDone: [{ table: 'db.t', idx: 2, lw: pos(3), hw: pos(4), rows: 5 }] }, 'b'));
    expect(store.tables()[0]!.state).toBe('snapshotting');
    store.finishCommit(store.beginCommit({ chunksDone: [{ table: 'db.t', idx: 1, lw: pos(5), hw: pos(6), rows: 7 }] }, 'c'));
    expect(store.tables()[0]).toMatchObject({ state: 'streaming', chunksTotal: 3, snapshotRows: 22 });
  });

  it('applies chunks of several tables in one commit, each table judged on its own', () => {
    const store = openStore();
    store.addTable('db.a', 'snapshotting', ['id'], null);
    store.addTable('db.b', 'snapshotting', ['id'], null);
    store.addChunk('db.a', 0, null, null);
    store.addChunk('db.b', 0, null, [1]);
    store.addChunk('db.b', 1, [1], null);
    store.finishCommit(
      store.beginCommit(
        {
          chunksDone: [
            { table: 'db.a', idx: 0, lw: pos(1), hw: pos(2), rows: 3 },
            { table: 'db.b', idx: 0, lw: pos(1), hw: pos(2), rows: 4 },
          ],
        },
        'x',
      ),
    );
    expect(store.tables().map((t) => [t.name, t.state, t.snapshotRows])).toEqual([
      ['db.a', 'streaming', 3],
      ['db.b', 'snapshotting', 4],
    ]);
  });

  it('finishCommit of a sequence that is not pending throws and changes nothing', () => {
    const store = openStore();
    expect(() => store.finishCommit(1)).toThrow('no pending commit 1');
    const seq = store.beginCommit({ stream: pos(5) }, 's');
    expect(() => store.finishCommit(seq + 1)).toThrow(`no pending commit ${seq + 1}`);
    expect(store.pendingCommit()?.seq).toBe(seq);
    expect(store.lastCommittedSeq()).toBe(0);
    expect(store.streamPosition()).toBeUndefined();
  });

  it('discardPending forgets the commit without applying it; the sequence number is reused', () => {
    const store = openStore();
    withTable(store);
    const seq = store.beginCommit({ chunksDone: [{ table: 'db.t', idx: 0, lw: pos(1), hw: pos(2), rows: 9 }], stream: pos(7) }, '77');
    store.discardPending(seq);
    expect(store.pendingCommit()).toBeUndefined();
    expect(store.lastCommittedSeq()).toBe(0);
    expect(store.sinkState()).toBeUndefined();
    expect(store.streamPosition()).toBeUndefined();
    expect(store.chunks('db.t')[0]!.status).toBe('pending');
    expect(store.tables()[0]!.snapshotRows).toBe(0);
    expect(store.beginCommit({}, '78')).toBe(1);
  });
});

describe('durability across reopen', () => {
  it('keeps tables, chunks, committed state and a pending commit after close and open', () => {
    const first = openStore();
    first.setSourceIdentity({ flavour: 'mysql', serverId: '3e11fa47-71ca-11e1-9e33-c80aa9429562', version: '9.7.0' });
    first.addTable('db.t', 'snapshotting', ['id'], 50);
    first.addChunk('db.t', 0, null, [25]);
    first.addChunk('db.t', 1, [25], null);
    first.finishCommit(first.beginCommit({ chunksDone: [{ table: 'db.t', idx: 0, lw: pos(10), hw: pos(20), rows: 24 }], stream: pos(30) }, '1000'));
    first.beginCommit({ chunksDone: [{ table: 'db.t', idx: 1, lw: pos(40), hw: pos(50), rows: 26 }] }, '2000');
    const tables = first.tables();
    const chunks = first.chunks('db.t');
    closeStore(first);

    const second = openStore();
    expect(second.sourceIdentity()).toEqual({ flavour: 'mysql', serverId: '3e11fa47-71ca-11e1-9e33-c80aa9429562', version: '9.7.0' });
    expect(second.tables()).toEqual(tables);
    expect(second.chunks('db.t')).toEqual(chunks);
    expect(second.lastCommittedSeq()).toBe(1);
    expect(second.sinkState()).toBe('1000');
    expect(second.streamPosition()).toEqual(pos(30));
    expect(second.pendingCommit()).toEqual({
      seq: 2,
      update: { chunksDone: [{ table: 'db.t', idx: 1, lw: pos(40), hw: pos(50), rows: 26 }] },
      sinkState: '2000',
    });
    second.finishCommit(2);
    expect(second.tables()[0]).toMatchObject({ state: 'streaming', snapshotRows: 50 });
  });
});

describe('forgetProgress', () => {
  it('drops tables, chunks and the stream position but keeps the sequence and sink state', () => {
    const store = openStore();
    store.setSourceIdentity({ flavour: 'mysql', serverId: 'u', version: '8.4.0' });
    store.addTable('db.t', 'snapshotting', ['id'], null);
    store.addChunk('db.t', 0, null, null);
    store.finishCommit(store.beginCommit({ chunksDone: [{ table: 'db.t', idx: 0, lw: pos(1), hw: pos(2), rows: 1 }], stream: pos(3) }, '321'));
    store.forgetProgress();
    expect(store.tables()).toEqual([]);
    expect(store.chunks('db.t')).toEqual([]);
    expect(store.streamPosition()).toBeUndefined();
    expect(store.lastCommittedSeq()).toBe(1);
    expect(store.sinkState()).toBe('321');
    expect(store.sourceIdentity()).toEqual({ flavour: 'mysql', serverId: 'u', version: '8.4.0' });
    // A table can be planned again from scratch.
    store.addTable('db.t', 'snapshotting', ['id'], null);
    store.addChunk('db.t', 0, null, null);
    expect(store.beginCommit({}, '400')).toBe(2);
  });
});
