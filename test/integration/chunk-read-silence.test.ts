import mysql from 'mysql2/promise';
import { afterEach, describe, expect, it } from 'vitest';
import type { ChunkRecord } from '../../src/checkpoint/store.js';
import { isConnectionLoss } from '../../src/errors.js';
import { KeyOrder } from '../../src/source/key-order.js';
import { loadTableSchemas } from '../../src/source/schema.js';
import { connect, SourceLink } from '../../src/source/server.js';
import { readChunk, snapshotTable } from '../../src/source/snapshot.js';
import { FLAVOURS, freshDatabase, urlOf } from '../support/db.js';
import { sourceFromUrl } from '../support/tidemark.js';

const SILENCE_MS = 1000;

describe.each(FLAVOURS)('a chunk SELECT the server stops answering (%s)', (flavour) => {
  let cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    cleanup = [];
  });

  // A SELECT waiting on a metadata lock is a server that says nothing, as a partition is, but with a deterministic
  // start: the watermark queries before it are answered, the SELECT's rows never come. mysql2 reports the socket
  // that watchSilence destroys to the connection rather than to a query read row by row, which once left the read
  // waiting forever; with TLS (the default) a frozen network met the SELECT often enough to stop the liveness test.
  it('is given up as a lost connection after source.heartbeatTimeoutMs', async () => {
    const url = urlOf(flavour);
    const { db, conn } = await freshDatabase(url, 'silent');
    cleanup.push(() => conn.end());
    await conn.query('CREATE TABLE items (id INT PRIMARY KEY, v INT)');
    await conn.query('INSERT INTO items VALUES (1, 1), (2, 2), (3, 3)');
    const { host, port, user, password } = sourceFromUrl(url);
    const source = { host, port, user, password, connectTimeoutMs: 5000, heartbeatTimeoutMs: SILENCE_MS, ssl: { mode: 'preferred' as const } };
    const setupConn = await connect(source);
    cleanup.push(() => setupConn.end());
    const schema = (await loadTableSchemas(setupConn, db, ['items'])).get('items')!;
    const keyColumns = [schema.columns[0]!];
    const table = snapshotTable(schema, keyColumns, await KeyOrder.create(setupConn, keyColumns));
    const chunk: ChunkRecord = { table: `${db}.items`, idx: 0, lo: null, hi: null, status: 'pending', lw: null, hw: null, rows: null };

    const locker = await mysql.createConnection({ uri: url });
    cleanup.push(() => locker.end());
    await locker.query(`LOCK TABLES \`${db}\`.items WRITE`);
    cleanup.push(() => locker.query('UNLOCK TABLES'));

    const link = new SourceLink(source);
    cleanup.push(() => link.end());
    const ctx = { flavour, gtidMode: flavour === 'mysql', source, spoolDir: undefined };
    const started = Date.now();
    const read = link.use((c) => readChunk(ctx, c, table, chunk, 9201 + (flavour === 'mysql' ? 0 : 50)));
    const outcome = await Promise.race([
      read.then(
        () => 'read',
        (err: unknown) => err,
      ),
      new Promise((resolve) => setTimeout(() => resolve('still waiting'), 10 * SILENCE_MS)),
    ]);
    expect(outcome).toBeInstanceOf(Error);
    expect(isConnectionLoss(outcome), String(outcome)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(SILENCE_MS - 100);

    // The link opens a new connection for the next read, which gets the rows once the lock is gone.
    link.discard();
    await locker.query('UNLOCK TABLES');
    const rows = await link.use((c) => readChunk(ctx, c, table, chunk, 9202 + (flavour === 'mysql' ? 0 : 50)));
    expect(rows.rows).toHaveLength(3);
  });
});
