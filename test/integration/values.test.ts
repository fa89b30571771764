import ZongJi, { type WriteRowsEvent } from '@vlasky/zongji';
import mysqlCallback from 'mysql2';
import mysql from 'mysql2/promise';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { BINLOG_CONNECTION_OPTIONS, makeRowWriter, SNAPSHOT_CONNECTION_OPTIONS, SNAPSHOT_SESSION_SQL, snapshotSelectList } from '../../src/events/values.js';
import { keepRawBytes } from '../../src/source/binlog-columns.js';
import { loadTableSchemas } from '../../src/source/schema.js';
import { allTypesTable, flavourTypesTable } from '../support/all-types.js';
import { FLAVOURS, freshDatabase } from '../support/db.js';

describe.each(FLAVOURS)('canonical values on %s', (flavour) => {
  const url = inject(flavour === 'mysql' ? 'mysqlUrl' : 'mariadbUrl');
  let zongji: ZongJi | undefined;
  afterEach(() => zongji?.stop());

  it.each([allTypesTable(flavour), flavourTypesTable(flavour)])(
    'encodes every type of table $name identically from a snapshot SELECT and from the binlog',
    async (table) => {
      const inserts = table.inserts.map((insert, i) => insert(i + 1));
      const expectedRows = table.expected().map((row, i) => ({ id: i + 1, ...row }));
      const { db, conn } = await freshDatabase(url, 'values');
      try {
        await conn.query(table.ddl);

        const binlogRows: Record<string, unknown>[] = [];
        const z = new ZongJi({ uri: url, ...BINLOG_CONNECTION_OPTIONS });
        keepRawBytes(z);
        zongji = z;
        await new Promise<void>((resolve, reject) => {
          z.on('ready', () => resolve());
          z.on('error', reject);
          z.on('binlog', (evt) => {
            if (evt.getEventName() === 'writerows') binlogRows.push(...(evt as WriteRowsEvent).rows);
          });
          z.start({
            startAtEnd: true,
            serverId: 10000 + Math.floor(Math.random() * 50000),
            includeEvents: ['tablemap', 'writerows'],
            includeSchema: { [db]: true },
          });
        });

        await conn.query("SET time_zone = '+05:30', sql_mode = ''");
        for (const sql of inserts) await conn.query(sql);
        const deadline = Date.now() + 20_000;
        while (binlogRows.length < inserts.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(binlogRows).toHaveLength(inserts.length);

        const snap = await mysql.createConnection({ uri: url, ...SNAPSHOT_CONNECTION_OPTIONS });
        const streaming = mysqlCallback.createConnection({ uri: url, ...SNAPSHOT_CONNECTION_OPTIONS });
        try {
          for (const sql of SNAPSHOT_SESSION_SQL) {
            await snap.query(sql);
            await streaming.promise().query(sql);
          }
          const columns = (await loadTableSchemas(snap, db, [table.name])).get(table.name)!.columns;
          const select = `SELECT ${snapshotSelectList(columns)} FROM \`${db}\`.\`${table.name}\` ORDER BY id`;
          const [selected] = await snap.query(select);
          const streamed: Record<string, unknown>[] = [];
          for await (const row of streaming.query(select).stream()) streamed.push(row as Record<string, unknown>);

          // The JSON text a sink writes: the same bytes whichever reader saw the row.
          const fromSnapshot = (selected as Record<string, unknown>[]).map(makeRowWriter(columns, 'snapshot'));
          const fromStream = streamed.map(makeRowWriter(columns, 'snapshot'));
          const fromBinlog = binlogRows.map(makeRowWriter(columns, 'binlog'));

          for (let i = 0; i < inserts.length; i++) expect(fromBinlog[i], `row ${i + 1}`).toBe(fromSnapshot[i]);
          expect(fromStream).toStrictEqual(fromSnapshot);
          expect(fromSnapshot.map((text) => JSON.parse(text) as unknown)).toStrictEqual(expectedRows);
        } finally {
          await snap.end();
          await streaming.promise().end();
        }
      } finally {
        await conn.query(`DROP DATABASE \`${db}\``);
        await conn.end();
      }
    },
  );
});
