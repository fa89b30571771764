import { describe, expect, it } from 'vitest';
import { isDdl, parseDdl } from '../../src/source/ddl.js';

describe('isDdl', () => {
  it('knows DDL after leading comments and not other statements', () => {
    expect(isDdl('/* by app */ ALTER TABLE t ADD c INT')).toBe(true);
    expect(isDdl('-- note\nCREATE TABLE t (id INT)')).toBe(true);
    expect(isDdl('# note\n  rename table a to b')).toBe(true);
    expect(isDdl('BEGIN')).toBe(false);
    expect(isDdl("XA START 'x'")).toBe(false);
    expect(isDdl('GRANT SELECT ON *.* TO u')).toBe(false);
  });
});

describe('parseDdl', () => {
  it('reads ALTER TABLE column operations with positions, in the default database or a named one', () => {
    const change = parseDdl(
      '/* c */ ALTER TABLE shop.`orders` ADD COLUMN c VARCHAR(10) CHARACTER SET latin1 NOT NULL AFTER a, DROP d, MODIFY e BIGINT UNSIGNED FIRST, CHANGE f g INT, RENAME COLUMN h TO i, ADD INDEX (c)',
      'other',
      'mysql',
    );
    expect(change).toMatchObject({
      kind: 'alter',
      table: { db: 'shop', table: 'orders' },
      ops: [
        { op: 'add', column: { name: 'c', type: 'VARCHAR', length: 10, charset: 'latin1', nullable: false }, position: { after: 'a' } },
        { op: 'drop', column: 'd' },
        { op: 'modify', column: { name: 'e', type: 'BIGINT', unsigned: true }, position: { first: true } },
        { op: 'change', from: 'f', column: { name: 'g', type: 'INT' } },
        { op: 'rename-column', from: 'h', to: 'i' },
        { op: 'none' },
      ],
    });
    expect(parseDdl('ALTER TABLE orders ADD x INT', 'shop', 'mariadb')).toMatchObject({ table: { db: 'shop', table: 'orders' } });
  });

  it('reads primary key changes and a rename inside ALTER TABLE, with either grammar', () => {
    for (const flavour of ['mysql', 'mariadb'] as const) {
      expect(parseDdl('ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (a, b), RENAME TO u', 'db', flavour)).toMatchObject({
        kind: 'alter',
        ops: [{ op: 'drop-primary-key' }, { op: 'add-primary-key', columns: ['a', 'b'] }],
        renameTo: { db: 'db', table: 'u' },
      });
    }
  });

  it('reads CREATE, CREATE … LIKE, DROP, RENAME and TRUNCATE with their tables', () => {
    expect(parseDdl("CREATE TABLE t (id INT PRIMARY KEY, e ENUM('a','b''c')) DEFAULT CHARSET=latin1", 'db', 'mysql')).toMatchObject({
      kind: 'create',
      table: { db: 'db', table: 't' },
      primaryKey: ['id'],
      columns: [
        { name: 'id', primaryKey: true },
        { name: 'e', values: ['a', "b'c"] },
      ],
      charset: 'latin1',
    });
    expect(parseDdl('CREATE TABLE x.t2 LIKE t', 'db', 'mysql')).toMatchObject({
      kind: 'create',
      table: { db: 'x', table: 't2' },
      like: { db: 'db', table: 't' },
    });
    expect(parseDdl('DROP TABLE IF EXISTS a, x.b', 'db', 'mysql')).toEqual({
      kind: 'drop',
      tables: [
        { db: 'db', table: 'a' },
        { db: 'x', table: 'b' },
      ],
    });
    expect(parseDdl('RENAME TABLE a TO b, x.c TO y.d', 'db', 'mysql')).toEqual({
      kind: 'rename',
      pairs: [
        [
          { db: 'db', table: 'a' },
          { db: 'db', table: 'b' },
        ],
        [
          { db: 'x', table: 'c' },
          { db: 'y', table: 'd' },
        ],
      ],
    });
    expect(parseDdl('TRUNCATE TABLE t', 'db', 'mysql')).toEqual({ kind: 'truncate', tables: [{ db: 'db', table: 't' }] });
    expect(parseDdl('CREATE INDEX i ON t (c)', 'db', 'mysql')).toEqual({ kind: 'none' });
  });

  it('says which tables a statement it cannot read names', () => {
    const change = parseDdl('ALTER TABLE `orders` CONVERT TO CHARACTER SET latin1', 'shop', 'mysql');
    if (change.kind !== 'unparsed') throw new Error(`parsed as ${change.kind}`);
    expect(change.mentions('shop', 'orders')).toBe(true);
    expect(change.mentions('other', 'orders')).toBe(false);
    expect(change.mentions('shop', 'order')).toBe(false);
  });
});
