import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Consumer, Kafka, type KafkaMessage, logLevel } from 'kafkajs';
// The test's consumers read what the sink wrote with any sink.compression, so they need the same codecs.
import '../../src/sink/kafka-codecs.js';
import type { OutputLine } from './consistency.js';

export interface TopicMessage {
  topic: string;
  partition: number;
  offset: bigint;
  key: string | null;
  value: string | null;
}

const client = (brokers: string): Kafka => new Kafka({ clientId: 'tidemark-test', brokers: brokers.split(','), logLevel: logLevel.NOTHING });

/** The data topics under `prefix` (`<prefix>.<db>.<table>`), without tidemark's offsets topic. */
export async function dataTopics(brokers: string, prefix: string): Promise<string[]> {
  const admin = client(brokers).admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`) && t !== `${prefix}.tidemark.offsets`).sort();
  } finally {
    await admin.disconnect();
  }
}

const toMessage = (topic: string, partition: number, m: KafkaMessage): TopicMessage => ({
  topic,
  partition,
  offset: BigInt(m.offset),
  key: m.key?.toString() ?? null,
  value: m.value?.toString() ?? null,
});

/**
 * Everything a read_committed consumer sees in `topics` up to their last stable offsets, each partition in
 * offset order. The end is taken before reading, so a transaction still open then is not waited for.
 */
export async function readCommitted(brokers: string, topics: string[], timeoutMs = 60_000): Promise<TopicMessage[]> {
  const kafka = client(brokers);
  const admin = kafka.admin();
  await admin.connect();
  // topic → partition → last offset to reach
  const pending = new Map<string, bigint>();
  try {
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (BigInt(p.offset) > BigInt(p.low)) pending.set(`${topic}/${p.partition}`, BigInt(p.offset) - 1n);
      }
    }
  } finally {
    await admin.disconnect();
  }
  const out: TopicMessage[] = [];
  if (pending.size === 0) return out;
  const consumer = kafka.consumer({ groupId: `tidemark-test-${randomUUID()}`, readUncommitted: false, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 });
  try {
    await consumer.connect();
    await consumer.subscribe({ topics, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`readCommitted: not at the end after ${timeoutMs} ms; still waiting for ${[...pending.keys()].join(', ')}`)),
        timeoutMs,
      );
      const reached = (topic: string, partition: number, lastOffset: string): void => {
        const id = `${topic}/${partition}`;
        const last = pending.get(id);
        if (last !== undefined && BigInt(lastOffset) >= last) pending.delete(id);
        if (pending.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => reached(payload.topic, payload.partition, payload.lastOffset));
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ topic, partition, message }) => {
            // A fetch may run past the end taken above; those records belong to a later view.
            const last = pending.get(`${topic}/${partition}`);
            if (last === undefined || BigInt(message.offset) > last) return;
            out.push(toMessage(topic, partition, message));
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
  return sortByPartitionOffset(out);
}

/** Per topic-partition in offset order, partitions one after another: the order the checker needs per key. */
function sortByPartitionOffset(messages: TopicMessage[]): TopicMessage[] {
  return [...messages].sort((a, b) =>
    a.topic !== b.topic
      ? a.topic < b.topic
        ? -1
        : 1
      : a.partition !== b.partition
        ? a.partition - b.partition
        : a.offset < b.offset
          ? -1
          : a.offset > b.offset
            ? 1
            : 0,
  );
}

/** Kafka messages as jsonl sink lines, for the consistency checker. */
export function asOutputLines(messages: TopicMessage[]): OutputLine[] {
  return messages.map((m) => ({
    topic: m.topic,
    key: m.key === null ? null : (JSON.parse(m.key) as OutputLine['key']),
    value: m.value === null ? null : (JSON.parse(m.value) as OutputLine['value']),
  }));
}

/** A consumer that records what it sees as it arrives (from the beginning, or only what comes next), until stopped. */
export async function watch(
  brokers: string,
  topics: string[],
  opts: { readUncommitted: boolean; onlyNew?: boolean; onMessage?: (m: TopicMessage) => void },
): Promise<{ messages: TopicMessage[]; stop(): Promise<void> }> {
  const messages: TopicMessage[] = [];
  const consumer: Consumer = client(brokers).consumer({
    groupId: `tidemark-test-${randomUUID()}`,
    readUncommitted: opts.readUncommitted,
    allowAutoTopicCreation: false,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: !opts.onlyNew });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      const m = toMessage(topic, partition, message);
      messages.push(m);
      opts.onMessage?.(m);
    },
  });
  return { messages, stop: () => consumer.disconnect() };
}

const SCRIPT = fileURLToPath(new URL('../../scripts/test-servers.sh', import.meta.url));
// scripts/test-kafka4.sh sets TIDEMARK_TEST_KAFKA_LINE=4: the shared broker is then the local Kafka 4.x, and so is a private one.
const KAFKA4 = process.env.TIDEMARK_TEST_KAFKA_LINE === '4';
const KAFKA_VERSION = KAFKA4 ? '4.4.0' : '3.9.1';
const KAFKA_LIBS_DIR = `kafka-${KAFKA_VERSION}-libs`;
const KAFKA_LIBS = join(process.env.TIDEMARK_CACHE_DIR ?? join(homedir(), '.cache', 'tidemark'), KAFKA_LIBS_DIR);

/** A single-node Kafka of one test's own, to stop and start without disturbing anyone else's. */
export interface PrivateBroker {
  brokers: string;
  up(): Promise<void>;
  /** SIGTERM, an orderly shutdown. */
  down(): Promise<void>;
  /** kill -9, as a crash: resolves once the process is gone. */
  kill(): Promise<void>;
  /** Stops it and deletes its data. */
  remove(): Promise<void>;
}

const portFree = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });

/**
 * Ports below Linux's ephemeral range (32768+): a broker restarted on a port in that range can find it taken
 * by some client's outgoing connection and fail to bind.
 */
async function freeLowPorts(): Promise<[number, number]> {
  for (;;) {
    const port = 20_000 + 2 * Math.floor(Math.random() * 6000);
    if ((await portFree(port)) && (await portFree(port + 1))) return [port, port + 1];
  }
}

/**
 * Starts a broker with scripts/test-servers.sh in a cache folder of its own (sharing the cached jars), or
 * returns null where the local test servers are not in use or the jars are not cached.
 */
export async function privateBroker(): Promise<PrivateBroker | null> {
  if ((process.env.TIDEMARK_TEST_KAFKA_BROKERS && !KAFKA4) || process.env.TIDEMARK_TEST_SERVERS === 'containers') return null;
  if (!existsSync(join(KAFKA_LIBS, `kafka_2.13-${KAFKA_VERSION}.jar`))) return null;
  const cache = mkdtempSync(join(tmpdir(), 'tidemark-kafka-'));
  mkdirSync(join(cache, 'run'));
  symlinkSync(KAFKA_LIBS, join(cache, KAFKA_LIBS_DIR));
  const [port, controllerPort] = await freeLowPorts();
  const server = KAFKA4 ? 'kafka4' : 'kafka';
  const ports = KAFKA4
    ? { TIDEMARK_KAFKA4_PORT: String(port), TIDEMARK_KAFKA4_CONTROLLER_PORT: String(controllerPort) }
    : { TIDEMARK_KAFKA_PORT: String(port), TIDEMARK_KAFKA_CONTROLLER_PORT: String(controllerPort) };
  const env = { ...process.env, TIDEMARK_CACHE_DIR: cache, ...ports };
  const script = async (cmd: 'up' | 'down' | 'kill'): Promise<void> => {
    await promisify(execFile)('bash', [SCRIPT, cmd, server], { env }).catch((err: { stderr?: string; message: string }) => {
      throw new Error(`test-servers.sh ${cmd} ${server} (private broker in ${cache}) failed:\n${err.stderr ?? err.message}`);
    });
  };
  const broker: PrivateBroker = {
    brokers: `127.0.0.1:${port}`,
    up: () => script('up'),
    down: () => script('down'),
    kill: () => script('kill'),
    async remove() {
      await script('down');
      rmSync(cache, { recursive: true, force: true });
    },
  };
  await broker.up();
  return broker;
}
