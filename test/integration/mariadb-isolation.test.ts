import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../support/consistency.js';
import { freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, sourceState, startWriter } from '../support/workload.js';

const TABLES = [{ table: 'orders', key: 'int' as const, rows: 6000 }];

// MariaDB's START TRANSACTION WITH CONSISTENT SNAPSHOT is consistent only at REPEATABLE READ; at READ
// COMMITTED each chunk SELECT sees changes committed after the snapshot position it reports.
describe('chunk reads on a MariaDB server whose default isolation is READ COMMITTED', () => {
  it('snapshots and streams under a writer with no repeat and no version going back', async () => {
    const url = urlOf('mariadb');
    const admin = await mysql.createConnection(url);
    const [[before]] = (await admin.query('SELECT @@GLOBAL.tx_isolation AS level')) as unknown as [{ level: string }[]];
    await admin.query("SET GLOBAL tx_isolation = 'READ-COMMITTED'");
    try {
      const { db, conn } = await freshDatabase(url, 'isol');
      for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
      const dir = tempDir();
      const out = join(dir, 'out.jsonl');
      const config = writeConfig(dir, {
        name: 'isol',
        source: { ...sourceFromUrl(url), serverId: 7460, tables: [`${db}.*`] },
        snapshot: { mode: 'initial', chunkSize: 200, parallelism: 2 },
        checkpoint: { path: join(dir, 'checkpoint.sqlite') },
        sink: { type: 'jsonl', path: out },
        commit: { maxRecords: 2000, maxDelayMs: 200 },
      });
      const writer = startWriter(url, db, TABLES, { tps: 400, seed: 5 });
      const sync = tidemark(['sync', '-c', config], { TIDEMARK_TEST_CHUNK_DELAY_MS: '25' });
      await sync.waitForLog((l) => l.msg === 'streaming');
      await new Promise((r) => setTimeout(r, 1000));
      const stats = await writer.stop();
      expect(stats.updates).toBeGreaterThan(100);
      expect((await sync.kill('SIGTERM')).code).toBe(0);
      const finish = await runTidemark(['sync', '-c', config, '--until-caught-up']);
      expect(finish.code, finish.stderr).toBe(0);
      const { source, keyColumns } = await sourceState(conn, db, TABLES);
      const report = checkConsistency(readJsonl(out), source, { keyColumns, allowUnpairedMoves: true });
      expect(report.ok, formatReport(report)).toBe(true);
      await conn.end();
    } finally {
      await admin.query('SET GLOBAL tx_isolation = ?', [before!.level]);
      await admin.end();
    }
  });
});
