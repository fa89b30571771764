import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { describe, expect, inject, it } from 'vitest';
import type { OutputRecord } from '../../src/events/event.js';
import { KafkaSink, type KafkaSinkConfig } from '../../src/sink/kafka.js';
import { checkConsistency, type Envelope, formatReport } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { asOutputLines, dataTopics, privateBroker, readCommitted, type TopicMessage, watch } from '../support/kafka.js';
import { runTidemark, sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter } from '../support/workload.js';

const TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 5_000 },
  { table: 'events', key: 'sparse-int', rows: 3_000 },
  { table: 'customers', key: 'string', rows: 2_000 },
  { table: 'lines', key: 'composite', rows: 2_000 },
];
const writerTables = TABLES.map((t) => ({ table: t.table, key: t.key }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Setup {
  db: string;
  conn: mysql.Connection;
  dir: string;
  name: string;
  /** Topic prefix, unlike the name, so the sink's renaming of `<name>.<db>.<table>` is exercised. */
  prefix: string;
  brokers: string;
  config: string;
}

interface SetupOptions {
  brokers?: string;
  partitions?: number;
  commit?: { maxRecords: number; maxDelayMs: number };
  /** Creates the captured tables instead of the workload tables. */
  create?: (conn: mysql.Connection, db: string) => Promise<void>;
  checkpoint?: string;
}

async function setup(flavour: Flavour, serverId: number, opts: SetupOptions = {}): Promise<Setup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'kafka');
  if (opts.create) await opts.create(conn, db);
  else {
    for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
    await conn.query(`ANALYZE TABLE ${TABLES.map((t) => `\`${db}\`.\`${t.table}\``).join(', ')}`);
  }
  const dir = tempDir();
  const name = `kafka-${randomBytes(4).toString('hex')}`;
  const prefix = `${name}-out`;
  const brokers = opts.brokers ?? inject('kafkaBrokers');
  const config = writeConfig(dir, configFor({ flavour, serverId, db, dir, name, prefix, brokers, opts }));
  return { db, conn, dir, name, prefix, brokers, config };
}

function configFor(s: {
  flavour: Flavour;
  serverId: number;
  db: string;
  dir: string;
  name: string;
  prefix: string;
  brokers: string;
  opts: SetupOptions;
}): Record<string, unknown> {
  return {
    name: s.name,
    source: { ...sourceFromUrl(urlOf(s.flavour)), serverId: s.serverId, tables: [`${s.db}.*`] },
    snapshot: { mode: 'initial', chunkSize: 200, parallelism: 2 },
    checkpoint: { path: join(s.dir, s.opts.checkpoint ?? 'checkpoint.sqlite') },
    sink: { type: 'kafka', brokers: s.brokers.split(','), topicPrefix: s.prefix, topic: { partitions: s.opts.partitions ?? 1 } },
    commit: s.opts.commit ?? { maxRecords: 2000, maxDelayMs: 200 },
  };
}

/** The read_committed view of every data topic passes the consistency check of ARCHITECTURE §7. */
async function expectConsistent(s: Setup): Promise<TopicMessage[]> {
  const topics = await dataTopics(s.brokers, s.prefix);
  expect(topics).toEqual(TABLES.map((t) => `${s.prefix}.${s.db}.${t.table}`).sort());
  const messages = await readCommitted(s.brokers, topics);
  const { source, keyColumns } = await sourceState(s.conn, s.db, TABLES);
  const report = checkConsistency(asOutputLines(messages), source, { keyColumns, allowUnpairedMoves: true });
  expect(report.ok, formatReport(report)).toBe(true);
  expect(report.counts.events.r).toBeGreaterThanOrEqual(TABLES.reduce((n, t) => n + t.rows, 0) - 2000);
  return messages;
}

async function finish(s: Setup): Promise<void> {
  const done = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
  expect(done.code, done.stderr).toBe(0);
}

/** Resolves when the offsets topic has one more commit than it had when this was called. */
function nextCommit(offsets: { messages: TopicMessage[] }, p: TidemarkProcess, timeoutMs = 30_000): Promise<void> {
  const seen = offsets.messages.length;
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    while (offsets.messages.length <= seen) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`tidemark exited; stderr:\n${p.stderr.slice(-3000)}`);
      if (Date.now() > deadline) throw new Error('no commit within the timeout');
      await sleep(5);
    }
  })();
}

describe('KafkaSink against the broker', () => {
  const sinkConfig = (prefix: string): KafkaSinkConfig => ({
    type: 'kafka',
    brokers: inject('kafkaBrokers').split(','),
    topicPrefix: prefix,
    exactlyOnce: true,
    transactionTimeoutMs: 60_000,
    tombstones: true,
    schemaChanges: true,
    acks: -1,
    compression: 'gzip',
    maxRecordBytes: 1_000_000,
    topic: { partitions: 1, replicationFactor: 1 },
  });

  it('answers holds from the read_committed offsets topic, after settling a transaction left open', async () => {
    const name = `sink-${randomBytes(4).toString('hex')}`;
    const config = sinkConfig(name);
    const record = (id: number): OutputRecord => ({ topic: `${name}.db.t`, key: JSON.stringify({ id }), value: JSON.stringify({ op: 'c', after: { id } }) });
    const first = new KafkaSink(name, config);
    try {
      expect(await first.holds('1')).toBe(false);
      await first.open(undefined);
      for (const seq of [1, 2]) {
        const batch = first.prepare([record(seq)], seq);
        expect(batch.state).toBe(String(seq));
        await first.commit(batch);
      }
      // Nothing to send: holds trivially, no transaction.
      expect(first.prepare([], 3).state).toBe('2');
    } finally {
      await first.close();
    }

    // A process killed mid-commit leaves an open transaction holding its offset record.
    const kafka = new Kafka({ brokers: config.brokers, logLevel: logLevel.NOTHING });
    const zombie = kafka.producer({ transactionalId: `tidemark-${name}`, idempotent: true, maxInFlightRequests: 1 });
    await zombie.connect();
    const tx = await zombie.transaction();
    await tx.send({ topic: `${name}.tidemark.offsets`, messages: [{ key: name, value: JSON.stringify({ seq: 3, state: '3' }) }] });

    const second = new KafkaSink(name, config);
    try {
      expect(await second.holds('3')).toBe(false);
      expect(await second.holds('2')).toBe(true);
      await expect(second.open('5')).rejects.toThrow(/holds commits up to 2 .* but the checkpoint says 5 were committed/);
      await second.open('2');
      await second.commit(second.prepare([record(3)], 3));
      // The zombie was fenced by the second sink's start.
      await expect(tx.commit()).rejects.toThrow();
    } finally {
      await second.close();
      await zombie.disconnect();
    }

    // A fresh checkpoint (tidemark reset) keeps counting after what Kafka holds, so an old offset record cannot vouch for it.
    const third = new KafkaSink(name, config);
    try {
      expect(await third.holds('4')).toBe(false);
      await third.open(undefined);
      expect(third.prepare([record(1)], 1).state).toBe('4');
    } finally {
      await third.close();
    }

    const messages = await readCommitted(config.brokers.join(','), [`${name}.db.t`]);
    expect(messages.map((m) => [m.key, m.value])).toEqual([1, 2, 3].map((id) => [JSON.stringify({ id }), JSON.stringify({ op: 'c', after: { id } })]));
  });

  it('at least once: no transactions, no offsets topic, holds nothing', async () => {
    const name = `sink-${randomBytes(4).toString('hex')}`;
    const sink = new KafkaSink(name, { ...sinkConfig(name), exactlyOnce: false, acks: 1 });
    try {
      expect(sink.guarantee).toBe('at-least-once');
      await sink.open(undefined);
      const batch = sink.prepare(
        [
          { topic: `${name}.db.t`, key: '{"id":1}', value: '{"op":"c"}' },
          { topic: `${name}.db.t`, key: '{"id":1}', value: null },
        ],
        1,
      );
      expect(batch.state).toBe('');
      await sink.commit(batch);
      expect(await sink.holds(batch.state)).toBe(false);
    } finally {
      await sink.close();
    }
    const admin = new Kafka({ brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    expect((await admin.listTopics()).filter((t) => t.startsWith(`${name}.`))).toEqual([`${name}.db.t`]);
    await admin.disconnect();
    const messages = await readCommitted(inject('kafkaBrokers'), [`${name}.db.t`]);
    expect(messages.map((m) => [m.key, m.value])).toEqual([
      ['{"id":1}', '{"op":"c"}'],
      ['{"id":1}', null],
    ]);
  });

  it('cuts produce requests by bytes, not characters: a batch of CJK text stays under message.max.bytes', async () => {
    const name = `sink-${randomBytes(4).toString('hex')}`;
    const sink = new KafkaSink(name, { ...sinkConfig(name), compression: 'none' });
    // 8192 rows of 200 three-byte characters: 1.6M UTF-16 units but 4.9 MB of UTF-8, past the broker's 1 MiB per batch
    // when the slices are measured in units.
    const cjk = (id: number) => Array.from({ length: 200 }, (_, i) => String.fromCharCode(0x4e00 + ((id * 7919 + i * 104729) % 20000))).join('');
    const records = Array.from(
      { length: 8192 },
      (_, id): OutputRecord => ({ topic: `${name}.db.t`, key: JSON.stringify({ id }), value: JSON.stringify({ text: cjk(id) }) }),
    );
    try {
      await sink.open(undefined);
      await sink.commit(sink.prepare(records, 1));
    } finally {
      await sink.close();
    }
    const messages = await readCommitted(inject('kafkaBrokers'), [`${name}.db.t`]);
    expect(messages).toHaveLength(8192);
    expect(messages[8191]!.value).toBe(records[8191]!.value);
  });

  it('refuses a record whose topic does not start with the connector name', () => {
    const sink = new KafkaSink('n', sinkConfig(`sink-${randomBytes(4).toString('hex')}`));
    expect(() => sink.prepare([{ topic: 'other.db.t', key: '{"id":1}', value: null }], 1)).toThrow(/does not start with the connector name n/);
  });
});

describe.each(FLAVOURS)('kafka sink on %s', (flavour) => {
  it('a read_committed consumer sees every change once under a concurrent writer, snapshot and stream', async () => {
    const s = await setup(flavour, flavour === 'mysql' ? 7600 : 7610, { partitions: 3 });
    const writer = startWriter(urlOf(flavour), s.db, writerTables, { tps: 300, seed: 21 });
    // Each chunk read is stretched so the writer's changes land between watermarks and SELECTs.
    const sync = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CHUNK_DELAY_MS: '25' });
    await sync.waitForLog((l) => l.msg === 'snapshot complete');
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(2000);
    const stats = await writer.stop();
    expect(stats.updates).toBeGreaterThan(100);
    expect(stats.keyChanges).toBeGreaterThan(0);
    expect(stats.transactions).toBeGreaterThan(0);
    expect((await sync.kill('SIGTERM')).code, sync.stderr).toBe(0);
    expect(sync.stdout).toBe('');
    await finish(s);
    const messages = await expectConsistent(s);
    // Three partitions per topic: a key's changes must all be in one of them for its order to hold.
    const partitionsOfKey = new Map<string, Set<number>>();
    for (const m of messages) partitionsOfKey.set(`${m.topic} ${m.key}`, (partitionsOfKey.get(`${m.topic} ${m.key}`) ?? new Set()).add(m.partition));
    expect([...partitionsOfKey.values()].every((p) => p.size === 1)).toBe(true);
    expect(new Set(messages.map((m) => m.partition)).size).toBe(3);
    await s.conn.end();
  });
});

describe('kafka sink on mysql', () => {
  it('survives SIGKILL inside a chunk, right after a chunk commit, mid-batch before a commit, right after a streaming commit', async () => {
    const s = await setup('mysql', 7620, { partitions: 3, commit: { maxRecords: 2000, maxDelayMs: 400 } });
    const writer = startWriter(urlOf('mysql'), s.db, writerTables, { tps: 300, seed: 23 });
    let offsets: Awaited<ReturnType<typeof watch>> | undefined;
    // Each offset record that becomes visible read_committed is a commit that just happened.
    const commits = async (): Promise<{ messages: TopicMessage[] }> =>
      (offsets ??= await watch(s.brokers, [`${s.prefix}.tidemark.offsets`], { readUncommitted: false, onlyNew: true }));
    const killAt: { name: string; when: (p: TidemarkProcess) => Promise<void> }[] = [
      // A chunk read starts right after the previous one commits; 30 ms in, one is in flight.
      {
        name: 'inside a chunk',
        when: async (p) => {
          await p.waitForLog((l) => l.msg === 'chunk done');
          await sleep(30);
        },
      },
      { name: 'right after a chunk commit', when: (p) => p.waitForLog(() => p.count('chunk done') >= 5) },
      // Streaming commits every 400 ms: 200 ms after one, the next batch is half gathered.
      {
        name: 'mid-batch before a commit',
        when: async (p) => {
          await p.waitForLog((l) => l.msg === 'streaming');
          await nextCommit(await commits(), p);
          await sleep(200);
        },
      },
      {
        name: 'right after a streaming commit',
        when: async (p) => {
          await p.waitForLog((l) => l.msg === 'streaming');
          await nextCommit(await commits(), p);
        },
      },
    ];
    try {
      for (const k of killAt) {
        const p = tidemark(['sync', '-c', s.config]);
        await k.when(p);
        const exit = await p.kill('SIGKILL');
        expect(exit.signal, `${k.name}: ${p.stderr.slice(-2000)}`).toBe('SIGKILL');
      }
    } finally {
      await offsets?.stop();
    }
    await writer.stop();
    await finish(s);
    await expectConsistent(s);
    await s.conn.end();
  });

  it('never shows a multi-statement transaction half done to a read_committed consumer, even when killed mid-commit', async () => {
    const ROWS = 20;
    const BODY = 400_000;
    const s = await setup('mysql', 7630, {
      // Fewer records per commit than the transaction has: the connector must still not split it.
      commit: { maxRecords: 5, maxDelayMs: 200 },
      create: async (conn, db) => {
        for (const t of ['a', 'b']) {
          await conn.query(`CREATE TABLE \`${db}\`.${t} (id INT PRIMARY KEY, version INT NOT NULL, body MEDIUMTEXT NOT NULL)`);
          await conn.query(`INSERT INTO \`${db}\`.${t} (id, version, body) VALUES (1, 1, 'seed'), (2, 1, 'seed')`);
        }
      },
    });
    const topics = ['a', 'b'].map((t) => `${s.prefix}.${s.db}.${t}`);
    const isOurs = (m: TopicMessage): boolean =>
      m.value !== null && (JSON.parse(m.value) as Envelope).after?.id !== undefined && Number((JSON.parse(m.value) as Envelope).after!.id) >= 1000;

    const first = tidemark(['sync', '-c', s.config]);
    await first.waitForLog((l) => l.msg === 'streaming');
    // Each record is about 400 kB, so the sink sends the transaction's 40 in about as many requests: the
    // first one read uncommitted means the Kafka transaction is open with more to come, and it is killed then.
    let killed: Promise<unknown> | undefined;
    const uncommitted = await watch(s.brokers, topics, {
      readUncommitted: true,
      onMessage: (m) => {
        if (isOurs(m)) killed ??= first.kill('SIGKILL');
      },
    });
    const committed = await watch(s.brokers, topics, { readUncommitted: false });
    try {
      const body = 'x'.repeat(BODY);
      await s.conn.query('BEGIN');
      for (let i = 0; i < ROWS; i++) {
        for (const t of ['a', 'b']) await s.conn.query(`INSERT INTO \`${s.db}\`.${t} (id, version, body) VALUES (?, 1, ?)`, [1000 + i, body]);
      }
      await s.conn.query('COMMIT');
      const deadline = Date.now() + 30_000;
      while (!killed && Date.now() < deadline) await sleep(10);
      expect(killed, `the transaction never reached Kafka; stderr:\n${first.stderr.slice(-2000)}`).toBeDefined();
      expect((await first.exited).signal).toBe('SIGKILL');
      const partial = uncommitted.messages.filter(isOurs).length;
      expect(partial).toBeGreaterThan(0);
      // The killed transaction stays open until the next start fences it: read_committed sees none of it.
      await sleep(1000);
      expect(committed.messages.filter(isOurs)).toEqual([]);
      expect((await readCommitted(s.brokers, topics)).filter(isOurs)).toEqual([]);

      await finish(s);
      const after = (await readCommitted(s.brokers, topics)).filter(isOurs);
      const ids = (topic: string) => after.filter((m) => m.topic === topic).map((m) => Number((JSON.parse(m.value!) as Envelope).after!.id));
      const expected = Array.from({ length: ROWS }, (_, i) => 1000 + i);
      expect(ids(topics[0]!)).toEqual(expected);
      expect(ids(topics[1]!)).toEqual(expected);
      const gtids = new Set(after.map((m) => (JSON.parse(m.value!) as Envelope).source.gtid));
      expect(gtids.size).toBe(1);
      expect([...gtids][0]).toMatch(/^[0-9a-f-]{36}:\d+$/);
      // The live read_committed consumer got the transaction whole, and the aborted first attempt is in the log.
      await waitFor(() => committed.messages.filter(isOurs).length >= 2 * ROWS, 'the live read_committed consumer to see the transaction');
      expect(committed.messages.filter(isOurs)).toHaveLength(2 * ROWS);
      await waitFor(() => uncommitted.messages.filter(isOurs).length >= partial + 2 * ROWS, 'the read_uncommitted consumer to see the retry');
    } finally {
      await uncommitted.stop();
      await committed.stop();
    }
    await s.conn.end();
  });

  it('rides out a broker outage mid-stream without loss or duplicate', async (ctx) => {
    const broker = await privateBroker();
    if (!broker) return ctx.skip('needs the local test servers (a private broker is stopped and started)');
    try {
      const s = await setup('mysql', 7640, { brokers: broker.brokers, partitions: 3 });
      const writer = startWriter(urlOf('mysql'), s.db, writerTables, { tps: 300, seed: 29 });
      const sync = tidemark(['sync', '-c', s.config]);
      await sync.waitForLog((l) => l.msg === 'streaming');
      await sleep(1000);
      // Longer than kafkajs's own retries last, so the sink's retry of whole commits on a new producer is needed too.
      await broker.down();
      await sleep(30_000);
      await broker.up();
      await sleep(5000);
      const stats = await writer.stop();
      expect(stats.updates).toBeGreaterThan(1000);
      expect(sync.child.exitCode, sync.stderr.slice(-3000)).toBeNull();
      // The outage was noticed (commits were due while the broker was down), and ridden out.
      expect(sync.stderr).toContain('ECONNREFUSED');
      expect(sync.stderr).toContain('kafka: commit failed; retrying on a new producer');
      expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-3000)).toBe(0);
      await finish(s);
      await expectConsistent(s);
      await s.conn.end();
    } finally {
      await broker.remove();
    }
  });

  it('stops with a clear error when the brokers cannot be reached, and when another instance takes over', async () => {
    const s = await setup('mysql', 7650, {
      create: (conn, db) => createWorkloadTable(conn, db, 'orders', { rows: 500, key: 'int' }),
    });
    const unreachable = writeConfig(
      s.dir,
      configFor({ flavour: 'mysql', serverId: 7650, db: s.db, dir: s.dir, name: s.name, prefix: s.prefix, brokers: '127.0.0.1:9', opts: {} }),
      'unreachable.yaml',
    );
    const refused = await runTidemark(['sync', '-c', unreachable]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('cannot connect to Kafka at sink.brokers (127.0.0.1:9): Connection error: connect ECONNREFUSED');

    const writer = startWriter(urlOf('mysql'), s.db, [{ table: 'orders', key: 'int' }], { tps: 100, seed: 31 });
    try {
      const old = tidemark(['sync', '-c', s.config]);
      await old.waitForLog((l) => l.msg === 'streaming');
      // Same connector name, so the same transactional id; its own checkpoint, as a replacement host would have.
      const replacement = writeConfig(
        s.dir,
        configFor({
          flavour: 'mysql',
          serverId: 7655,
          db: s.db,
          dir: s.dir,
          name: s.name,
          prefix: s.prefix,
          brokers: s.brokers,
          opts: { checkpoint: 'other.sqlite' },
        }),
        'replacement.yaml',
      );
      const next = tidemark(['sync', '-c', replacement]);
      const exit = await Promise.race([old.exited, sleep(30_000).then(() => ({ code: 'still running' }))]);
      expect(exit.code, old.stderr.slice(-3000)).toBe(1);
      expect(old.stderr).toMatch(/another tidemark instance with the connector name \S+ (took over|committed)/);
      await next.waitForLog((l) => l.msg === 'streaming');
      expect((await next.kill('SIGTERM')).code, next.stderr.slice(-3000)).toBe(0);
    } finally {
      await writer.stop();
    }
    await s.conn.end();
  });

  it('stops with the error when a commit fails and no further change comes to trigger another', async () => {
    const s = await setup('mysql', 7660, {
      create: (conn, db) => createWorkloadTable(conn, db, 'orders', { rows: 50, key: 'int' }),
    });
    const old = tidemark(['sync', '-c', s.config]);
    await old.waitForLog((l) => l.msg === 'streaming');
    // The replacement's producer fences the old one; the old one learns it only when it next commits.
    const replacement = writeConfig(
      s.dir,
      configFor({
        flavour: 'mysql',
        serverId: 7665,
        db: s.db,
        dir: s.dir,
        name: s.name,
        prefix: s.prefix,
        brokers: s.brokers,
        opts: { checkpoint: 'other.sqlite' },
      }),
      'replacement.yaml',
    );
    const next = tidemark(['sync', '-c', replacement]);
    await next.waitForLog((l) => l.msg === 'streaming');
    await s.conn.query(`INSERT INTO \`${s.db}\`.orders (id, version, payload, amount) VALUES (1000001, 1, 'last', 1.00)`);
    const exit = await Promise.race([old.exited, sleep(20_000).then(() => ({ code: 'still running' }))]);
    expect(exit.code, old.stderr.slice(-3000)).toBe(1);
    expect(old.stderr).toMatch(/another tidemark instance with the connector name \S+ (took over|committed)/);
    expect((await next.kill('SIGTERM')).code, next.stderr.slice(-3000)).toBe(0);
    await s.conn.end();
  });
});

async function waitFor(test: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
