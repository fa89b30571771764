import { describe, expect, it } from 'vitest';
import { parseDdl } from '../../src/source/ddl.js';
import { loadCharsets, loadTableSchemas, type TableSchema } from '../../src/source/schema.js';
import { applyAlter, createdSchema, type SchemaContext } from '../../src/source/schema-change.js';
import { FLAVOURS, freshDatabase, urlOf } from '../support/db.js';

// The schema history derives each table's next column version from the DDL text alone. It must be the same
// description the server gives in INFORMATION_SCHEMA, field by field, or rows would be encoded differently from a
// stream that re-read the table: both are compared here on the real servers.
const CREATE = `CREATE TABLE t (
  id INT NOT NULL, a TINYINT, b SMALLINT UNSIGNED, c MEDIUMINT, d BIGINT UNSIGNED NOT NULL, e INTEGER,
  f DECIMAL(12,3), g DECIMAL(5), h NUMERIC, i FLOAT, j DOUBLE, k DOUBLE UNSIGNED, l BIT(12), m BIT,
  n CHAR(3), o VARCHAR(20) CHARACTER SET latin1, p VARCHAR(5) COLLATE utf8mb4_bin, q TEXT, r MEDIUMTEXT CHARACTER SET latin1 COLLATE latin1_bin,
  s BINARY(4), t VARBINARY(9), u BLOB, v LONGBLOB, w ENUM('x','y''z'), x SET('a','b'),
  y DATE, z DATETIME, aa DATETIME(6), ab TIMESTAMP(3) NULL, ac TIME(2), ad YEAR, ae JSON, af BOOLEAN,
  PRIMARY KEY (id)
) DEFAULT CHARSET utf8mb4`;

const ALTERS = [
  "ALTER TABLE t ADD COLUMN ag VARCHAR(7) NOT NULL DEFAULT 'q' AFTER a",
  'ALTER TABLE t ADD ah DECIMAL(30,10) FIRST, DROP COLUMN c',
  'ALTER TABLE t MODIFY d INT, CHANGE COLUMN e e2 BIGINT UNSIGNED NOT NULL',
  'ALTER TABLE t RENAME COLUMN f TO f2, MODIFY COLUMN q LONGTEXT CHARACTER SET utf8mb3',
  '/* a comment */ ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (id, d2x)',
];

/** The fields the encoders and the key order read, as the server and the DDL parser each give them. */
function described(s: TableSchema) {
  return {
    primaryKey: s.primaryKey,
    columns: s.columns.map((c) => ({
      name: c.name,
      dataType: c.dataType,
      unsigned: c.unsigned,
      nullable: c.nullable,
      charset: c.charset,
      collation: c.collation,
      precision: ['decimal', 'bit'].includes(c.dataType) ? c.numericPrecision : null,
      scale: c.dataType === 'decimal' ? c.numericScale : null,
      datetimePrecision: c.datetimePrecision,
      // Widths the encoders read from the type: BINARY(n) and BIT(n).
      width: /^(binary|bit)\((\d+)\)/.exec(c.columnType)?.[2] ?? null,
      labels: /^(enum|set)\((.*)\)$/.exec(c.columnType)?.[2] ?? null,
    })),
  };
}

describe.each(FLAVOURS)('column versions from DDL text on %s', (flavour) => {
  it('match INFORMATION_SCHEMA after CREATE TABLE and each ALTER TABLE', async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'ddl');
    try {
      const ctx: SchemaContext = { flavour, charsets: await loadCharsets(conn) };
      const create = parseDdl(CREATE, db, flavour);
      if (create.kind !== 'create') throw new Error(`parsed as ${create.kind}`);
      await conn.query(CREATE);
      const serverNow = async () => (await loadTableSchemas(conn, db, ['t'])).get('t')!;
      let derived = createdSchema(db, 't', create.columns, create.primaryKey, (await serverNow()).collation, ctx);
      expect(described(derived)).toEqual(described(await serverNow()));
      for (const sql of ALTERS) {
        const statement = sql.replace('d2x', 'd');
        const change = parseDdl(statement, db, flavour);
        if (change.kind !== 'alter') throw new Error(`${statement} parsed as ${change.kind}`);
        await conn.query(statement);
        derived = applyAlter(derived, change.ops, ctx);
        expect(described(derived), statement).toEqual(described(await serverNow()));
      }
    } finally {
      await conn.end();
    }
  });
});
