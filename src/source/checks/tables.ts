import { matchTables } from '../../config/load.js';
import { chunkKeyProblem, loadTableSchemas, type TableSchema, uniqueIndexes } from '../schema.js';
import { quoteId } from '../server.js';
import { canSelect, canSelectDatabase } from './grants.js';
import { grantSelect } from './privileges.js';
import { abbreviate, byDb, type CheckResult, fail, nameOf, pass, type Source, warn } from './types.js';

export async function checkTablesMatch(s: Source): Promise<CheckResult[]> {
  const patterns = s.config.source.tables;
  const unmatched = patterns.filter((p) => matchTables([p], s.available).length === 0);
  // The account sees only tables it has some privilege on, so a missing grant looks like a missing table.
  const grantsFor = unmatched.flatMap((p) => {
    const [db = '', table = ''] = p.split('.');
    if (db.includes('*')) return [];
    const wholeDb = table.includes('*');
    if (wholeDb ? canSelectDatabase(s.grants, db) : canSelect(s.grants, db, table)) return [];
    return [grantSelect(s, db, wholeDb ? null : table)];
  });
  const visibility = grantsFor.length > 0 ? ` If they exist, the account may not be allowed to see them: ${grantsFor.join(' ')}` : '';
  if (s.tables.length === 0) {
    return [fail('source.tables', `${patterns.join(', ')} matches no table the account can see`, `Correct the db.table names in source.tables.${visibility}`)];
  }
  const found = `${s.tables.length} table${s.tables.length === 1 ? '' : 's'}: ${abbreviate(s.tables.map(nameOf))}`;
  if (unmatched.length > 0) {
    return [
      warn(
        'source.tables',
        `${found}; but ${unmatched.join(', ')} ${unmatched.length === 1 ? 'matches' : 'match'} nothing`,
        `Correct or remove ${unmatched.join(', ')} in source.tables.${visibility}`,
      ),
    ];
  }
  return [pass('source.tables', found)];
}

export async function checkKeys(s: Source): Promise<CheckResult[]> {
  if (s.tables.length === 0) return [];
  const { chunkKey } = s.config.snapshot;
  const problems: CheckResult[] = [];
  let viaChunkKey = 0;
  for (const [db, names] of byDb(s.tables)) {
    const schemas = await loadTableSchemas(s.conn, db, names);
    const unique = await uniqueIndexes(s.conn, db, names);
    for (const schema of schemas.values()) {
      const name = nameOf(schema);
      const configured = chunkKey[name];
      const indexes = unique.get(schema.table) ?? [];
      if (configured) {
        viaChunkKey++;
        const problem = chunkKeyProblem(schema, configured, indexes);
        if (problem) {
          problems.push(
            fail(
              `key of ${name}`,
              `snapshot.chunkKey.${name}: ${problem}`,
              `${chunkKeyFix(name, schema, indexes)}, or CREATE UNIQUE INDEX on NOT NULL columns and name them there.`,
            ),
          );
        }
      } else if (schema.primaryKey.length === 0) {
        problems.push(
          fail(
            `key of ${name}`,
            `${name} has no primary key, so tidemark can neither chunk it nor identify its rows`,
            `${chunkKeyFix(name, schema, indexes)}, or ALTER TABLE ${quoteId(schema.db)}.${quoteId(schema.table)} ADD PRIMARY KEY (...), or leave it out of source.tables.`,
          ),
        );
      }
    }
  }
  if (problems.length > 0) return problems;
  const count = s.tables.length;
  return [
    pass(
      'table keys',
      `${count === 1 ? 'the table has' : `all ${count} tables have`} a primary key${viaChunkKey > 0 ? ` or a valid snapshot.chunkKey (${viaChunkKey})` : ''}`,
    ),
  ];
}

/** A snapshot.chunkKey config line: on an existing unique index of NOT NULL columns when there is one. */
function chunkKeyFix(name: string, schema: TableSchema, unique: string[][]): string {
  const notNull = (c: string) => schema.columns.some((col) => col.name === c && !col.nullable);
  const usable = unique.filter((cols) => cols.every(notNull)).sort((a, b) => a.length - b.length)[0];
  return usable
    ? `Set snapshot.chunkKey: { ${name}: [${usable.join(', ')}] } (a unique index of NOT NULL columns it already has)`
    : `Set snapshot.chunkKey: { ${name}: [<columns of a unique index, all NOT NULL>] }`;
}
