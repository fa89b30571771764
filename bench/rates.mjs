// Snapshot and streaming rates of `tidemark sync` into jsonl, next to their raw ceilings measured in
// the same run on the same data: mysql2 streaming `SELECT *`, and zongji decoding the same binlog range.
//
//   node bench/rates.mjs [--rows 1000000] [--server mysql|mariadb]
//
// Uses TIDEMARK_TEST_MYSQL_URL / TIDEMARK_TEST_MARIADB_URL when set, else starts the local test servers.
// Needs a built dist/ (npm install builds it).
import ZongJi from '@vlasky/zongji';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mysql from 'mysql2';
import { provisionServers } from '../dist/devservers/provision.js';
import { BINLOG_CONNECTION_OPTIONS, SNAPSHOT_CONNECTION_OPTIONS } from '../dist/events/values.js';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, server: { type: 'string', default: 'mysql' } } });
const ROWS = Number(args.rows);
const flavour = args.server;

const servers = await provisionServers([flavour], (l) => console.error(l));
const url = flavour === 'mysql' ? servers.mysqlUrl : servers.mariadbUrl;
const u = new URL(url);
const source = { host: u.hostname, port: Number(u.port), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
const db = `bench_${Date.now().toString(36)}`;
const conn = mysql.createConnection({ uri: url, multipleStatements: true }).promise();

async function fill() {
  await conn.query(`CREATE DATABASE ${db}; USE ${db};
    CREATE TABLE sbtest1 (id INT AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0, c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '')`);
  const batch = 5000;
  for (let start = 1; start <= ROWS; start += batch) {
    const values = [];
    for (let id = start; id < Math.min(start + batch, ROWS + 1); id++) {
      values.push(`(${id},${(id * 7919) % ROWS},'${String(id).padStart(11, '0').repeat(10).slice(0, 119)}','${String(id * 31).padStart(11, '0').repeat(5).slice(0, 59)}')`);
    }
    await conn.query(`INSERT INTO sbtest1 (id, k, c, pad) VALUES ${values.join(',')}`);
  }
  await conn.query('ANALYZE TABLE sbtest1');
}

/** Ceiling 1: mysql2 streaming every row of the table, doing nothing with them. */
function selectCeiling() {
  return new Promise((resolve, reject) => {
    const c = mysql.createConnection({ uri: url, ...SNAPSHOT_CONNECTION_OPTIONS });
    const started = performance.now();
    let n = 0;
    c.query(`SELECT * FROM ${db}.sbtest1`)
      .stream()
      .on('data', () => n++)
      .on('error', reject)
      .on('end', () => {
        c.end();
        resolve({ rows: n, seconds: (performance.now() - started) / 1000 });
      });
  });
}

/** Ceiling 2: zongji decoding the binlog from `from` to `to`, doing nothing with the rows. */
function binlogCeiling(from, to) {
  return new Promise((resolve, reject) => {
    const z = new ZongJi({ uri: url, ...BINLOG_CONNECTION_OPTIONS });
    let rows = 0;
    let started = 0;
    z.on('ready', () => (started = performance.now()));
    z.on('error', reject);
    z.on('binlog', (e) => {
      if (e.rows) rows += e.rows.length;
      if (z.options.filename === to.file && z.options.position >= to.pos) {
        const seconds = (performance.now() - started) / 1000;
        z.stop();
        resolve({ rows, seconds });
      }
    });
    z.start({ serverId: 9901, filename: from.file, position: from.pos, includeSchema: { [db]: ['sbtest1'] },
      includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows', 'xid', 'rotate'] });
  });
}

async function position() {
  const [rows] = await conn.query(flavour === 'mysql' ? 'SHOW BINARY LOG STATUS' : 'SHOW MASTER STATUS');
  return { file: rows[0].File, pos: Number(rows[0].Position) };
}

/** Runs `tidemark sync --until-caught-up` and returns its log lines with their arrival times. */
function sync(config) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['bin/tidemark', 'sync', '-c', config, '--until-caught-up'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const logs = [];
    let buf = '';
    p.stderr.on('data', (d) => {
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop();
      for (const l of lines) if (l.startsWith('{')) logs.push({ at: performance.now(), ...JSON.parse(l) });
    });
    p.on('exit', (code) => (code === 0 ? resolve({ logs, exitAt: performance.now() }) : reject(new Error(`sync exited ${code}: ${JSON.stringify(logs.slice(-3))}`))));
  });
}

console.error(`filling ${ROWS} rows into ${db}.sbtest1 on ${flavour}`);
await fill();
const dir = mkdtempSync(join(tmpdir(), 'tidemark-bench-'));
const config = join(dir, 'bench.yaml');
writeFileSync(config, JSON.stringify({
  name: 'bench', source: { ...source, tables: [`${db}.sbtest1`], serverId: 9800 },
  snapshot: { mode: 'initial', chunkSize: 8192, parallelism: 2 },
  checkpoint: { path: join(dir, 'checkpoint.sqlite') }, sink: { type: 'jsonl', path: join(dir, 'out.jsonl') },
}));

const select = await selectCeiling();
const snap = await sync(config);
const at = (msg) => snap.logs.find((l) => l.msg === msg)?.at;
const snapshotSeconds = (at('snapshot complete') - at('snapshot starting')) / 1000;

const from = await position();
// One UPDATE per 10,000 rows: ROWS row changes in the binlog, as few statements as possible.
for (let start = 1; start <= ROWS; start += 10_000) await conn.query(`UPDATE ${db}.sbtest1 SET k = k + 1 WHERE id >= ? AND id < ?`, [start, start + 10_000]);
const to = await position();
const zongji = await binlogCeiling(from, to);
const stream = await sync(config);
const streamSeconds = (stream.exitAt - stream.logs.find((l) => l.msg === 'streaming').at) / 1000;

const rate = (rows, s) => Math.round(rows / s);
const table = [
  { measure: 'mysql2 SELECT * (ceiling)', rows: select.rows, seconds: select.seconds.toFixed(2), 'rows/s': rate(select.rows, select.seconds), ratio: '1.00' },
  { measure: 'snapshot → jsonl', rows: ROWS, seconds: snapshotSeconds.toFixed(2), 'rows/s': rate(ROWS, snapshotSeconds), ratio: (select.seconds / snapshotSeconds).toFixed(2) },
  { measure: 'zongji decode (ceiling)', rows: zongji.rows, seconds: zongji.seconds.toFixed(2), 'rows/s': rate(zongji.rows, zongji.seconds), ratio: '1.00' },
  { measure: 'streaming → jsonl', rows: ROWS, seconds: streamSeconds.toFixed(2), 'rows/s': rate(ROWS, streamSeconds), ratio: (zongji.seconds / streamSeconds).toFixed(2) },
];
console.table(table);
await conn.query(`DROP DATABASE ${db}`);
await conn.end();
await servers.stop();
