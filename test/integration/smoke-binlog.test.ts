import ZongJi, { type DeleteRowsEvent, type UpdateRowsEvent, type WriteRowsEvent } from '@vlasky/zongji';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { FLAVOURS, freshDatabase } from '../support/db.js';

interface RowChange {
  type: string;
  db: string;
  table: string;
  rows: unknown[];
  gtid?: string;
}

describe.each(FLAVOURS)('binlog on %s', (flavour) => {
  const url = inject(flavour === 'mysql' ? 'mysqlUrl' : 'mariadbUrl');
  let zongji: ZongJi | undefined;
  afterEach(() => zongji?.stop());

  it('sees an insert, an update and a delete through zongji, with GTIDs', async () => {
    const { db, conn } = await freshDatabase(url, 'smoke');
    const [[version]] = (await conn.query('SELECT VERSION() AS v')) as unknown as [[{ v: string }]];
    console.log(`${flavour} server version ${version.v}`);
    await conn.query('CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20))');

    const seen: RowChange[] = [];
    const z = new ZongJi({ uri: url });
    zongji = z;
    const ready = new Promise<void>((resolve, reject) => {
      z.on('ready', () => resolve());
      z.on('error', reject);
    });
    z.on('binlog', (evt) => {
      const name = evt.getEventName();
      if (name !== 'writerows' && name !== 'updaterows' && name !== 'deleterows') return;
      const rows = evt as WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent;
      const t = rows.tableMap[rows.tableId]!;
      seen.push({ type: name, db: t.parentSchema, table: t.tableName, rows: rows.rows, gtid: rows.gtid });
    });
    z.start({
      startAtEnd: true,
      serverId: 9000 + Math.floor(Math.random() * 1000),
      includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows'],
      includeSchema: { [db]: true },
    });
    await ready;

    await conn.query("INSERT INTO items VALUES (1, 'one')");
    await conn.query("UPDATE items SET name = 'uno' WHERE id = 1");
    await conn.query('DELETE FROM items WHERE id = 1');

    const deadline = Date.now() + 20_000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await conn.query(`DROP DATABASE ${db}`);
    await conn.end();

    expect(seen.map((s) => [s.type, s.db, s.table])).toEqual([
      ['writerows', db, 'items'],
      ['updaterows', db, 'items'],
      ['deleterows', db, 'items'],
    ]);
    expect(seen[0]!.rows).toEqual([{ id: 1, name: 'one' }]);
    expect(seen[1]!.rows).toEqual([{ before: { id: 1, name: 'one' }, after: { id: 1, name: 'uno' } }]);
    expect(seen[2]!.rows).toEqual([{ id: 1, name: 'uno' }]);
    const gtidShape = flavour === 'mysql' ? /^[0-9a-f-]{36}:\d+$/ : /^\d+-\d+-\d+$/;
    for (const s of seen) expect(s.gtid).toMatch(gtidShape);
    expect(new Set(seen.map((s) => s.gtid)).size).toBe(3);
  });
});
