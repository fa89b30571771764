import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { CheckpointStore } from '../checkpoint/store.js';
import type { Config } from '../config/load.js';
import { provisionServers } from '../devservers/provision.js';
import { Metrics } from '../ops/metrics.js';
import { fanOut } from '../ops/observer.js';
import { SnapshotProgress } from '../ops/progress.js';
import { runSync } from '../sync/connector.js';
import { log, runCommand } from './run.js';

const DB = 'tidemark_demo';

/** A shop with customers and orders; every order update bumps `version`, as the tests' tables do. */
async function createShop(conn: mysql.Connection): Promise<void> {
  await conn.query(`DROP DATABASE IF EXISTS ${DB}`);
  await conn.query(`CREATE DATABASE ${DB}`);
  await conn.query(
    `CREATE TABLE ${DB}.customers (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL, email VARCHAR(128) NOT NULL, created_at DATETIME(3) NOT NULL)`,
  );
  await conn.query(`CREATE TABLE ${DB}.orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, total DECIMAL(10,2) NOT NULL,
    status ENUM('new','paid','shipped','cancelled') NOT NULL, version INT NOT NULL, updated_at TIMESTAMP(3) NOT NULL)`);
  const customers = Array.from({ length: 2000 }, (_, i) => [
    i + 1,
    `customer ${i + 1}`,
    `c${i + 1}@example.com`,
    new Date(Date.UTC(2025, 0, 1) + i * 3_600_000),
  ]);
  await conn.query(`INSERT INTO ${DB}.customers VALUES ?`, [customers]);
  for (let start = 0; start < 20_000; start += 5000) {
    const orders = Array.from({ length: 5000 }, (_, j) => {
      const id = start + j + 1;
      return [id, (id % 2000) + 1, ((id * 37) % 50_000) / 100, 'new', 1, new Date()];
    });
    await conn.query(`INSERT INTO ${DB}.orders VALUES ?`, [orders]);
  }
}

/** A few orders a second: new ones, payments and shipments (updates) and cancellations (deletes). */
function startShopWriter(conn: mysql.Connection): () => Promise<void> {
  let next = 20_001;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const pick = Math.floor(Math.random() * 20_000) + 1;
      const r = Math.random();
      if (r < 0.4) await conn.query(`INSERT INTO ${DB}.orders VALUES (?, ?, ?, 'new', 1, NOW(3))`, [next++, (next % 2000) + 1, 19.99]);
      else if (r < 0.9)
        await conn.query(`UPDATE ${DB}.orders SET status = IF(status = 'new', 'paid', 'shipped'), version = version + 1, updated_at = NOW(3) WHERE id = ?`, [
          pick,
        ]);
      else await conn.query(`DELETE FROM ${DB}.orders WHERE id = ?`, [pick]);
      await sleep(100);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
  };
}

function summary(config: Config): string {
  const store = CheckpointStore.openReadOnly(config.checkpoint.path);
  try {
    const tables = store.tables().map((t) => `${t.name}: ${t.state}, ${t.snapshotRows} rows snapshotted`);
    const p = store.streamPosition();
    return [...tables, `stream position: ${p ? `${p.file}:${p.pos}` : 'not started'}`].join('\n  ');
  } finally {
    store.close();
  }
}

function lastChanges(path: string, n: number): string[] {
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  return lines
    .filter((l) => l.includes('"op":"c"') || l.includes('"op":"u"') || l.includes('"op":"d"'))
    .slice(-n)
    .map((l) => {
      const { key, value } = JSON.parse(l) as { key: unknown; value: { op: string; source: { table: string }; after: unknown } };
      return `${value.op} ${value.source.table} ${JSON.stringify(key)} → ${JSON.stringify(value.after)}`;
    });
}

/** The demo's PostgreSQL schema, emptied, and a line on what the sink has written into it so far. */
async function demoTarget(url: string): Promise<{ report(): Promise<string>; end(): Promise<void> }> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${DB} CASCADE`);
  return {
    async report() {
      const { rows } = await client.query(
        `SELECT (SELECT count(*) FROM ${DB}.customers) AS customers, (SELECT count(*) FROM ${DB}.orders) AS orders,
                (SELECT max(updated_at)::text FROM ${DB}.orders) AS newest, (SELECT commit_number FROM ${DB}.tidemark_offsets WHERE connector = 'demo') AS commit`,
      );
      const r = rows[0] as Record<string, string | null>;
      return `  postgres ${DB}: ${r.customers} customers, ${r.orders} orders, newest order change ${r.newest ?? '-'}, commit ${r.commit ?? '-'}`;
    },
    end: () => client.end(),
  };
}

/** `tidemark demo`: a throwaway MySQL with a busy shop, captured into a JSON-lines file. */
export function registerDemoCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command('demo')
    .description(
      'start a local MySQL with a small shop and a writer, sync it to out.jsonl in a new temporary directory, and show what happens (Ctrl-C stops and cleans up)',
    )
    .option('--seconds <n>', 'stop by itself after streaming this long (default: run until Ctrl-C)')
    .option('--dir <dir>', 'where the demo writes its checkpoint and output (default: a new directory under the system temporary directory)')
    .option('--postgres <url>', `sync into this PostgreSQL database (postgres://user:password@host:port/database), schema ${DB}, instead of out.jsonl`)
    .action(async (o: { seconds?: string; dir?: string; postgres?: string }) => {
      setExitCode(
        await runCommand(() => demo(o.dir === undefined ? undefined : resolve(o.dir), o.seconds === undefined ? undefined : Number(o.seconds), o.postgres)),
      );
    });
}

/**
 * A directory of the user's own is not wiped: only what an earlier demo wrote there goes, because the
 * demo database is new and an old checkpoint or output would not match it.
 */
function prepareDir(given: string | undefined): string {
  // Under the system temporary directory by default, so a demo run in a checkout leaves nothing in the working tree.
  if (given === undefined) return mkdtempSync(join(tmpdir(), 'tidemark-demo-'));
  mkdirSync(given, { recursive: true });
  for (const file of ['checkpoint.sqlite', 'checkpoint.sqlite-wal', 'checkpoint.sqlite-shm', 'out.jsonl', 'out.dead.jsonl']) {
    rmSync(join(given, file), { force: true });
  }
  return given;
}

async function demo(givenDir: string | undefined, seconds: number | undefined, postgresUrl?: string): Promise<void> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out('tidemark demo: starting a local MySQL (a container where Docker runs, else Debian packages; the first time takes a minute)…');
  const servers = await provisionServers(['mysql'], (l) => log('servers', { line: l }));
  const url = new URL(servers.mysqlUrl!);
  const conn = await mysql.createConnection({ uri: servers.mysqlUrl!, multipleStatements: true });
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    out(`creating ${DB} with 2,000 customers and 20,000 orders on ${url.host}…`);
    await createShop(conn);
    const dir = prepareDir(givenDir);
    out(`the demo's checkpoint and output go to ${dir}`);
    const config: Config = {
      name: 'demo',
      configPath: join(dir, 'demo.yaml'),
      source: {
        host: url.hostname,
        port: Number(url.port),
        user: decodeURIComponent(url.username),
        password: decodeURIComponent(url.password),
        serverId: 6400,
        tables: [`${DB}.*`],
        connectTimeoutMs: 10_000,
        heartbeatTimeoutMs: 30_000,
        allowWithoutGtid: false,
        ssl: { mode: 'preferred' },
      },
      snapshot: { mode: 'initial', chunkSize: 2000, parallelism: 2, chunkKey: {} },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: postgresUrl
        ? { type: 'postgres', url: postgresUrl, schema: DB, tableName: '<table>' }
        : { type: 'jsonl', path: join(dir, 'out.jsonl'), tombstones: true, schemaChanges: true, overwrite: false },
      commit: { maxRecords: 10_000, maxDelayMs: 500 },
      metrics: { host: '127.0.0.1' },
      errors: { mode: 'fail' },
    };
    // The demo's own schema: tables an earlier demo left there would hold rows of another shop.
    const target = postgresUrl ? await demoTarget(postgresUrl) : undefined;
    const writerConn = await mysql.createConnection({ uri: servers.mysqlUrl! });
    const stopWriter = startShopWriter(writerConn);
    out(`a writer now changes orders ~10 times a second; syncing into ${config.sink.type === 'jsonl' ? config.sink.path : `PostgreSQL, schema ${DB}`}`);
    let reporter: NodeJS.Timeout | undefined;
    const observer = fanOut([
      new Metrics(),
      new SnapshotProgress(process.stderr.isTTY === true, log),
      {
        streaming: () => {
          out(`\nsnapshot done. checkpoint:\n  ${summary(config)}\nstreaming; newest changes every 3 s${seconds === undefined ? ' (Ctrl-C to stop)' : ''}:`);
          reporter = setInterval(() => {
            if (target) void target.report().then(out, (err: Error) => out(`  PostgreSQL could not be asked: ${err.message}`));
            else for (const l of lastChanges(join(dir, 'out.jsonl'), 3)) out(`  ${l}`);
          }, 3000);
          if (seconds !== undefined) setTimeout(stop, seconds * 1000).unref();
        },
      },
    ]);
    try {
      await runSync(config, { signal: controller.signal, log: () => {}, observer });
    } finally {
      clearInterval(reporter);
      await stopWriter();
      await writerConn.end();
      if (target) {
        out(await target.report().catch((err: Error) => `  PostgreSQL could not be asked: ${err.message}`));
        await target.end();
      }
    }
    out(`\nstopped. checkpoint:\n  ${summary(config)}\n${target ? `tables kept in PostgreSQL, schema ${DB}; checkpoint in` : 'output kept in'} ${dir}`);
  } finally {
    await conn.query(`DROP DATABASE IF EXISTS ${DB}`).catch(() => {});
    await conn.end();
    await servers.stop();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
