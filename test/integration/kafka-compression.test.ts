import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import kafkajs, { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KAFKA_COMPRESSION, type KafkaCompression } from '../../src/sink/kafka-codecs.js';
import { checkConsistency, formatReport } from '../support/consistency.js';
import { type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { asOutputLines, dataTopics, readCommitted } from '../support/kafka.js';
import { runTidemark, sourceFromUrl, tempDir, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter } from '../support/workload.js';

const TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 3_000 },
  { table: 'customers', key: 'string', rows: 1_000 },
];

const CODECS: { codec: Exclude<KafkaCompression, 'none'>; flavour: Flavour; serverId: number }[] = [
  { codec: 'gzip', flavour: 'mysql', serverId: 9400 },
  { codec: 'snappy', flavour: 'mariadb', serverId: 9410 },
  { codec: 'lz4', flavour: 'mysql', serverId: 9420 },
  { codec: 'zstd', flavour: 'mariadb', serverId: 9430 },
];

const { CompressionCodecs } = kafkajs;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Codec = { compress(encoder: { buffer: Buffer }): Promise<Buffer>; decompress(buffer: Buffer): Promise<Buffer> };
const table = CompressionCodecs as unknown as Record<number, () => Codec>;
const COMPRESSED = [CompressionTypes.GZIP, CompressionTypes.Snappy, CompressionTypes.LZ4, CompressionTypes.ZSTD];

// kafkajs picks a batch's decompressor from the batch's attributes, so counting decompressions per codec
// tells which codec the batches a consumer read were written with.
const decompressed = new Map<number, number>();
const registered = new Map<number, () => Codec>();
beforeAll(() => {
  for (const type of COMPRESSED) {
    const make = table[type]!;
    registered.set(type, make);
    table[type] = () => {
      const codec = make();
      return {
        compress: (encoder) => codec.compress(encoder),
        decompress: (buffer) => {
          decompressed.set(type, (decompressed.get(type) ?? 0) + 1);
          return codec.decompress(buffer);
        },
      };
    };
  }
});
afterAll(() => {
  for (const [type, make] of registered) table[type] = make;
});

/** Runs `read` and returns it with the number of batches it decompressed, by codec name. */
async function countingDecompressions<T>(read: () => Promise<T>): Promise<[T, Record<string, number>]> {
  decompressed.clear();
  const result = await read();
  const counts: Record<string, number> = {};
  for (const [name, type] of Object.entries(KAFKA_COMPRESSION)) if (decompressed.has(type)) counts[name] = decompressed.get(type)!;
  return [result, counts];
}

describe.each(CODECS)('sink.compression $codec', ({ codec, flavour, serverId }) => {
  it(`delivers a snapshot and a stream exactly once to a read_committed consumer, every batch ${codec}-compressed (${flavour})`, async () => {
    const { db, conn } = await freshDatabase(urlOf(flavour), 'kcodec');
    for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
    await conn.query(`ANALYZE TABLE ${TABLES.map((t) => `\`${db}\`.\`${t.table}\``).join(', ')}`);
    const dir = tempDir();
    const name = `kcodec-${randomBytes(4).toString('hex')}`;
    const brokers = inject('kafkaBrokers');
    const config = writeConfig(dir, {
      name,
      source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.*`] },
      snapshot: { mode: 'initial', chunkSize: 500 },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: { type: 'kafka', brokers: brokers.split(','), compression: codec },
      commit: { maxRecords: 1000, maxDelayMs: 100 },
    });

    const snapshot = await runTidemark(['sync', '-c', config, '--until-caught-up']);
    expect(snapshot.code, snapshot.stderr).toBe(0);
    // Written between the runs, so the second run streams them after reading back its own (compressed) offsets topic.
    const writer = startWriter(
      urlOf(flavour),
      db,
      TABLES.map((t) => ({ table: t.table, key: t.key })),
      { tps: 300, seed: 16 },
    );
    await sleep(1500);
    const stats = await writer.stop();
    expect(stats.updates).toBeGreaterThan(50);
    const stream = await runTidemark(['sync', '-c', config, '--until-caught-up']);
    expect(stream.code, stream.stderr).toBe(0);

    const topics = await dataTopics(brokers, name);
    expect(topics).toEqual(TABLES.map((t) => `${name}.${db}.${t.table}`).sort());
    const [messages, counts] = await countingDecompressions(() => readCommitted(brokers, topics));
    expect(counts).toEqual({ [codec]: expect.any(Number) });
    const { source, keyColumns } = await sourceState(conn, db, TABLES);
    const report = checkConsistency(asOutputLines(messages), source, { keyColumns, allowUnpairedMoves: true });
    expect(report.ok, formatReport(report)).toBe(true);
    expect(report.counts.events.r).toBe(TABLES.reduce((n, t) => n + t.rows, 0));
    expect(report.counts.events.u).toBeGreaterThanOrEqual(stats.updates);
    await conn.end();
  });

  it(`reads ${codec} batches the broker compressed itself`, async () => {
    // A topic's compression.type other than "producer" makes the broker recompress with its own (Java) codec:
    // what tidemark reads back, its offsets topic included, may come from any Kafka client or from the broker.
    const brokers = inject('kafkaBrokers').split(',');
    const topic = `kcodec-broker-${codec}-${randomBytes(4).toString('hex')}`;
    const kafka = new Kafka({ clientId: 'tidemark-test', brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, transactionalId: topic });
    const values = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ id: i, text: `row ${i} `.repeat(10) }));
    try {
      await admin.connect();
      await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic, numPartitions: 1, replicationFactor: 1, configEntries: [{ name: 'compression.type', value: codec }] }],
      });
      await producer.connect();
      const tx = await producer.transaction();
      await tx.send({ topic, acks: -1, messages: values.map((value, i) => ({ key: String(i), value })) });
      await tx.commit();
      // The commit returns before the coordinator has written its marker, and only then does the stable offset
      // readCommitted reads up to move past the records.
      const deadline = Date.now() + 10_000;
      while (Number((await admin.fetchTopicOffsets(topic))[0]?.offset) <= values.length && Date.now() < deadline) await sleep(20);
    } finally {
      await producer.disconnect();
      await admin.disconnect();
    }
    const [messages, counts] = await countingDecompressions(() => readCommitted(brokers.join(','), [topic]));
    expect(counts).toEqual({ [codec]: expect.any(Number) });
    expect(messages.map((m) => m.value)).toEqual(values);
  });
});
