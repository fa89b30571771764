import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, inject, it } from 'vitest';
import { selectAllCanonical } from '../support/consistency.js';
import { FLAVOURS, freshDatabase } from '../support/db.js';
import { createWorkloadTable, type KeyKind, keyColumnsFor, startWriter } from '../support/workload.js';

const ROWS = 2000;
const KINDS: KeyKind[] = ['int', 'sparse-int', 'string', 'composite'];

describe.each(FLAVOURS)('workload on %s', (flavour) => {
  const url = inject(flavour === 'mysql' ? 'mysqlUrl' : 'mariadbUrl');

  it('fills a table of each key kind and changes them with every kind of change', async () => {
    const { db, conn } = await freshDatabase(url, 'workload');
    try {
      const tables = KINDS.map((key) => ({ table: `items_${key.replace('-', '_')}`, key }));
      for (const { table, key } of tables) await createWorkloadTable(conn, db, table, { rows: ROWS, key });

      const [[collation]] = (await conn.query('SELECT COLLATION_NAME AS c FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND COLUMN_NAME = ?', [
        db,
        'code',
      ])) as unknown as [[{ c: string }]];
      expect(collation.c).toBe(flavour === 'mysql' ? 'utf8mb4_0900_ai_ci' : 'utf8mb4_general_ci');

      const writer = startWriter(url, db, tables, { tps: 300, seed: 7 });
      await sleep(2000);
      const stats = await writer.stop();

      expect(stats.transactions).toBeGreaterThan(0);
      for (const { table, key } of tables) {
        const counts = stats.byTable[table]!;
        expect(counts, table).toEqual({
          inserts: expect.any(Number),
          updates: expect.any(Number),
          deletes: expect.any(Number),
          keyChanges: expect.any(Number),
        });
        for (const n of Object.values(counts)) expect(n, `${table} ${JSON.stringify(counts)}`).toBeGreaterThan(0);

        const rows = await selectAllCanonical(conn, db, table, keyColumnsFor(key));
        expect(rows, table).toHaveLength(ROWS + counts.inserts - counts.deletes);
        expect(rows[0]).toMatchObject({ version: expect.any(Number), amount: expect.stringMatching(/^-?\d+\.\d\d$/) });
        expect(
          rows.some((r) => (r.version as number) > 1),
          table,
        ).toBe(true);
      }

      const codes = (await selectAllCanonical(conn, db, 'items_string', ['code'])).map((r) => r.code as string);
      for (const shape of [/ $/, /é/, /É/, /ß/, /^[A-Z]/, /^[a-z]/])
        expect(
          codes.some((c) => shape.test(c)),
          String(shape),
        ).toBe(true);
      const ids = (await selectAllCanonical(conn, db, 'items_sparse_int', ['id'])).map((r) => r.id as number);
      expect(Math.max(...ids)).toBeGreaterThan(1e9);
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });
});
