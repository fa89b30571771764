import ZongJi, { type WriteRowsEvent } from '@vlasky/zongji';
import mysqlCallback from 'mysql2';
import mysql from 'mysql2/promise';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { BINLOG_CONNECTION_OPTIONS, makeRowWriter, SNAPSHOT_CONNECTION_OPTIONS, SNAPSHOT_SESSION_SQL } from '../../src/events/values.js';
import { loadTableSchemas } from '../../src/source/schema.js';
import { ALL_TYPES_DDL, ALL_TYPES_INSERTS, expectedAllTypesRows } from '../support/all-types.js';
import { FLAVOURS, freshDatabase } from '../support/db.js';

const DDL = ALL_TYPES_DDL;
const INSERTS = ALL_TYPES_INSERTS.map((insert, i) => insert(i + 1));
const expectedRows = (): Record<string, unknown>[] => expectedAllTypesRows().map((row, i) => ({ id: i + 1, ...row }));

describe.each(FLAVOURS)('canonical values on %s', (flavour) => {
  const url = inject(flavour === 'mysql' ? 'mysqlUrl' : 'mariadbUrl');
  let zongji: ZongJi | undefined;
  afterEach(() => zongji?.stop());

  it('encodes every type identically from a snapshot SELECT and from the binlog', async () => {
    const { db, conn } = await freshDatabase(url, 'values');
    try {
      await conn.query(DDL);

      const binlogRows: Record<string, unknown>[] = [];
      const z = new ZongJi({ uri: url, ...BINLOG_CONNECTION_OPTIONS });
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
      for (const sql of INSERTS) await conn.query(sql);
      const deadline = Date.now() + 20_000;
      while (binlogRows.length < INSERTS.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(binlogRows).toHaveLength(INSERTS.length);

      const snap = await mysql.createConnection({ uri: url, ...SNAPSHOT_CONNECTION_OPTIONS });
      const streaming = mysqlCallback.createConnection({ uri: url, ...SNAPSHOT_CONNECTION_OPTIONS });
      try {
        for (const sql of SNAPSHOT_SESSION_SQL) {
          await snap.query(sql);
          await streaming.promise().query(sql);
        }
        const [selected] = await snap.query(`SELECT * FROM \`${db}\`.t ORDER BY id`);
        const streamed: Record<string, unknown>[] = [];
        for await (const row of streaming.query(`SELECT * FROM \`${db}\`.t ORDER BY id`).stream()) streamed.push(row as Record<string, unknown>);

        const columns = (await loadTableSchemas(snap, db, ['t'])).get('t')!.columns;
        // The JSON text a sink writes: the same bytes whichever reader saw the row.
        const fromSnapshot = (selected as Record<string, unknown>[]).map(makeRowWriter(columns, 'snapshot'));
        const fromStream = streamed.map(makeRowWriter(columns, 'snapshot'));
        const fromBinlog = binlogRows.map(makeRowWriter(columns, 'binlog'));

        for (let i = 0; i < INSERTS.length; i++) expect(fromBinlog[i], `row ${i + 1}`).toBe(fromSnapshot[i]);
        expect(fromStream).toStrictEqual(fromSnapshot);
        expect(fromSnapshot.map((text) => JSON.parse(text) as unknown)).toStrictEqual(expectedRows());
      } finally {
        await snap.end();
        await streaming.promise().end();
      }
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });
});
