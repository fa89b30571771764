// One bench run's surroundings: the copy of dist/ every sync runs, the servers, the connection to the source,
// the work folder, and their removal at the end, also after a failure or Ctrl-C.

import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import mysql from 'mysql2';
import { deleteBenchTopics } from './kafka-client.mjs';
import { fail, messageOf, say } from './log.mjs';
import { ROOT } from './paths.mjs';
import { Results } from './results.mjs';
import { killChildren } from './sync-process.mjs';

/** @import { Connection } from 'mysql2/promise' */
/** @import { DevServers } from '../../src/devservers/provision.js' */
/** @import { Options } from './args.mjs' */

/**
 * What tidemark's `source` config says about the server: where it is and who to log in as.
 * @typedef {object} Source
 * @property {string} host
 * @property {number} port
 * @property {string} user
 * @property {string} password
 */

/**
 * Everything the sections share. Made by openBench, ended by its close().
 * @typedef {object} Bench
 * @property {Options} options
 * @property {string} runId        names this run's database, topics and connector names
 * @property {string} db           the database the bench works in: bench_<runId>
 * @property {string} code         the copy of dist/, bin/ and package.json that every sync of the run runs
 * @property {string} distBuiltAt  when dist/ was built (ISO)
 * @property {string} work         a temporary folder: sync configs, checkpoints, jsonl output
 * @property {number} startedAt    performance.now() at the start
 * @property {DevServers} servers
 * @property {string} url          the source's mysql:// URL
 * @property {Source} source
 * @property {string[] | undefined} brokers  Kafka, when a chosen section needs it
 * @property {Connection} conn     the bench's own connection to the source
 * @property {typeof import('../../src/events/values.js').SNAPSHOT_CONNECTION_OPTIONS} snapshotConnectionOptions  tidemark's, from the copy
 * @property {typeof import('../../src/events/values.js').BINLOG_CONNECTION_OPTIONS} binlogConnectionOptions  tidemark's, from the copy
 * @property {Results} results     what the sections measured
 * @property {() => Promise<void>} close  stops what the run started and removes what it made; idempotent
 */

/**
 * Copies dist/, finds or starts the servers, connects, and sets up the cleanup for every way the run can end.
 * @param {Options} options
 * @returns {Promise<Bench>}
 */
export async function openBench(options) {
  if (!existsSync(join(ROOT, 'dist/cli/main.js'))) fail('dist/ is missing: run npm run build first');
  const runId = randomBytes(3).toString('hex');
  const code = copyCode(runId);
  const distBuiltAt = statSync(join(ROOT, 'dist/cli/main.js')).mtime.toISOString();
  const provision = /** @type {typeof import('../../src/devservers/provision.js')} */ (
    await import(pathToFileURL(join(ROOT, 'dist/devservers/provision.js')).href)
  );
  const values = /** @type {typeof import('../../src/events/values.js')} */ (await import(pathToFileURL(join(code, 'dist/events/values.js')).href));
  const startedAt = performance.now();
  const work = mkdtempSync(join(os.tmpdir(), 'tidemark-bench-'));
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));

  const servers = await findServers(provision, options);
  /** @type {Bench} */
  const bench = {
    options,
    runId,
    db: `bench_${runId}`,
    code,
    distBuiltAt,
    work,
    startedAt,
    ...servers,
    conn: mysql.createConnection({ uri: servers.url, multipleStatements: true }).promise(),
    snapshotConnectionOptions: values.SNAPSHOT_CONNECTION_OPTIONS,
    binlogConnectionOptions: values.BINLOG_CONNECTION_OPTIONS,
    results: new Results(),
    close: async () => {},
  };
  bench.close = closer(bench);
  endOnSignalsAndErrors(bench.close);
  return bench;
}

/**
 * The servers the chosen sections need (Kafka only for snapshot, stream and latency), found or started.
 * @param {typeof import('../../src/devservers/provision.js')} provision
 * @param {Options} options
 * @returns {Promise<Pick<Bench, 'servers' | 'url' | 'source' | 'brokers'>>}
 */
async function findServers(provision, { only, flavour }) {
  const needKafka = only.has('snapshot') || only.has('stream') || only.has('latency') || only.has('compression');
  const kinds = /** @type {('mysql' | 'mariadb' | 'kafka' | 'postgres')[]} */ ([flavour]);
  if (needKafka) kinds.push('kafka');
  if (only.has('postgres')) kinds.push('postgres');
  const servers = await provision.provisionServers(kinds, (l) => say(l));
  const url = flavour === 'mysql' ? servers.mysqlUrl : servers.mariadbUrl;
  if (!url) throw new Error(`no ${flavour} server was provisioned`);
  const u = new URL(url);
  return {
    servers,
    url,
    source: { host: u.hostname, port: Number(u.port), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) },
    brokers: servers.kafkaBrokers?.split(','),
  };
}

/**
 * dist/ may be rebuilt by someone else while this runs (minutes); every sync of one run must be the same code,
 * so the run uses a copy. bench/tmp/ is git-ignored; the copy resolves node_modules from the repository's root.
 * @param {string} runId
 * @returns {string} the copy's folder
 */
function copyCode(runId) {
  const code = join(ROOT, 'bench/tmp', `code-${runId}`);
  mkdirSync(join(code, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'dist'), join(code, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'bin/tidemark'), join(code, 'bin/tidemark'));
  cpSync(join(ROOT, 'package.json'), join(code, 'package.json'));
  process.on('exit', () => rmSync(code, { recursive: true, force: true }));
  return code;
}

/**
 * The run's cleanup, once however often it is called. Best effort each: a failed run should still not leave
 * its database, topics or gigabytes of output behind.
 * @param {Bench} bench
 * @returns {() => Promise<void>}
 */
function closer(bench) {
  /** @type {Promise<void> | null} */
  let closing = null;
  /** @type {(what: string, fn: () => Promise<unknown>) => Promise<unknown>} */
  const attempt = (what, fn) => fn().catch((e) => say(`cleanup: ${what} failed: ${messageOf(e)}`));
  const close = async () => {
    killChildren();
    await attempt('dropping the database', () => bench.conn.query(`DROP DATABASE IF EXISTS ${bench.db}`));
    await attempt('closing the connection', () => bench.conn.end());
    if (bench.brokers) await attempt('deleting the topics', () => deleteBenchTopics(bench));
    rmSync(bench.work, { recursive: true, force: true });
    rmSync(bench.code, { recursive: true, force: true });
    await attempt('stopping the servers', () => bench.servers.stop());
  };
  return () => {
    closing ??= close();
    return closing;
  };
}

/** @type {((err: Error) => void) | null} */
let takeUncaught = null;

/**
 * Hands uncaught exceptions to `handler` until called again with null (see binlogCeiling); without one,
 * an uncaught exception ends the run after the same cleanup as a normal end.
 * @param {((err: Error) => void) | null} handler
 */
export function redirectUncaught(handler) {
  takeUncaught = handler;
}

/** @param {() => Promise<void>} close */
function endOnSignalsAndErrors(close) {
  process.on('exit', killChildren);
  process.on('uncaughtException', (err) => {
    if (takeUncaught) return takeUncaught(err);
    console.error(err);
    killChildren();
    close().finally(() => process.exit(1));
  });
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      killChildren();
      close().finally(() => process.exit(130));
    });
  }
}
