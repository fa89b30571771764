/**
 * One source transaction far larger than a commit (a bulk UPDATE of every row), delivered exactly once and whole to
 * jsonl, Kafka (read_committed) and stdout, with the process's peak RSS bounded (issue 16 item 3). The reader spools
 * the transaction to disk until its commit; the sink gets it in parts ahead of one commit.
 *
 * `npm test` runs it with 120,000 rows (the transaction goes to the sink in parts, and a kill -9 after the first part
 * leaves nothing visible); `npm run test:big` with TIDEMARK_BIG_TX_ROWS=2000000, the size the issue names.
 */

import { randomBytes } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Kafka, logLevel } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { describe, expect, inject, it } from 'vitest';
import type { Envelope } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../support/tidemark.js';

const ROWS = Number(process.env.TIDEMARK_BIG_TX_ROWS ?? 120_000);
const RSS_LIMIT_MB = 400;
const RUN_MS = Math.max(170_000, ROWS / 8);
const TEST_MS = 4 * RUN_MS;

interface Setup {
  db: string;
  conn: mysql.Connection;
  dir: string;
  name: string;
}

/** A table of ROWS rows, filled before tidemark's first start: the sync streams from then on (snapshot.mode never). */
async function setup(flavour: Flavour): Promise<Setup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'bigtx');
  await conn.query(`CREATE TABLE \`${db}\`.big (id INT PRIMARY KEY, n INT NOT NULL, note VARCHAR(40) NOT NULL)`);
  await conn.query(`INSERT INTO \`${db}\`.big VALUES (1, 0, 'a row of the bulk update')`);
  for (let have = 1; have < ROWS; have *= 2) {
    await conn.query(`INSERT INTO \`${db}\`.big SELECT id + ?, 0, note FROM \`${db}\`.big WHERE id + ? <= ?`, [have, have, ROWS]);
  }
  return { db, conn, dir: tempDir('tidemark-bigtx-'), name: `big-${randomBytes(4).toString('hex')}` };
}

function config(s: Setup, flavour: Flavour, serverId: number, sink: Record<string, unknown>): string {
  return writeConfig(
    s.dir,
    {
      name: s.name,
      source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${s.db}.big`] },
      snapshot: { mode: 'never' },
      checkpoint: { path: join(s.dir, `${String(sink.type)}.sqlite`) },
      sink,
      commit: { maxRecords: 5000, maxDelayMs: 200 },
    },
    `${String(sink.type)}.yaml`,
  );
}

/** Starts the sync once, so its checkpoint holds the position before the transactions; stops it. */
async function startBefore(configPath: string): Promise<void> {
  const p = tidemark(['sync', '-c', configPath]);
  await p.waitForLog((l) => l.msg === 'streaming');
  expect((await p.kill('SIGTERM')).code, p.stderr.slice(-2000)).toBe(0);
}

/** A small transaction, the bulk one, a small one: `c` of ROWS + 1, `u` of every row, `d` of row 1. */
async function writeTransactions(s: Setup): Promise<void> {
  await s.conn.query(`INSERT INTO \`${s.db}\`.big VALUES (?, 0, 'after')`, [ROWS + 1]);
  await s.conn.query(`UPDATE \`${s.db}\`.big SET n = n + 1 WHERE id <= ?`, [ROWS]);
  await s.conn.query(`DELETE FROM \`${s.db}\`.big WHERE id = 1`);
}

/**
 * Checks the output event by event without keeping it (two million events do not fit in a test's memory as text):
 * the first small transaction, then every row's update once and nothing else, all from one source transaction, then
 * the second small one (a delete, with its tombstone).
 */
class OutputCheck {
  private index = 0;
  private readonly seen = new Uint8Array(ROWS + 1);
  private bulkAt: string | undefined;
  readonly problems: string[] = [];

  add(e: Envelope | null): void {
    const i = this.index++;
    // The delete's tombstone follows it (sink.tombstones, on by default).
    if (e === null || i === ROWS + 2) {
      if (e !== null || i !== ROWS + 2) this.problem(`event ${i} is ${e === null ? 'a tombstone' : `${e.op}, not the tombstone of the delete`}`);
      return;
    }
    const id = Number((e.after ?? e.before)?.id);
    const at = `${e.source.file}:${e.source.pos}`;
    if (i === 0) {
      if (e.op !== 'c' || id !== ROWS + 1) this.problem(`event 0 is ${e.op} of ${id}, not c of ${ROWS + 1}`);
    } else if (i <= ROWS) {
      this.bulkAt ??= at;
      if (e.op !== 'u' || at !== this.bulkAt || Number(e.after?.n) !== 1 || !(id >= 1 && id <= ROWS) || this.seen[id]) {
        this.problem(`event ${i}: ${e.op} of ${id} (n=${String(e.after?.n)}) at ${at}, not the one update of a new row in the transaction at ${this.bulkAt}`);
      } else this.seen[id] = 1;
    } else if (i === ROWS + 1) {
      if (e.op !== 'd' || id !== 1) this.problem(`event ${i} is ${e.op} of ${id}, not d of 1`);
    } else this.problem(`event ${i} is one too many: ${e.op} of ${id}`);
  }

  get count(): number {
    return this.index;
  }

  /** Every event came, once. */
  expectComplete(): void {
    expect(this.problems.slice(0, 10)).toEqual([]);
    expect(this.index).toBe(ROWS + 3);
  }

  private problem(p: string): void {
    if (this.problems.length < 100) this.problems.push(p);
  }
}

async function checkLines(path: string): Promise<OutputCheck> {
  const check = new OutputCheck();
  for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line !== '') check.add((JSON.parse(line) as { value: Envelope | null }).value);
  }
  return check;
}

/** Reads the topic read_committed from the start until `expected` events came (or the time is up). */
async function checkTopic(brokers: string, topic: string, expected: number, timeoutMs: number): Promise<OutputCheck> {
  const check = new OutputCheck();
  const kafka = new Kafka({ clientId: 'tidemark-test-bigtx', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `tidemark-test-${randomBytes(6).toString('hex')}`, readUncommitted: false, maxBytes: 64 << 20 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    let done: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      done = resolve;
    });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) check.add(m.value ? (JSON.parse(m.value.toString()) as Envelope) : null);
        if (check.count >= expected) done();
      },
    });
    await Promise.race([finished, new Promise((r) => setTimeout(r, timeoutMs))]);
    // What a consumer would see a little later too: nothing after the last event.
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    await consumer.disconnect();
  }
  return check;
}

/** Runs a sync to --until-caught-up, sampling its peak RSS (VmHWM) until it exits. */
async function runMeasured(configPath: string, env: NodeJS.ProcessEnv = {}, stdoutTo?: string): Promise<{ p: TidemarkProcess; peakMb: number }> {
  const wrap = stdoutTo ? (argv: string[]) => ['sh', '-c', `exec "$@" > '${stdoutTo}'`, 'sh', ...argv] : undefined;
  const p = tidemark(['sync', '-c', configPath, '--until-caught-up'], env, wrap);
  let peakKb = 0;
  const sample = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'));
      if (m) peakKb = Math.max(peakKb, Number(m[1]));
    } catch {
      // gone
    }
  };
  const timer = setInterval(sample, 100);
  const killer = setTimeout(() => p.child.kill('SIGKILL'), RUN_MS);
  await p.exited;
  clearInterval(timer);
  clearTimeout(killer);
  return { p, peakMb: Math.round(peakKb / 1024) };
}

describe.each(FLAVOURS)(`a source transaction of ${ROWS} row changes on %s`, (flavour) => {
  const base = flavour === 'mysql' ? 9400 : 9450;

  it(
    'reaches jsonl and stdout whole and once, a kill -9 after its first part written undone by the restart',
    async () => {
      const s = await setup(flavour);
      try {
        const out = join(s.dir, 'out.jsonl');
        const jsonl = config(s, flavour, base, { type: 'jsonl', path: out });
        const stdout = config(s, flavour, base + 5, { type: 'stdout' });
        await startBefore(jsonl);
        await startBefore(stdout);
        await writeTransactions(s);

        const killed = await runMeasured(jsonl, { TIDEMARK_TEST_CRASH_AT: 'transaction-part' });
        expect(killed.p.child.signalCode, killed.p.stderr.slice(-2000)).toBe('SIGKILL');
        const partial = await checkLines(out);
        // What the killed run wrote of the transaction lies beyond the committed length: the restart cuts it.
        expect(partial.count).toBeGreaterThan(1);

        const run = await runMeasured(jsonl);
        expect(run.p.child.exitCode, run.p.stderr.slice(-3000)).toBe(0);
        (await checkLines(out)).expectComplete();
        expect(run.peakMb, 'peak RSS of the jsonl run (MB)').toBeLessThanOrEqual(RSS_LIMIT_MB);

        const piped = join(s.dir, 'stdout.jsonl');
        const toStdout = await runMeasured(stdout, {}, piped);
        expect(toStdout.p.child.exitCode, toStdout.p.stderr.slice(-3000)).toBe(0);
        (await checkLines(piped)).expectComplete();
        expect(toStdout.peakMb, 'peak RSS of the stdout run (MB)').toBeLessThanOrEqual(RSS_LIMIT_MB);
        console.log(`big transaction of ${ROWS} rows on ${flavour}: peak RSS jsonl ${run.peakMb} MB, stdout ${toStdout.peakMb} MB`);
      } finally {
        await s.conn.end();
      }
    },
    TEST_MS,
  );

  it(
    'reaches a read_committed Kafka consumer whole and once, a kill -9 after its first part sent leaving nothing visible',
    async () => {
      const s = await setup(flavour);
      try {
        const brokers = inject('kafkaBrokers');
        const prefix = `${s.name}-out`;
        const kafka = config(s, flavour, base + 10, { type: 'kafka', brokers: brokers.split(','), topicPrefix: prefix, topic: { partitions: 1 } });
        await startBefore(kafka);
        await writeTransactions(s);
        const topic = `${prefix}.${s.db}.big`;

        const killed = await runMeasured(kafka, { TIDEMARK_TEST_CRASH_AT: 'transaction-part' });
        expect(killed.p.child.signalCode, killed.p.stderr.slice(-2000)).toBe('SIGKILL');
        // The killed run's transaction is open until the next start fences it: read_committed sees the first event only.
        expect((await checkTopic(brokers, topic, 2, 5000)).count).toBeLessThanOrEqual(1);

        const run = await runMeasured(kafka);
        expect(run.p.child.exitCode, run.p.stderr.slice(-3000)).toBe(0);
        (await checkTopic(brokers, topic, ROWS + 3, RUN_MS)).expectComplete();
        expect(run.peakMb, 'peak RSS of the Kafka run (MB)').toBeLessThanOrEqual(RSS_LIMIT_MB);
        console.log(`big transaction of ${ROWS} rows on ${flavour}: peak RSS kafka ${run.peakMb} MB`);
      } finally {
        await s.conn.end();
      }
    },
    TEST_MS,
  );
});
