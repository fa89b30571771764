import { randomUUID } from 'node:crypto';
import {
  type Admin,
  type CompressionTypes,
  Kafka,
  type KafkaConfig,
  type logCreator,
  logLevel,
  type Message,
  Partitioners,
  type Producer,
  type RetryOptions,
  type SASLOptions,
  type TopicMessages,
  type Transaction,
} from 'kafkajs';
import pRetry from 'p-retry';
import type { Logger } from 'pino';
import type { SinkConfig } from '../config/schema.js';
import { type ErrorMode, SinkError } from '../errors.js';
import { deadLetterJson } from '../events/dead-letter.js';
import type { OutputRecord } from '../events/event.js';
import { pausePoint } from '../faults.js';
import { createLogger } from '../ops/logger.js';
import { withTimeout } from '../timeout.js';
import { checkKafkaCompression, KAFKA_COMPRESSION } from './kafka-codecs.js';
import type { DeadLetterCount, PreparedBatch, Sink } from './sink.js';

export type KafkaSinkConfig = Extract<SinkConfig, { type: 'kafka' }>;

interface KafkaBatch extends PreparedBatch {
  /** Each slice is one produce request, sent in order. */
  slices: TopicMessages[][];
  topics: string[];
  /** The commit number this batch becomes once committed (exactly-once only). */
  commit: number;
}

// kafkajs's own retries: a few attempts over about 10 s for connecting (so an unreachable broker at start is
// reported promptly), from 25 ms on for requests: a transaction begun right after a commit is refused
// (CONCURRENT_TRANSACTIONS) until the broker has written the previous one's markers, a few milliseconds.
// Every field is given: kafkajs fills missing ones from other defaults when NODE_ENV is "test".
const CONNECT_RETRY: RetryOptions = { initialRetryTime: 300, maxRetryTime: 30_000, factor: 0.2, multiplier: 2, retries: 5 };
const SEND_RETRY: RetryOptions = { initialRetryTime: 25, maxRetryTime: 5_000, factor: 0.2, multiplier: 2, retries: 10 };
// Beyond those, kafkajs gives up on a transaction as soon as it cannot reach the transaction coordinator, so a
// commit is retried as a whole, on a new producer, with backoff for up to this long after its first failure.
const COMMIT_RETRY_WINDOW_MS = 60_000;
const COMMIT_BACKOFF = { minTimeout: 500, maxTimeout: 10_000, factor: 2 };
// One record batch per partition per request, and brokers refuse batches over message.max.bytes (1 MiB by default).
const SLICE_BYTES = 512 * 1024;
const READ_OFFSETS_TIMEOUT_MS = 60_000;
// The offsets are read by a consumer group, whose coordinator can be loading or moving for a few seconds (on a
// new cluster, the first group anyone uses; after a broker restart), which kafkajs reports as a crash.
const READ_OFFSETS_RETRY_WINDOW_MS = 30_000;
// Best effort: a transaction left open is aborted by the broker at its timeout or by the next instance's fencing.
const ABORT_TIMEOUT_MS = 5_000;

// kafkajs logs each such retry as an error; after every commit one is routine, not worth a line.
const ROUTINE = /another concurrent operation on the same transaction was ongoing/;

/** kafkajs's log lines go to tidemark's log (stderr), so stdout stays free for the stdout sink. */
const toLogger =
  (logger: Logger): logCreator =>
  () =>
  ({ namespace, level, log }) => {
    const { message, timestamp: _timestamp, logger: _kafkajs, ...fields } = log;
    if (ROUTINE.test(String(message)) || ROUTINE.test(String(fields.error))) return;
    const msg = `kafka: ${namespace ? `[${namespace}] ` : ''}${String(message)}`;
    if (level === logLevel.ERROR) logger.error(fields, msg);
    else logger.warn(fields, msg);
  };

const errorChain = (err: unknown): Record<string, unknown>[] => {
  const chain: Record<string, unknown>[] = [];
  for (let e = err; typeof e === 'object' && e !== null && chain.length < 10; e = (e as { cause?: unknown }).cause) {
    chain.push(e as Record<string, unknown>);
  }
  return chain;
};

/**
 * Kafka answers a producer whose epoch was bumped by a newer one with the same transactional id (or by the
 * coordinator expiring its transaction) with PRODUCER_FENCED, which older request versions, the ones kafkajs
 * speaks, report as INVALID_PRODUCER_EPOCH; kafkajs knows no name for code 90 and calls it "Unknown error code 90".
 */
const isFenced = (err: unknown): boolean =>
  errorChain(err).some(
    (e) => e.type === 'INVALID_PRODUCER_EPOCH' || e.type === 'PRODUCER_FENCED' || (e.type === 'KAFKAJS_UNKNOWN_ERROR_CODE' && /\b90\b/.test(String(e.message))),
  );

// Problems a retry cannot fix: the broker refuses this producer, its credentials, its records or its settings.
const PERMANENT = new Set([
  'INVALID_PRODUCER_EPOCH',
  'PRODUCER_FENCED',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'INVALID_TOPIC_EXCEPTION',
  'INVALID_TRANSACTION_TIMEOUT',
  'INVALID_REPLICATION_FACTOR',
  'INVALID_PARTITIONS',
  'INVALID_CONFIG',
  'POLICY_VIOLATION',
  'UNSUPPORTED_VERSION',
]);

/** A kafkajs failure that a new producer may get past once the cluster answers again (a lost broker, a moved coordinator). */
const isTransient = (err: unknown): boolean => {
  const chain = errorChain(err);
  return (
    chain.some((e) => typeof e.name === 'string' && e.name.startsWith('KafkaJS')) &&
    !isFenced(err) &&
    !chain.some((e) => PERMANENT.has(String(e.type)) || e.name === 'KafkaJSSASLAuthenticationError')
  );
};

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Topics `<topicPrefix>.<db>.<table>`, one message per change: key the primary key as JSON, value the
 * Debezium envelope as JSON (null for a tombstone), the same JSON as a jsonl line's key and value.
 *
 * Exactly-once (the default): every commit is one Kafka transaction holding its records and one offset
 * record `{seq, state}` keyed by the connector name on the compacted topic `<topicPrefix>.tidemark.offsets`.
 * `state` numbers the sink's own commits (1, 2, ...) and keeps counting across a checkpoint reset, so a
 * stale offset record can never vouch for a commit of a newer checkpoint. The transactional id is derived
 * from the connector name: starting fences any earlier instance and settles its open transaction, after
 * which the read_committed view of the offsets topic is final and answers `holds`.
 *
 * `exactlyOnce: false`: an idempotent producer without transactions, at-least-once (a batch whose commit
 * was cut short is sent again after a restart, and consumers may see part of a batch before the rest).
 */
export class KafkaSink implements Sink {
  readonly guarantee: 'exactly-once' | 'at-least-once';
  readonly transactionalId: string;
  readonly offsetsTopic: string;
  private readonly logger: Logger = createLogger();
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private producer: Producer;
  private readonly brokers: string;
  private readonly compression: CompressionTypes;
  private readonly topicPrefix: string;
  private readonly topicNames = new Map<string, string>();
  private readonly existingTopics = new Set<string>();
  private topicsListed = false;
  private started: Promise<void> | null = null;
  /** The highest commit number the read_committed view of the offsets topic holds for this connector. */
  private committed: number | null = null;
  /** The Kafka transaction parts of the next commit were sent into (writePart), until that commit ends it. */
  private partTransaction: Transaction | null = null;
  /** Set by a commit that failed for good: nothing more is sent, a restart settles it (holds). */
  private failure: Error | null = null;

  constructor(
    private readonly name: string,
    private readonly config: KafkaSinkConfig,
    private readonly errors: ErrorMode = 'fail',
  ) {
    this.guarantee = config.exactlyOnce ? 'exactly-once' : 'at-least-once';
    this.topicPrefix = config.topicPrefix ?? name;
    this.offsetsTopic = `${this.topicPrefix}.tidemark.offsets`;
    this.transactionalId = `tidemark-${name}`;
    this.brokers = config.brokers.join(', ');
    this.compression = KAFKA_COMPRESSION[config.compression];
    this.kafka = new Kafka({
      brokers: config.brokers,
      clientId: config.clientId ?? `tidemark-${name}`,
      ssl: config.ssl as KafkaConfig['ssl'],
      sasl: config.sasl as SASLOptions | undefined,
      retry: CONNECT_RETRY,
      logLevel: logLevel.ERROR,
      logCreator: toLogger(this.logger),
    });
    this.admin = this.kafka.admin({ retry: SEND_RETRY });
    this.producer = this.newProducer();
  }

  async holds(state: string): Promise<boolean> {
    if (!this.config.exactlyOnce) return false;
    await this.start();
    return (await this.lastCommitted()) >= Number(state);
  }

  async open(committedState: string | undefined): Promise<void> {
    await this.start();
    if (!this.config.exactlyOnce) return;
    const inKafka = await this.lastCommitted();
    const inCheckpoint = Number(committedState || 0);
    if (inKafka < inCheckpoint) {
      throw new SinkError(
        `Kafka's ${this.offsetsTopic} topic holds commits up to ${inKafka} for connector ${this.name}, but the checkpoint says ${inCheckpoint} were committed: ` +
          'the topic was deleted or recreated, or sink.brokers points at another cluster. Restore it, or run tidemark reset (or use a new checkpoint.path) to start over.',
      );
    }
  }

  prepare(records: OutputRecord[], seq: number): KafkaBatch {
    const exactlyOnce = this.config.exactlyOnce;
    const current = this.committed ?? 0;
    // A commit with no records (a stream position with no captured change) needs no transaction: it holds trivially,
    // unless parts of it were written ahead into one, which only its commit closes.
    const commit = exactlyOnce && (records.length > 0 || this.partTransaction !== null) ? current + 1 : current;
    const state = exactlyOnce ? String(commit) : '';
    const slices = this.slices(records);
    if (commit !== current) {
      const value = JSON.stringify({ seq, state });
      slices.push(this.offsetsTopic, { key: this.name, value }, Buffer.byteLength(value));
    }
    const { deadLetters } = slices;
    return { state, slices: slices.done(), topics: [...slices.topics], commit, ...(deadLetters.length > 0 ? { deadLetters } : {}) };
  }

  /**
   * Records of a commit to come, sent ahead of it into the Kafka transaction that commit will end (exactly-once), so
   * read_committed consumers see them only with it; a crash before it leaves the transaction to be aborted by the
   * next start's fencing. Such a commit is not retried on a new producer, which would have lost what went before: it
   * stops the run, and the restart reads the source transaction again.
   */
  async writePart(records: OutputRecord[]): Promise<DeadLetterCount[]> {
    if (this.failure) throw this.failure;
    const slices = this.slices(records);
    try {
      await this.ensureTopics([...slices.topics]);
      if (this.config.exactlyOnce) this.partTransaction ??= await this.producer.transaction();
      await this.send(slices.done(), this.partTransaction);
    } catch (err) {
      throw await this.failPart(err);
    }
    return slices.deadLetters;
  }

  async commit(batch: PreparedBatch): Promise<void> {
    const { slices, topics, commit } = batch as KafkaBatch;
    if (this.failure) throw this.failure;
    if (this.partTransaction) {
      const tx = this.partTransaction;
      try {
        await this.ensureTopics(topics);
        await this.send(slices, tx);
        await tx.commit();
      } catch (err) {
        throw await this.failPart(err);
      }
      this.partTransaction = null;
      this.committed = commit;
      return;
    }
    if (slices.length === 0) return;
    const started = Date.now();
    // The retry module reports a timeout of its own once the window is over; the failure to explain is the last real one.
    let last: { err: unknown; attempt: number } = { err: undefined, attempt: 0 };
    try {
      await pRetry(
        async (attempt) => {
          if (attempt > 1) {
            await this.restart();
            if (this.config.exactlyOnce && (this.committed ?? 0) >= commit) return;
          }
          await this.ensureTopics(topics);
          if (this.config.exactlyOnce) await this.transaction(slices);
          else await this.send(slices, null);
        },
        {
          ...COMMIT_BACKOFF,
          forever: true,
          maxRetryTime: COMMIT_RETRY_WINDOW_MS,
          shouldRetry: isTransient,
          onFailedAttempt: (err) => {
            last = { err, attempt: err.attemptNumber };
            if (isTransient(err)) this.logger.warn({ attempt: err.attemptNumber, error: messageOf(err) }, 'kafka: commit failed; retrying on a new producer');
          },
        },
      );
    } catch (err) {
      this.failure = this.explain(last.err ?? err, { attempts: last.attempt, ms: Date.now() - started });
      throw this.failure;
    }
    this.committed = commit;
  }

  async close(): Promise<void> {
    await this.producer.disconnect().catch(() => {});
    await this.admin.disconnect().catch(() => {});
  }

  private newProducer(): Producer {
    return this.kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      retry: SEND_RETRY,
      // Idempotence needs acks from all in-sync replicas; with fewer the producer is a plain one.
      idempotent: this.config.acks === -1,
      maxInFlightRequests: this.config.acks === -1 ? 1 : undefined,
      ...(this.config.exactlyOnce ? { transactionalId: this.transactionalId, transactionTimeout: this.config.transactionTimeoutMs } : {}),
    });
  }

  /**
   * Replaces the producer after a failed commit and (exactly-once) reads again which commit Kafka holds: the
   * new producer's fencing settles the failed transaction, so that says whether it committed after all.
   */
  private async restart(): Promise<void> {
    await withTimeout(this.producer.disconnect(), ABORT_TIMEOUT_MS, 'kafka producer disconnect').catch(() => {});
    this.producer = this.newProducer();
    await this.producer.connect();
    if (!this.config.exactlyOnce) return;
    await this.fence();
    const before = this.committed ?? 0;
    this.committed = null;
    const now = await this.lastCommitted();
    if (now > before + 1) {
      throw new SinkError(
        `another tidemark instance with the connector name ${this.name} committed to ${this.offsetsTopic} (commit ${now}, this instance was at ${before}): it took over. Stopping; nothing was committed twice.`,
      );
    }
  }

  private async fence(): Promise<void> {
    // Beginning a transaction makes kafkajs send InitProducerId: it bumps the epoch, which fences any earlier
    // instance, and returns only once that instance's open transaction is committed or aborted.
    const tx = await this.producer.transaction();
    await tx.abort();
  }

  private async transaction(slices: TopicMessages[][]): Promise<void> {
    const tx = await this.producer.transaction();
    try {
      await this.send(slices, tx);
      await tx.commit();
    } catch (err) {
      await abortQuietly(tx, err);
      throw err;
    }
  }

  /** Each slice as one produce request, in order: into `tx`, or (at-least-once) by the plain producer. */
  private async send(slices: TopicMessages[][], tx: Transaction | null): Promise<void> {
    for (const [i, topicMessages] of slices.entries()) {
      if (tx) await tx.sendBatch({ topicMessages, acks: -1, compression: this.compression });
      else await this.producer.sendBatch({ topicMessages, acks: this.config.acks, compression: this.compression });
      if (i === 0) await pausePoint('kafka-transaction');
    }
  }

  /** A commit written in parts failed: its transaction is given up and the sink fails for good (see writePart). */
  private async failPart(err: unknown): Promise<SinkError> {
    const tx = this.partTransaction;
    this.partTransaction = null;
    if (tx) await abortQuietly(tx, err);
    const e = new SinkError(
      `${this.explain(err).message} (while a large source transaction was being written in parts; tidemark stops and its restart writes that transaction again)`,
      { cause: err },
    );
    this.failure = e;
    return e;
  }

  /** The records' produce requests, the offsets record of a commit added after them by `push`. */
  private slices(records: OutputRecord[]): SliceBuilder {
    const b = new SliceBuilder();
    for (const r of records) {
      // Bytes, not string length: the broker's limit is in bytes, and non-Latin text is up to 3 bytes a UTF-16 unit.
      const size = Buffer.byteLength(r.key) + (r.value === null ? 0 : Buffer.byteLength(r.value));
      if (size > this.config.maxRecordBytes) {
        const dead = this.tooLarge(r, size);
        b.deadLetters.push({ table: dead.table, reason: 'too-large' });
        b.push(this.deadLetterTopic, { key: r.key, value: dead.value }, Buffer.byteLength(r.key) + Buffer.byteLength(dead.value));
        continue;
      }
      b.push(this.topicOf(r.topic), { key: r.key, value: r.value }, size);
    }
    return b;
  }

  /** Connects, creates the offsets topic, and (exactly-once) fences earlier instances: once, before anything else. */
  private start(): Promise<void> {
    this.started ??= (async () => {
      await checkKafkaCompression(this.config.compression);
      try {
        await this.admin.connect();
        await this.producer.connect();
      } catch (err) {
        throw new SinkError(`cannot connect to Kafka at sink.brokers (${this.brokers}): ${messageOf(err)}`, { cause: err });
      }
      if (!this.config.exactlyOnce) return;
      try {
        await this.ensureTopics([this.offsetsTopic]);
        await this.fence();
      } catch (err) {
        throw this.explain(err);
      }
    })();
    return this.started;
  }

  private async lastCommitted(): Promise<number> {
    this.committed ??= await pRetry(() => this.readOffsets(), {
      ...COMMIT_BACKOFF,
      forever: true,
      maxRetryTime: READ_OFFSETS_RETRY_WINDOW_MS,
      shouldRetry: isTransient,
      onFailedAttempt: (err) => {
        if (isTransient(err)) this.logger.warn({ attempt: err.attemptNumber, error: messageOf(err) }, `kafka: reading ${this.offsetsTopic} failed; retrying`);
      },
    }).catch((err: unknown) => {
      throw err instanceof SinkError ? err : this.explain(err);
    });
    return this.committed;
  }

  /**
   * The highest commit number among this connector's offset records, read read_committed backwards from the
   * last stable offset in growing windows: its newest record holds the highest, so a start reads a few hundred
   * records, not all the topic kept since it was last compacted. After start() no transaction of this connector
   * is open, so that offset lies after its last commit (an open transaction of a connector sharing the topic
   * prefix can hold it back: the answer is then too low, which sends a batch again, never loses one).
   */
  private async readOffsets(): Promise<number> {
    const [end] = await this.admin.fetchTopicOffsets(this.offsetsTopic);
    if (!end) return 0;
    const low = BigInt(end.low);
    let to = BigInt(end.offset) - 1n;
    for (let window = 1000n; to >= low; window *= 4n) {
      const from = to - window + 1n > low ? to - window + 1n : low;
      const highest = await this.readOffsetRange(from, to);
      if (highest > 0) return highest;
      to = from - 1n;
    }
    return 0;
  }

  /** The highest commit number of this connector's offset records from offset `from` to `to`, read_committed. */
  private async readOffsetRange(from: bigint, to: bigint): Promise<number> {
    const groupId = `${this.transactionalId}-offsets-${randomUUID()}`;
    const consumer = this.kafka.consumer({ groupId, readUncommitted: false, allowAutoTopicCreation: false, retry: SEND_RETRY });
    let highest = 0;
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: this.offsetsTopic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new SinkError(`reading ${this.offsetsTopic} from offset ${from} to ${to} took over ${READ_OFFSETS_TIMEOUT_MS / 1000} s`)),
          READ_OFFSETS_TIMEOUT_MS,
        );
        const done = (err?: unknown): void => {
          clearTimeout(timer);
          if (err === undefined) resolve();
          else reject(err instanceof Error ? err : new Error(String(err)));
        };
        // Emitted for batches of only control records or aborted records too, so the end is seen whatever lies there.
        consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
          if (BigInt(payload.lastOffset) >= to) done();
        });
        consumer.on(consumer.events.CRASH, ({ payload }) => {
          if (!payload.restart) done(payload.error);
        });
        const running = consumer.run({
          autoCommit: false,
          eachMessage: async ({ message }) => {
            const offset = BigInt(message.offset);
            if (offset < from || offset > to || message.key?.toString() !== this.name || !message.value) return;
            const state = Number((JSON.parse(message.value.toString()) as { state?: unknown }).state);
            if (Number.isSafeInteger(state) && state > highest) highest = state;
          },
        });
        // Seeking before run() has joined the group makes the first fetch start there (as kafkajs's own admin.setOffsets does).
        consumer.seek({ topic: this.offsetsTopic, partition: 0, offset: String(from) });
        running.catch(done);
      });
    } finally {
      await consumer.disconnect().catch(() => {});
      await this.admin.deleteGroups([groupId]).catch(() => {});
    }
    return highest;
  }

  /** Creates the topics that do not exist yet (the offsets topic compacted, one partition). */
  private async ensureTopics(topics: string[]): Promise<void> {
    let missing = topics.filter((t) => !this.existingTopics.has(t));
    if (missing.length === 0) return;
    if (!this.topicsListed) {
      for (const t of await this.admin.listTopics()) this.existingTopics.add(t);
      this.topicsListed = true;
      missing = missing.filter((t) => !this.existingTopics.has(t));
    }
    if (missing.length > 0) {
      const { partitions, replicationFactor } = this.config.topic;
      await this.admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) =>
          topic === this.offsetsTopic
            ? { topic, numPartitions: 1, replicationFactor, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }
            : { topic, numPartitions: partitions, replicationFactor },
        ),
      });
    }
    for (const t of missing) this.existingTopics.add(t);
  }

  private get deadLetterTopic(): string {
    return `${this.topicPrefix}.tidemark.dead`;
  }

  /**
   * A record the broker would refuse for its size alone: with errors.mode fail the run stops and names it (the
   * checkpoint is untouched: nothing of the batch was begun); with dead-letter, a dead letter takes its place.
   */
  private tooLarge(r: OutputRecord, size: number): { table: string; value: string } {
    const source =
      r.value === null
        ? undefined
        : (JSON.parse(r.value) as { source?: { db: string; table: string; file: string; pos: number; gtid: string | null; row: number; snapshot: boolean } })
            .source;
    const db = source?.db ?? '';
    const table = source?.table ?? '';
    const where = source ? `${db}.${table} with key ${r.key} at ${source.file}:${source.pos}` : `on ${r.topic} with key ${r.key}`;
    const error = `the record of ${where} is ${size} bytes, over sink.maxRecordBytes (${this.config.maxRecordBytes})`;
    if (this.errors === 'fail') {
      throw new SinkError(
        `${error}, which Kafka refuses. Raise sink.maxRecordBytes together with the broker's message.max.bytes (or the topic's max.message.bytes), ` +
          'or set errors.mode: dead-letter to write such records to the dead letters and go on.',
      );
    }
    const position = source
      ? { file: source.file, pos: source.pos, gtid: source.gtid, row: source.row, snapshot: source.snapshot }
      : { file: '', pos: 0, gtid: null, row: 0, snapshot: false };
    const value = deadLetterJson({ connector: this.name, db, table, key: r.key, position, reason: 'too-large', error, row: null, tsMs: Date.now() });
    return { table: `${db}.${table}`, value };
  }

  /**
   * `<name>.<db>.<table>` → `<topicPrefix>.<db>.<table>`, and the schema change topic `<name>` → `<topicPrefix>`
   * (Debezium's naming), with characters Kafka refuses in a topic name replaced by `_`.
   */
  private topicOf(recordTopic: string): string {
    let topic = this.topicNames.get(recordTopic);
    if (topic === undefined) {
      if (recordTopic !== this.name && !recordTopic.startsWith(`${this.name}.`)) {
        throw new Error(`record topic ${recordTopic} does not start with the connector name ${this.name}`);
      }
      topic = (this.topicPrefix + recordTopic.slice(this.name.length)).replace(/[^a-zA-Z0-9._-]/g, '_');
      this.topicNames.set(recordTopic, topic);
    }
    return topic;
  }

  private explain(err: unknown, retried?: { attempts: number; ms: number }): SinkError {
    if (err instanceof SinkError) return err;
    if (isFenced(err)) {
      return new SinkError(
        `Kafka fenced this producer (transactional id ${this.transactionalId}): another tidemark instance with the connector name ${this.name} took over, ` +
          `or a transaction ran longer than sink.transactionTimeoutMs (${this.config.transactionTimeoutMs} ms) and the broker aborted it. Stopping; nothing was committed twice.`,
        { cause: err },
      );
    }
    if (isTransient(err)) {
      const gaveUp = retried ? ` (gave up after ${retried.attempts} attempts over ${Math.round(retried.ms / 1000)} s)` : '';
      return new SinkError(
        `Kafka at sink.brokers (${this.brokers}) is unavailable: ${messageOf(err)}${gaveUp}. ` +
          'Nothing was committed twice; once Kafka is reachable, restart tidemark and it resumes after the last committed transaction.',
        { cause: err },
      );
    }
    return new SinkError(`Kafka commit failed: ${messageOf(err)}`, { cause: err });
  }
}

function toTopicMessages(slice: Map<string, Message[]>): TopicMessages[] {
  return [...slice].map(([topic, messages]) => ({ topic, messages }));
}

/** Messages cut into produce requests of at most SLICE_BYTES, in order, with the topics they name. */
class SliceBuilder {
  readonly topics = new Set<string>();
  readonly deadLetters: DeadLetterCount[] = [];
  private readonly slices: TopicMessages[][] = [];
  private slice = new Map<string, Message[]>();
  private bytes = 0;

  push(topic: string, message: Message, size: number): void {
    if (this.bytes > 0 && this.bytes + size > SLICE_BYTES) {
      this.slices.push(toTopicMessages(this.slice));
      this.slice = new Map();
      this.bytes = 0;
    }
    this.topics.add(topic);
    const list = this.slice.get(topic);
    if (list) list.push(message);
    else this.slice.set(topic, [message]);
    this.bytes += size;
  }

  done(): TopicMessages[][] {
    if (this.slice.size > 0) this.slices.push(toTopicMessages(this.slice));
    this.slice = new Map();
    this.bytes = 0;
    return this.slices;
  }
}

/** After a failed EndTxn kafkajs allows no abort and the outcome is unknown: the next producer's fencing settles it. */
async function abortQuietly(tx: Transaction, err: unknown): Promise<void> {
  if (tx.isActive() && !isFenced(err)) await withTimeout(tx.abort(), ABORT_TIMEOUT_MS, 'kafka transaction abort').catch(() => {});
}
