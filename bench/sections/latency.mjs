// Section latency: commit → visible in the sink, for every row a paced writer commits while `tidemark sync`
// streams into jsonl and into Kafka (exactly-once), next to what observing Kafka adds by itself (kafkajs
// transactions → the same consumer) and what an fsync costs on the disk of the jsonl output.

import { closeSync, fsyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { createTable } from '../lib/data.mjs';
import { fmtInt, fmtMs, mb } from '../lib/format.mjs';
import { createTopic, kafkaClient } from '../lib/kafka-client.mjs';
import { say } from '../lib/log.mjs';
import { consumeKafka, tailJsonl } from '../lib/sink-observers.mjs';
import { percentile } from '../lib/stats.mjs';
import { sinkConfig, startSync, syncConfig } from '../lib/sync-process.mjs';

/** @import { Producer } from 'kafkajs' */
/** @import { WriterInput, WriterResult } from '../latency-writer.mjs' */
/** @import { Bench } from '../lib/bench.mjs' */
/** @import { FsyncCost, LatencyRow } from '../lib/results.mjs' */
/** @import { OnIds, SinkObserver } from '../lib/sink-observers.mjs' */

export const name = 'latency';

/** Target changes/s of the paced writer, per sink. */
const RATES = [2000, 10_000];
/** The first seconds of every latency run, not counted. */
export const WARMUP_SECONDS = 2;

/**
 * What the latency figures include and leave out, for the results file.
 * @param {FsyncCost | null} fsyncMs
 */
export const latencyNotes = (fsyncMs) => ({ warmupSecondsExcluded: WARMUP_SECONDS, writerTickMs: 10, jsonlPollMs: 2, kafkaConsumerMaxWaitMs: 100, fsyncMs });

/** @param {Bench} bench */
export async function run(bench) {
  await createTable(bench, 'lat');
  let firstId = 1;
  for (const sinkType of /** @type {const} */ (['jsonl', 'kafka'])) {
    for (const rateHz of RATES) {
      bench.results.latency.push(await latencyRun(bench, sinkType, rateHz, firstId));
      firstId += 10_000_000;
    }
  }
  say('latency floor: kafkajs transactions → the same consumer');
  bench.results.latency.push(await kafkaFloor(bench, 20, 5));
  bench.results.fsyncMs = fsyncCost(bench);
}

/**
 * Commit → visible in the sink for every row the paced writer commits, with `tidemark sync` streaming
 * (snapshot.mode never) into the sink. The first WARMUP_SECONDS of rows are not counted.
 * @param {Bench} bench
 * @param {'jsonl' | 'kafka'} sinkType
 * @param {number} rateHz
 * @param {number} firstId  the writer's first id; its rows are firstId, firstId + 1, ...
 * @returns {Promise<LatencyRow>}
 */
async function latencyRun(bench, sinkType, rateHz, firstId) {
  const tag = `lat-${sinkType}-${rateHz}`;
  const cfg = syncConfig(bench, tag, { table: 'lat', mode: 'never', sink: sinkConfig(bench, sinkType, tag) });
  const seconds = bench.options.latencySeconds + WARMUP_SECONDS;
  const total = Math.round(rateHz * seconds);
  const visible = firstSeen(firstId, total);
  const observer = await observeSink(bench, sinkType, tag, visible.onIds);
  const sync = startSync(bench, cfg.path, { untilCaughtUp: false, timeoutMs: (seconds + 120) * 1000 });
  await Promise.race([sync.waitFor('streaming'), sync.done]);
  say(`latency: ${sinkType} at ${fmtInt(rateHz)} changes/s for ${seconds} s`);
  const written = await runWriter(bench, 'lat', rateHz, seconds, firstId);
  for (let waited = 0; visible.seen() < total && waited < 15_000; waited += 50) await sleep(50);
  sync.stop();
  const run = await sync.done;
  await observer.stop();
  const r = {
    sink: sinkType,
    targetRate: rateHz,
    ...summarize(written, visible.at, Math.round(rateHz * WARMUP_SECONDS)),
    peakRssMb: mb(run.peakRssKb),
  };
  say(
    `latency ${sinkType} @ ${rateHz}/s: p50 ${fmtMs(r.p50)} ms, p99 ${fmtMs(r.p99)} ms, max ${fmtMs(r.max)} ms, ${r.lost} not seen, writer achieved ${fmtInt(r.achievedRate)}/s`,
  );
  rmSync(cfg.dir, { recursive: true, force: true });
  return r;
}

/**
 * When each of `total` ids from `firstId` on was first seen in the sink (NaN: not yet).
 * @param {number} firstId
 * @param {number} total
 * @returns {{ at: Float64Array, seen: () => number, onIds: OnIds }}
 */
function firstSeen(firstId, total) {
  const at = new Float64Array(total).fill(NaN);
  let seen = 0;
  return {
    at,
    seen: () => seen,
    onIds: (ids, atMs) => {
      for (const id of ids) {
        const i = id - firstId;
        if (i >= 0 && i < total && Number.isNaN(at[i])) {
          at[i] = atMs;
          seen++;
        }
      }
    },
  };
}

/**
 * Starts watching the sink of run `tag` before the sync starts.
 * @param {Bench} bench
 * @param {'jsonl' | 'kafka'} sinkType
 * @param {string} tag
 * @param {OnIds} onIds
 * @returns {Promise<SinkObserver>}
 */
async function observeSink(bench, sinkType, tag, onIds) {
  if (sinkType === 'jsonl') return tailJsonl(join(bench.work, tag, 'out.jsonl'), onIds);
  // Created up front so the consumer can join before the first change; tidemark uses an existing topic as it is.
  const topic = `bench-${bench.runId}-${tag}.${bench.db}.lat`;
  await createTopic(bench, topic);
  return consumeKafka(bench, topic, onIds);
}

/**
 * The latencies (visible - committed) and the writer's INSERT round trips of the rows after the warm-up.
 * @param {WriterResult} written
 * @param {Float64Array} visibleAt
 * @param {number} warm  rows of the warm-up
 */
function summarize(written, visibleAt, warm) {
  const total = visibleAt.length;
  const lat = [];
  const rtt = [];
  let lost = 0;
  for (let i = warm; i < total; i++) {
    const committed = /** @type {number} */ (written.committedAt[i]);
    rtt.push(committed - /** @type {number} */ (written.sentAt[i]));
    const visible = /** @type {number} */ (visibleAt[i]);
    if (Number.isNaN(visible)) lost++;
    else lat.push(visible - committed);
  }
  lat.sort((a, b) => a - b);
  rtt.sort((a, b) => a - b);
  return {
    achievedRate: total / written.elapsed,
    rows: lat.length,
    lost,
    p50: percentile(lat, 0.5),
    p99: percentile(lat, 0.99),
    max: lat[lat.length - 1],
    insertP50: percentile(rtt, 0.5),
    insertP99: percentile(rtt, 0.99),
  };
}

/**
 * bench/latency-writer.mjs in a worker thread: `rateHz` rows a second into `table` for `seconds`.
 * @param {Bench} bench
 * @param {string} table
 * @param {number} rateHz
 * @param {number} seconds
 * @param {number} firstId
 * @returns {Promise<WriterResult>}
 */
function runWriter(bench, table, rateHz, seconds, firstId) {
  /** @type {WriterInput} */
  const workerData = { url: bench.url, table: `${bench.db}.${table}`, rate: rateHz, seconds, firstId };
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('../latency-writer.mjs', import.meta.url), { workerData });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

/**
 * What observing Kafka adds: kafkajs itself committing transactions of `perTx` records back to back for
 * `seconds`, read by the same read_committed consumer, timed from the return of commit() to the fetch.
 * (Not a throughput figure: a transaction takes tens of ms here, so it runs at what it can.)
 * @param {Bench} bench
 * @param {number} perTx
 * @param {number} seconds
 * @returns {Promise<LatencyRow>}
 */
async function kafkaFloor(bench, perTx, seconds) {
  const topic = `bench-${bench.runId}-floor`;
  await createTopic(bench, topic);
  /** @type {Map<number, number>} */
  const visibleAt = new Map();
  const consumer = await consumeKafka(bench, topic, (ids, at) => {
    for (const id of ids) if (!visibleAt.has(id)) visibleAt.set(id, at);
  });
  const producer = kafkaClient(bench, 'bench-floor').producer({ transactionalId: `bench-${bench.runId}-floor`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const { committedAt, elapsed } = await commitBackToBack(producer, topic, perTx, seconds);
  for (let waited = 0; visibleAt.size < committedAt.length && waited < 10_000; waited += 50) await sleep(50);
  await producer.disconnect();
  await consumer.stop();
  const lat = [];
  for (const [id, at] of committedAt.entries()) {
    const visible = visibleAt.get(id);
    if (visible !== undefined) lat.push(visible - at);
  }
  lat.sort((a, b) => a - b);
  return {
    sink: `kafkajs, ${perTx} records per transaction → consumer (what observing adds)`,
    targetRate: null,
    achievedRate: committedAt.length / elapsed,
    rows: lat.length,
    lost: committedAt.length - lat.length,
    p50: percentile(lat, 0.5),
    p99: percentile(lat, 0.99),
    max: lat[lat.length - 1],
  };
}

/**
 * A transactional producer committing `perTx` records per transaction to `topic` for `seconds`, keyed
 * {id: 0}, {id: 1}, ...
 * @param {Producer} producer
 * @param {string} topic
 * @param {number} perTx
 * @param {number} seconds
 * @returns {Promise<{ committedAt: number[], elapsed: number }>}  per id, when commit() returned; seconds taken
 */
async function commitBackToBack(producer, topic, perTx, seconds) {
  const value = JSON.stringify({ c: 'x'.repeat(400) });
  /** @type {number[]} */
  const committedAt = [];
  const start = performance.now();
  while (performance.now() - start < seconds * 1000) {
    const tx = await producer.transaction();
    const first = committedAt.length;
    const messages = [];
    for (let i = 0; i < perTx; i++) messages.push({ key: JSON.stringify({ id: first + i }), value });
    await tx.send({ topic, messages, acks: -1 });
    await tx.commit();
    const at = performance.timeOrigin + performance.now();
    for (let i = 0; i < perTx; i++) committedAt.push(at);
  }
  const elapsed = (performance.now() - start) / 1000;
  return { committedAt, elapsed };
}

/**
 * fsync of a small append on the disk the jsonl file is on: what the sink's commit adds after a line becomes readable.
 * @param {Bench} bench
 * @returns {FsyncCost}
 */
function fsyncCost(bench) {
  const path = join(bench.work, 'fsync-probe');
  const fd = openSync(path, 'a');
  const times = [];
  const line = Buffer.from('x'.repeat(20_000));
  for (let i = 0; i < 50; i++) {
    writeSync(fd, line);
    const t = performance.now();
    fsyncSync(fd);
    times.push(performance.now() - t);
  }
  closeSync(fd);
  rmSync(path);
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}
