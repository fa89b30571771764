import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { allTypesTable, flavourTypesTable, type ValuesTable } from '../support/all-types.js';
import type { Row } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { mysqlTarget, postgresTarget, type Target } from '../support/sql-target.js';
import { runTidemark, sourceFromUrl, tempDir, writeConfig } from '../support/tidemark.js';

// Every type of the values tests, read by the snapshot and from the binlog, updated and deleted, written into
// PostgreSQL and into MySQL/MariaDB, and then compared in the target database itself, value by value.

/** PostgreSQL's type for each all-types column: the documented mapping (docs/sinks.md, Database sinks). */
const POSTGRES_TYPES: Record<string, string> = {
  id: 'integer',
  i8: 'smallint',
  u8: 'smallint',
  i16: 'smallint',
  u16: 'integer',
  i24: 'integer',
  u24: 'integer',
  i32: 'integer',
  u32: 'bigint',
  i64: 'bigint',
  u64: 'numeric(20,0)',
  dec65: 'numeric(65,30)',
  dec10: 'numeric(10,4)',
  f: 'real',
  d: 'double precision',
  ch: 'character varying(10)',
  vc: 'character varying(50)',
  tx: 'text',
  bn: 'bytea',
  vb: 'bytea',
  bl: 'bytea',
  dt: 'date',
  dt0: 'timestamp(0) without time zone',
  dt3: 'timestamp(3) without time zone',
  dt6: 'timestamp(6) without time zone',
  ts0: 'timestamp(0) with time zone',
  ts6: 'timestamp(6) with time zone',
  tm0: 'interval(0)',
  tm6: 'interval(6)',
  y: 'smallint',
  j: 'jsonb',
  e: 'text',
  s: 'text[]',
  b1: 'bit(1)',
  b12: 'bit(12)',
  b64: 'bit(64)',
};

interface Run {
  db: string;
  conn: mysql.Connection;
  tables: ValuesTable[];
}

/** Rows 1..N (snapshot), their copies N+1..2N (binlog), two updates and two deletes, synced into `target`. */
async function syncAllTypes(flavour: Flavour, target: Target, serverId: number): Promise<Run> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'vsql');
  const tables = [allTypesTable(flavour), flavourTypesTable(flavour)];
  for (const t of tables) await conn.query(t.ddl);
  await conn.query("SET time_zone = '+05:30', sql_mode = ''");
  for (const t of tables) for (let i = 0; i < t.inserts.length; i++) await conn.query(t.inserts[i]!(i + 1));
  const dir = tempDir();
  const config = writeConfig(dir, {
    name: 'vals',
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: tables.map((t) => `${db}.${t.name}`) },
    snapshot: { chunkSize: 2 },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: target.sink,
    commit: { maxRecords: 100, maxDelayMs: 100 },
  });
  const sync = async () => {
    const run = await runTidemark(['sync', '-c', config, '--until-caught-up']);
    expect(run.code, run.stderr.slice(-4000)).toBe(0);
  };
  await sync();
  for (const t of tables) for (let i = 0; i < t.inserts.length; i++) await conn.query(t.inserts[i]!(t.inserts.length + i + 1));
  await sync();
  const n = tables[0]!.inserts.length;
  await conn.query("UPDATE t SET vc = 'updated' WHERE id IN (1, 4)");
  await conn.query(`DELETE FROM t WHERE id IN (${n + 2}, ${n + 3})`);
  await sync();
  return { db, conn, tables };
}

/** The ids each table holds after syncAllTypes, with the canonical value of each row. */
function expectedRows(t: ValuesTable): Map<number, Row> {
  const base = t.expected();
  const n = base.length;
  const out = new Map<number, Row>();
  for (let id = 1; id <= 2 * n; id++) {
    if (t.name === 't' && (id === n + 2 || id === n + 3)) continue;
    const row = { ...base[(id - 1) % n]! };
    if (t.name === 't' && (id === 1 || id === 4)) row.vc = 'updated';
    out.set(id, row);
  }
  return out;
}

describe.each(FLAVOURS)('every source type from %s into PostgreSQL', (flavour) => {
  it('is created with the documented types and holds each exact value', async () => {
    const target = await postgresTarget();
    const run = await syncAllTypes(flavour, target, flavour === 'mysql' ? 8100 : 8150);
    try {
      const schema = target.prefix.slice(0, -1);
      const types = new Map(
        (
          await target.query(
            `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, c.relname AS table FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped`,
            [schema],
          )
        ).map((r) => [`${r.table}.${r.name}`, String(r.type)]),
      );
      const allTypes = Object.fromEntries([...types].filter(([k]) => k.startsWith(`${run.db}_t.`)).map(([k, v]) => [k.slice(run.db.length + 3), v]));
      expect(allTypes).toEqual(POSTGRES_TYPES);

      const mismatches: string[] = [];
      for (const t of run.tables) {
        const table = `${run.db}_${t.name}`;
        const expected = expectedRows(t);
        const ids = (await target.query(`SELECT id FROM ${schema}."${table}" ORDER BY id`)).map((r) => Number(r.id));
        expect(ids, table).toEqual([...expected.keys()]);
        for (const [id, row] of expected) {
          for (const [column, value] of Object.entries(row)) {
            const type = types.get(`${table}.${column}`)!;
            const { param, cast } = postgresParam(value, type);
            // Equal as values of the column's type, and printed alike (which tells -0 from 0).
            const [r] = await target.query(
              `SELECT ("${column}" IS NOT DISTINCT FROM ${cast}) AND ("${column}"::text IS NOT DISTINCT FROM (${cast})::text) AS ok,
                      "${column}"::text AS got, (${cast})::text AS want FROM ${schema}."${table}" WHERE id = $2`,
              [param, id],
            );
            if (r!.ok !== true) mismatches.push(`${table} id ${id} ${column} (${type}): got ${String(r!.got)}, expected ${String(r!.want)}`);
          }
        }
      }
      expect(mismatches, mismatches.join('\n')).toEqual([]);
    } finally {
      await run.conn.query(`DROP DATABASE ${run.db}`);
      await run.conn.end();
      await target.close();
    }
  });
});

/**
 * The expected canonical value as a parameter and the cast that makes it a value of the column's type, with
 * PostgreSQL's own conversions: bytes as bytea, BIT from its integer, spatial values as EWKB built here.
 */
function postgresParam(value: unknown, type: string): { param: unknown; cast: string } {
  const cast = `$1::${type}`;
  if (value === null) return { param: null, cast };
  if (type === 'bytea') {
    if (typeof value === 'object') {
      const { wkb, srid } = value as { wkb: string; srid: number };
      const bytes = Buffer.from(wkb, 'base64');
      if (srid === 0) return { param: bytes, cast };
      // EWKB: the type's SRID flag (0x20000000) and the SRID after it; the test geometries are little-endian.
      const head = Buffer.alloc(9);
      head[0] = 1;
      head.writeUInt32LE(bytes.readUInt32LE(1) | 0x20000000, 1);
      head.writeUInt32LE(srid, 5);
      return { param: Buffer.concat([head, bytes.subarray(5)]), cast };
    }
    return { param: Buffer.from(value as string, 'base64'), cast };
  }
  if (type.startsWith('bit(')) {
    const n = typeof value === 'number' ? BigInt(value) : BigInt.asIntN(64, BigInt(`0x${Buffer.from(value as string, 'base64').toString('hex')}`));
    return { param: n.toString(), cast: `($1::bigint)::${type}` };
  }
  if (Object.is(value, -0)) return { param: '-0', cast };
  return { param: value, cast };
}

describe.each(FLAVOURS)('every source type from %s into a database on the same server', (flavour) => {
  it('holds the source value of each column', async () => {
    const target = await mysqlTarget(urlOf(flavour));
    const run = await syncAllTypes(flavour, target, flavour === 'mysql' ? 8200 : 8250);
    const targetDb = target.prefix.slice(0, -1);
    try {
      for (const t of run.tables) {
        const [columns] = await run.conn.query(
          'SELECT COLUMN_NAME AS name, DATA_TYPE AS type FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?',
          [run.db, t.name],
        );
        const select = (columns as { name: string; type: string }[])
          .map((c) => `${comparable(c.type.toLowerCase(), `\`${c.name}\``)} AS \`${c.name}\``)
          .join(', ');
        const read = async (table: string) => {
          const [rows] = await run.conn.query({ sql: `SELECT ${select} FROM ${table}`, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
          // Sorted here: ORDER BY id would sort by the text the select list makes of it.
          return (rows as Row[]).sort((a, b) => Number(a.id) - Number(b.id));
        };
        // Zero dates have no canonical value but null (docs/values.md).
        const source = (await read(`${run.db}.${t.name}`)).map((r) =>
          Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'string' && /^0000-00-00|^\d{4}-00-|^\d{4}-\d\d-00/.test(v) ? null : v])),
        );
        const copied = await read(`${targetDb}.\`${run.db}_${t.name}\``);
        expect(copied.map((r) => Number(r.id))).toEqual([...expectedRows(t).keys()]);
        expect(copied).toStrictEqual(source);
      }
    } finally {
      await run.conn.query(`DROP DATABASE ${run.db}`);
      await run.conn.end();
      await target.close();
    }
  });
});

/**
 * A column as one exact, comparable value: bytes as hex, floating point widened exactly, text in one charset. A JSON
 * document as the server reads its printed text: a number the source stored as a DECIMAL inside it (built by SQL)
 * becomes a double, as it does in the target, which gets the text (docs/sinks.md, Database sinks, limits).
 */
function comparable(type: string, column: string): string {
  if (type === 'json') return `CAST(CAST(CAST(${column} AS CHAR) AS JSON) AS CHAR)`;
  if (/binary|blob|bit|geometry|point|linestring|polygon|collection/.test(type)) return `HEX(${column})`;
  if (type === 'float' || type === 'double') return `${column} * 1e0`;
  if (/char|text|enum|set/.test(type)) return `CONVERT(${column} USING utf8mb4)`;
  return `CAST(${column} AS CHAR)`;
}
