// The ceilings: what mysql2, zongji and kafkajs do with the same data when they have nothing else to do,
// measured in the same run as tidemark, so that machine noise and server settings cancel out of the ratios.

import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import ZongJi from '@vlasky/zongji';
import { CompressionTypes } from 'kafkajs';
import mysql from 'mysql2';
import { redirectUncaught } from './bench.mjs';
import { TABLE } from './data.mjs';
import { fmtInt } from './format.mjs';
import { createTopic, kafkaClient } from './kafka-client.mjs';
import { say } from './log.mjs';

/** @import { Message } from 'kafkajs' */
/** @import { Bench } from './bench.mjs' */
/** @import { Position } from './data.mjs' */
/** @import { Measured } from './stats.mjs' */

// Kafka refuses a single record batch over message.max.bytes (1 MiB by default); the sink cuts its produce
// requests at this size, and the kafkajs ceiling sends the same requests.
const SLICE_BYTES = 512 * 1024;

/**
 * mysql2 streaming every row of the table on one connection, with tidemark's connection options, doing nothing with them.
 * @param {Bench} bench
 * @param {string} [table]
 * @returns {Promise<Measured>}
 */
export function selectCeiling(bench, table = TABLE) {
  return new Promise((resolve, reject) => {
    const c = mysql.createConnection({ uri: bench.url, ...bench.snapshotConnectionOptions });
    const started = performance.now();
    let n = 0;
    c.query(`SELECT * FROM ${bench.db}.${table}`)
      .stream()
      .on('data', () => n++)
      .on('error', reject)
      .on('end', () => {
        const seconds = (performance.now() - started) / 1000;
        c.end();
        resolve({ rows: n, seconds });
      });
  });
}

/**
 * selectCeiling of the bench's table, said.
 * @param {Bench} bench
 */
export async function measureSelect(bench) {
  const s = await selectCeiling(bench);
  say(`mysql2 SELECT *: ${fmtInt(s.rows)} rows in ${s.seconds.toFixed(2)} s`);
  return s;
}

/**
 * zongji decoding the binlog from `from` to `to` (captured table only), doing nothing with the rows.
 * @param {Bench} bench
 * @param {Position} from
 * @param {Position} to
 * @returns {Promise<Measured>}
 */
export function binlogCeiling(bench, from, to) {
  return new Promise((resolve, reject) => {
    const z = new ZongJi({ uri: bench.url, ...bench.binlogConnectionOptions });
    let rows = 0;
    let started = 0;
    // zongji 0.9.0 emits a refused binlog dump (a purged file, say) on an internal emitter nobody listens to,
    // so it arrives as an uncaught exception.
    /** @param {Error} err */
    const fail = (err) => {
      redirectUncaught(null);
      z.stop();
      reject(err);
    };
    redirectUncaught(fail);
    z.on('ready', () => (started = performance.now()));
    z.on('error', fail);
    z.on('binlog', (e) => {
      if ('rows' in e && e.rows) rows += e.rows.length;
      const at = z.options.position;
      if (z.options.filename === to.file && at !== undefined && at >= to.pos) {
        const seconds = (performance.now() - started) / 1000;
        redirectUncaught(null);
        z.stop();
        resolve({ rows, seconds });
      }
    });
    z.start({
      serverId: 9790,
      filename: from.file,
      position: from.pos,
      includeSchema: { [bench.db]: [TABLE] },
      includeEvents: ['tablemap', 'writerows', 'updaterows', 'deleterows', 'xid', 'rotate'],
    });
  });
}

/**
 * kafkajs producing the records tidemark wrote to the jsonl file (so the same keys, values and sizes) to a
 * one-partition topic like tidemark's, without transactions: acks -1, requests of at most SLICE_BYTES sent one
 * after the other as the sink does, compressed as sink.compression `compression` would. Only the sends are timed;
 * reading the file and building the requests is not.
 * @param {Bench} bench
 * @param {string} jsonlPath
 * @param {string} [compression]  a sink.compression value; default none
 * @returns {Promise<Measured>}
 */
export async function kafkajsCeiling(bench, jsonlPath, compression = 'none') {
  // tidemark's codec registrations (kafkajs's own table, shared by every client in this process) and its names for them.
  const codecs = /** @type {typeof import('../../src/sink/kafka-codecs.js')} */ (
    await import(pathToFileURL(join(bench.code, 'dist/sink/kafka-codecs.js')).href)
  );
  const name = /** @type {import('../../src/sink/kafka-codecs.js').KafkaCompression} */ (compression);
  await codecs.checkKafkaCompression(name);
  const codec = codecs.KAFKA_COMPRESSION[name];
  const topic = `bench-${bench.runId}-raw${codec === CompressionTypes.None ? '' : `-${compression}`}.${bench.db}.${TABLE}`;
  await createTopic(bench, topic);
  const producer = kafkaClient(bench, 'bench-raw').producer({ allowAutoTopicCreation: false });
  await producer.connect();
  let sendMs = 0;
  let rows = 0;
  /** @type {Message[]} */
  let messages = [];
  let bytes = 0;
  const send = async () => {
    const started = performance.now();
    await producer.sendBatch({ topicMessages: [{ topic, messages }], acks: -1, compression: codec });
    sendMs += performance.now() - started;
    messages = [];
    bytes = 0;
  };
  const lines = createInterface({ input: createReadStream(jsonlPath, { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  for await (const line of lines) {
    const r = JSON.parse(line);
    const key = JSON.stringify(r.key);
    const value = r.value === null ? null : JSON.stringify(r.value);
    const size = key.length + (value?.length ?? 0);
    if (bytes > 0 && bytes + size > SLICE_BYTES) await send();
    messages.push({ key, value });
    bytes += size;
    rows++;
  }
  if (messages.length > 0) await send();
  await producer.disconnect();
  return { rows, seconds: sendMs / 1000 };
}
