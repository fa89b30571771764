// The paced writer of bench/run.mjs's latency measurement. It runs in a worker thread so that its commit
// timestamps are taken on an event loop that does nothing else: the main thread is busy parsing what the
// sink delivers, and a late timestamp there would make every latency look shorter than it is.
//
// workerData: { url, table, rate, seconds, firstId }. Every TICK_MS it commits one multi-row INSERT of
// rate * TICK_MS / 1000 rows (autocommit), ids firstId, firstId + 1, ... in order, and posts back, per row,
// the wall-clock time (ms, sub-ms precision) at which the server acknowledged its commit.

import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import mysql from 'mysql2';

/**
 * What bench/sections/latency.mjs hands the worker.
 * @typedef {object} WriterInput
 * @property {string} url      the source, mysql://
 * @property {string} table    db.table
 * @property {number} rate     rows per second
 * @property {number} seconds
 * @property {number} firstId
 */

/**
 * What the worker posts back once done: per row (index = id - firstId), when its INSERT was sent and when
 * the server acknowledged its commit, in wall-clock ms; and the seconds it all took.
 * @typedef {object} WriterResult
 * @property {number} count
 * @property {number} elapsed
 * @property {Float64Array} committedAt
 * @property {Float64Array} sentAt
 */

if (!parentPort) throw new Error('bench/latency-writer.mjs runs as a worker thread of bench/run.mjs');
const parent = parentPort;
const TICK_MS = 10;
const { url, table, rate, seconds, firstId } = /** @type {WriterInput} */ (workerData);
const total = Math.round(rate * seconds);
const committedAt = new Float64Array(total);
const sentAt = new Float64Array(total);
// timeOrigin + now() is wall-clock time with sub-ms resolution, comparable with the main thread's.
const now = () => performance.timeOrigin + performance.now();

const c = 'abcdefghij0123456789'.repeat(6).slice(0, 119);
const pad = '0123456789'.repeat(6).slice(0, 59);

const conn = mysql.createConnection({ uri: url }).promise();
await conn.connect();
const start = performance.now();
let written = 0;
for (let tick = 1; written < total; tick++) {
  // Rows due by the end of this tick; a tick that fell behind is made up in the next statement.
  const due = Math.min(total, Math.round((rate * tick * TICK_MS) / 1000));
  if (due > written) {
    const values = [];
    for (let i = written; i < due; i++) values.push(`(${firstId + i},${i},'${c}','${pad}')`);
    const sent = now();
    await conn.query(`INSERT INTO ${table} (id, k, c, pad) VALUES ${values.join(',')}`);
    const acked = now();
    for (let i = written; i < due; i++) {
      sentAt[i] = sent;
      committedAt[i] = acked;
    }
    written = due;
  }
  const wait = start + tick * TICK_MS - performance.now();
  if (wait > 0) await sleep(wait);
}
const elapsed = (performance.now() - start) / 1000;
await conn.end();
/** @type {WriterResult} */
const result = { count: total, elapsed, committedAt, sentAt };
parent.postMessage(result, [committedAt.buffer, sentAt.buffer]);
