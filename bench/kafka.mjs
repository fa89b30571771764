// Records/s into Kafka through tidemark's Kafka sink, with exactly-once on (one transaction per commit,
// plus its offset record) and off (idempotent producer), next to kafkajs itself sending the same
// messages in the same requests without transactions, all in one run against the same broker.
//
//   node bench/kafka.mjs [--records 200000] [--batch 100,1000,10000] [--partitions 1]
//
// A focused sweep of the Kafka sink alone by commit size; bench/run.mjs measures the whole connector.
//
// Uses TIDEMARK_TEST_KAFKA_BROKERS when set, else starts the local test servers. Needs a built dist/
// (npm run build). The records are Debezium envelopes of a sysbench-like row (about 400 bytes of JSON).

import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Kafka, logLevel, Partitioners } from 'kafkajs';

/** @import { OutputRecord } from '../src/events/event.js' */
/** @import { KafkaSinkConfig } from '../src/sink/kafka.js' */

// The built code, typed as its source (dist/ has no .d.ts files).
const { provisionServers } = /** @type {typeof import('../src/devservers/provision.js')} */ (
  await import(new URL('../dist/devservers/provision.js', import.meta.url).href)
);
const { KafkaSink } = /** @type {typeof import('../src/sink/kafka.js')} */ (await import(new URL('../dist/sink/kafka.js', import.meta.url).href));

const { values: args } = parseArgs({
  options: {
    records: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '100,1000,10000' },
    partitions: { type: 'string', default: '1' },
  },
});
const RECORDS = Number(args.records);
const BATCHES = args.batch.split(',').map(Number);
const PARTITIONS = Number(args.partitions);

const servers = await provisionServers(['kafka'], (l) => console.error(l));
if (!servers.kafkaBrokers) throw new Error('no Kafka broker was provisioned');
const brokers = servers.kafkaBrokers.split(',');
const NAME = `bench-${randomBytes(3).toString('hex')}`;

/**
 * Records as the sink receives them (OutputRecord): key and value already JSON text.
 * @returns {(OutputRecord & { value: string })[]}
 */
function records() {
  const out = [];
  for (let id = 1; id <= RECORDS; id++) {
    const after = {
      id,
      k: (id * 7919) % RECORDS,
      c: String(id).padStart(11, '0').repeat(10).slice(0, 119),
      pad: String(id * 31)
        .padStart(11, '0')
        .repeat(5)
        .slice(0, 59),
    };
    out.push({
      topic: `${NAME}.bench.sbtest1`,
      key: JSON.stringify({ id }),
      value: JSON.stringify({
        before: null,
        after,
        source: {
          version: '0.1.0',
          connector: 'mysql',
          name: NAME,
          ts_ms: Date.now(),
          snapshot: true,
          db: 'bench',
          table: 'sbtest1',
          server_id: 0,
          gtid: null,
          file: 'binlog.000001',
          pos: 4711,
          row: id,
        },
        op: 'r',
        ts_ms: Date.now(),
      }),
    });
  }
  return out;
}

/**
 * @param {string} prefix
 * @param {boolean} exactlyOnce
 * @returns {KafkaSinkConfig}
 */
const sinkConfig = (prefix, exactlyOnce) => ({
  type: 'kafka',
  brokers,
  topicPrefix: prefix,
  exactlyOnce,
  transactionTimeoutMs: 60_000,
  tombstones: true,
  schemaChanges: true,
  acks: -1,
  compression: 'none',
  maxRecordBytes: 1_000_000,
  topic: { partitions: PARTITIONS, replicationFactor: 1 },
});

/**
 * @typedef {{ seconds: number, commits: number }} Sweep
 */

/**
 * The sink as the committer drives it: prepare, then commit, one batch after the other.
 * @param {OutputRecord[]} all
 * @param {number} batch  records per commit
 * @param {boolean} exactlyOnce
 * @returns {Promise<Sweep>}
 */
async function viaSink(all, batch, exactlyOnce) {
  const prefix = `${NAME}-${exactlyOnce ? 'eo' : 'alo'}-${batch}`;
  const sink = new KafkaSink(NAME, sinkConfig(prefix, exactlyOnce));
  await sink.open(undefined);
  // Topic creation is not what is measured.
  await sink.commit(sink.prepare(all.slice(0, 1), 0));
  const started = performance.now();
  let seq = 1;
  for (let i = 0; i < all.length; i += batch) await sink.commit(sink.prepare(all.slice(i, i + batch), seq++));
  const seconds = (performance.now() - started) / 1000;
  await sink.close();
  return { seconds, commits: seq - 1 };
}

/**
 * kafkajs alone: the same messages in the same requests (the sink's slices), no transaction, no offset record.
 * @param {OutputRecord[]} all
 * @param {number} batch  records per commit
 * @returns {Promise<Sweep>}
 */
async function viaKafkajs(all, batch) {
  const prefix = `${NAME}-raw-${batch}`;
  const topic = `${prefix}.bench.sbtest1`;
  const kafka = new Kafka({ brokers, clientId: 'bench', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
  await producer.connect();
  // Encoding and slicing exactly as the sink does, so only the producing differs.
  const slicer = new KafkaSink(NAME, sinkConfig(prefix, false));
  const batches = [];
  for (let i = 0; i < all.length; i += batch) batches.push(all.slice(i, i + batch));
  const started = performance.now();
  for (const b of batches) {
    for (const topicMessages of slicer.prepare(b, 0).slices) await producer.sendBatch({ topicMessages, acks: -1 });
  }
  const seconds = (performance.now() - started) / 1000;
  await producer.disconnect();
  await slicer.close();
  return { seconds, commits: batches.length };
}

const all = records();
const bytes = all.reduce((n, r) => n + r.key.length + r.value.length, 0);
console.log(`${RECORDS} records, ${(bytes / RECORDS).toFixed(0)} bytes of key+value each, ${PARTITIONS} partition(s), broker ${brokers.join(',')}`);
console.log('| records per commit | exactly-once (transactions) | at-least-once (idempotent) | kafkajs, no transactions |');
console.log('| ---: | ---: | ---: | ---: |');
for (const batch of BATCHES) {
  const eo = await viaSink(all, batch, true);
  const alo = await viaSink(all, batch, false);
  const raw = await viaKafkajs(all, batch);
  /** @param {Sweep} r */
  const rate = (r) => `${Math.round(RECORDS / r.seconds).toLocaleString('en-US')} rec/s`;
  console.log(`| ${batch} | ${rate(eo)} | ${rate(alo)} | ${rate(raw)} |`);
}
// The topics hold every record sent; a shared test broker should not keep them.
const admin = new Kafka({ brokers, clientId: 'bench', logLevel: logLevel.NOTHING }).admin();
await admin.connect();
const mine = (await admin.listTopics()).filter((t) => t.startsWith(`${NAME}-`));
if (mine.length > 0) await admin.deleteTopics({ topics: mine });
await admin.disconnect();
await servers.stop();
