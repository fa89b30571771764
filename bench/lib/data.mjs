// The source side: the table the bench fills, and the binlog positions it measures between.

/** @import { RowDataPacket } from 'mysql2' */
/** @import { Bench } from './bench.mjs' */

/** The table every throughput section reads, sysbench's name for it. */
export const TABLE = 'sbtest1';

/**
 * A binlog position.
 * @typedef {{ file: string, pos: number }} Position
 */

/**
 * The rows a query returns (the bench's statements that return rows).
 * @param {Bench} bench
 * @param {string} sql
 * @returns {Promise<RowDataPacket[]>}
 */
export async function queryRows(bench, sql) {
  const [rows] = await bench.conn.query(sql);
  return /** @type {RowDataPacket[]} */ (rows);
}

/**
 * @param {Bench} bench
 * @returns {Promise<{ version: string, comment: string }>}
 */
export async function serverVersion(bench) {
  const [row] = await queryRows(bench, 'SELECT VERSION() AS v, @@version_comment AS vc');
  return { version: row?.v, comment: row?.vc };
}

/**
 * @param {Bench} bench
 * @param {string} name
 */
export async function createTable(bench, name) {
  await bench.conn.query(
    `CREATE TABLE ${bench.db}.${name} (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '')`,
  );
}

/**
 * Runs `fn` with this connection's statements kept out of the binlog.
 * @template T
 * @param {Bench} bench
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
export async function withoutBinlog(bench, fn) {
  await bench.conn.query('SET SESSION sql_log_bin = 0');
  try {
    return await fn();
  } finally {
    await bench.conn.query('SET SESSION sql_log_bin = 1');
  }
}

/** @param {number} n */
const digits = (n) => {
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(48 + Math.floor(Math.random() * 10));
  return s;
};

/** @param {number} g */
const groups = (g) => Array.from({ length: g }, () => digits(11)).join('-');

/**
 * sysbench's shape and value format (c: ten groups of 11 random digits, pad: five), filled by doubling on the
 * server (INSERT ... SELECT) from 10,000 client-made rows, ids 1..rows with no gaps. Not binlogged: the snapshot
 * does not need it, and it keeps a 10M-row fill from writing gigabytes of binlog on a shared test server.
 * @param {Bench} bench
 * @param {string} name
 * @param {number} rows
 */
export async function fill(bench, name, rows) {
  const table = `${bench.db}.${name}`;
  await withoutBinlog(bench, async () => {
    const seed = Math.min(rows, 10_000);
    const values = [];
    for (let id = 1; id <= seed; id++) values.push(`(${id},${Math.floor(Math.random() * rows)},'${groups(10)}','${groups(5)}')`);
    await bench.conn.query(`INSERT INTO ${table} (id, k, c, pad) VALUES ${values.join(',')}`);
    for (let have = seed; have < rows; ) {
      const n = Math.min(have, rows - have);
      await bench.conn.query(`INSERT INTO ${table} (id, k, c, pad) SELECT id + ${have}, FLOOR(RAND() * ${rows}), c, pad FROM ${table} WHERE id <= ${n}`);
      have += n;
    }
    await bench.conn.query(`ANALYZE TABLE ${table}`);
  });
}

/**
 * The source's current binlog position.
 * @param {Bench} bench
 * @returns {Promise<Position>}
 */
export async function binlogPosition(bench) {
  const [row] = await queryRows(bench, bench.options.flavour === 'mysql' ? 'SHOW BINARY LOG STATUS' : 'SHOW MASTER STATUS');
  if (!row) throw new Error('the source reports no binlog position: is binary logging on?');
  return { file: row.File, pos: Number(row.Position) };
}

/**
 * Whether the source still has binlog file `file` (another client may have purged it).
 * @param {Bench} bench
 * @param {string} file
 */
export async function binlogHas(bench, file) {
  const rows = await queryRows(bench, 'SHOW BINARY LOGS');
  return rows.some((r) => r.Log_name === file);
}
