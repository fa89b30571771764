/**
 * The kill -9 soak (issue 12 item 8): per flavour and per sink, a writer runs while `tidemark sync` is
 * started and killed with SIGKILL at a random moment, TIDEMARK_SOAK_CYCLES times (default 50), so kills land
 * in start-up, in chunks, in the snapshot-to-stream hand-off, in streaming and in commits; then one
 * `--until-caught-up` run, and the output must pass the consistency check with no problem at all.
 *
 * TIDEMARK_SOAK_SEED=<n> replays a run's kill times and writes (the seed is printed); the machine's timing
 * still decides what each kill interrupts. TIDEMARK_SOAK_REPORT=<path> also writes the summary there.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { type ConsistencyReport, checkConsistency, formatReport, type OutputLine, readJsonl } from '../../support/consistency.js';
import { type Flavour, freshDatabase, urlOf } from '../../support/db.js';
import { asOutputLines, dataTopics, readCommitted } from '../../support/kafka.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../../support/tidemark.js';
import { createWorkloadTable, type KeyKind, rngFrom, sourceState, startWriter, type WriterStats } from '../../support/workload.js';

const CYCLES = Number(process.env.TIDEMARK_SOAK_CYCLES ?? 50);
const SEED = Number(process.env.TIDEMARK_SOAK_SEED ?? randomInt(1, 2 ** 31));
if (!Number.isSafeInteger(CYCLES) || CYCLES < 1) throw new Error(`TIDEMARK_SOAK_CYCLES must be a positive integer, not ${process.env.TIDEMARK_SOAK_CYCLES}`);
if (!Number.isSafeInteger(SEED)) throw new Error(`TIDEMARK_SOAK_SEED must be an integer, not ${process.env.TIDEMARK_SOAK_SEED}`);
const REPORT = process.env.TIDEMARK_SOAK_REPORT;

const MIN_WAIT_MS = 300;
const MAX_WAIT_MS = 4000;
// Loading the CLI alone takes 1-4 s on a loaded 2-core machine: counted from the spawn, nearly every wait would end
// in start-up. So most cycles count from the first log line (start-up done: 'snapshot starting' or 'streaming').
const FROM_SPAWN_SHARE = 0.3;
// Stretches every chunk so the snapshot's 56 chunks outlast several cycles (3-30 in the soaks run so far, Kafka's
// per-chunk commits being the slower, on a loaded 2-core machine) without tables that take minutes to fill.
const CHUNK_DELAY_MS = 120;
const WRITER_TPS = 250;
// The hand-off (last chunk committed, stream start not yet recorded) lasts some 50-100 ms: random kills hardly ever hit
// it. The run that commits the last chunk kills itself right there instead, once per combination; the crash point is
// only on that path, so it changes nothing else.
const HAND_OFF_CRASH = 'stream-start';

const TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 6_000 },
  { table: 'events', key: 'sparse-int', rows: 3_000 },
  { table: 'customers', key: 'string', rows: 2_500 },
  { table: 'lines', key: 'composite', rows: 2_500 },
];
const writerTables = TABLES.map((t) => ({ table: t.table, key: t.key }));

type Sink = 'jsonl' | 'kafka';
const COMBOS: { flavour: Flavour; sink: Sink; serverId: number }[] = [
  { flavour: 'mysql', sink: 'jsonl', serverId: 7940 },
  { flavour: 'mysql', sink: 'kafka', serverId: 7950 },
  { flavour: 'mariadb', sink: 'jsonl', serverId: 7960 },
  { flavour: 'mariadb', sink: 'kafka', serverId: 7970 },
];

/** Where a kill landed, by the last milestone the killed process had logged. */
type Phase = 'start-up' | 'chunks' | 'hand-off' | 'streaming';
const PHASES: Phase[] = ['start-up', 'chunks', 'hand-off', 'streaming'];

type Logs = Record<string, unknown>[];
const logged = (logs: Logs, msg: string): boolean => logs.some((l) => l.msg === msg);

function phaseOf(logs: Logs): Phase {
  if (logged(logs, 'streaming')) return 'streaming';
  if (logged(logs, 'snapshot complete')) return 'hand-off';
  if (logged(logs, 'snapshot starting')) return 'chunks';
  return 'start-up';
}

/** What a run found in the checkpoint once started: chunks still to read, or only the stream; undefined if it never got that far. */
function resumedInto(logs: Logs): 'snapshot' | 'stream' | undefined {
  if (logged(logs, 'snapshot starting')) return 'snapshot';
  return logged(logs, 'streaming') ? 'stream' : undefined;
}

/**
 * A kill after the last chunk's commit but before 'snapshot complete' was logged looks like one in chunks; the next run
 * that got started tells them apart, as it goes straight to the stream. Runs: the killed ones, then the final one.
 */
function withHandOffs(runs: { phase?: Phase; logs: Logs }[]): Phase[] {
  return runs.flatMap((run, i) => {
    if (!run.phase) return [];
    if (run.phase !== 'chunks') return [run.phase];
    const next = runs.slice(i + 1).find((r) => resumedInto(r.logs) !== undefined);
    return [next && resumedInto(next.logs) === 'stream' ? 'hand-off' : 'chunks'];
  });
}

interface SoakResult {
  flavour: Flavour;
  sink: Sink;
  seed: number;
  cycles: number;
  kills: Record<Phase, number>;
  /** The first cycle (1-based) whose kill came after the snapshot's last chunk, or null when the final run finished it. */
  snapshotDoneInCycle: number | null;
  /** Runs that killed themselves at the hand-off crash point before the random kill came. */
  handOffCrashes: number;
  /** Chunks committed across all killed processes. */
  chunksDone: number;
  writer: Pick<WriterStats, 'statements' | 'transactions' | 'inserts' | 'updates' | 'deletes' | 'keyChanges'> | null;
  eventsChecked: number;
  events: ConsistencyReport['counts']['events'] | null;
  violations: number | null;
  wallSeconds: number;
  /** The first problems, or the error that stopped the run before the check. */
  failure?: string;
}

const results: SoakResult[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Setup {
  db: string;
  conn: mysql.Connection;
  config: string;
  /** Reads back everything the sink holds, as jsonl lines. */
  output(): Promise<OutputLine[]>;
}

async function setup(flavour: Flavour, sink: Sink, serverId: number): Promise<Setup> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'soak');
  for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
  await conn.query(`ANALYZE TABLE ${TABLES.map((t) => `\`${db}\`.\`${t.table}\``).join(', ')}`);
  const dir = tempDir('tidemark-soak-');
  const name = `soak-${randomBytes(4).toString('hex')}`;
  const out = join(dir, 'out.jsonl');
  const brokers = inject('kafkaBrokers');
  const prefix = `${name}-out`;
  const config = writeConfig(dir, {
    name,
    source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.*`] },
    snapshot: { mode: 'initial', chunkSize: 250, parallelism: 2 },
    checkpoint: { path: join(dir, 'checkpoint.sqlite') },
    sink: sink === 'jsonl' ? { type: 'jsonl', path: out } : { type: 'kafka', brokers: brokers.split(','), topicPrefix: prefix, topic: { partitions: 3 } },
    commit: { maxRecords: 2000, maxDelayMs: 200 },
  });
  const output = async (): Promise<OutputLine[]> => {
    if (sink === 'jsonl') return readJsonl(out);
    const topics = await dataTopics(brokers, prefix);
    expect(topics).toEqual(TABLES.map((t) => `${prefix}.${db}.${t.table}`).sort());
    const messages = await readCommitted(brokers, topics);
    // Three partitions per topic: the order per key only holds if each key stays in one of them.
    const partitionsOfKey = new Map<string, Set<number>>();
    for (const m of messages) partitionsOfKey.set(`${m.topic} ${m.key}`, (partitionsOfKey.get(`${m.topic} ${m.key}`) ?? new Set()).add(m.partition));
    expect([...partitionsOfKey.entries()].filter(([, p]) => p.size > 1).map(([k]) => k)).toEqual([]);
    return asOutputLines(messages);
  };
  return { db, conn, config, output };
}

function markdown(rows: SoakResult[]): string {
  const head = [
    '| flavour | sink | seed | cycles | kills start-up / chunks / hand-off / streaming | of which crash point | snapshot done in cycle | chunks done | source changes (statements / transactions) | events checked | violations | wall time |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const body = rows.map(
    (r) =>
      `| ${r.flavour} | ${r.sink} | ${r.seed} | ${r.cycles} | ${PHASES.map((p) => r.kills[p]).join(' / ')} | ${r.handOffCrashes} | ${r.snapshotDoneInCycle ?? 'final run'} | ${r.chunksDone} | ` +
      `${r.writer ? `${r.writer.statements} / ${r.writer.transactions}` : '-'} | ${r.eventsChecked} | ${r.violations ?? 'not checked'} | ${r.wallSeconds.toFixed(0)} s |`,
  );
  const failures = rows.filter((r) => r.failure).map((r) => `\n${r.flavour}/${r.sink}:\n\n\`\`\`\n${r.failure}\n\`\`\``);
  return [
    `kill -9 soak: seed ${SEED}, ${CYCLES} cycles per combination, kill ${MIN_WAIT_MS}-${MAX_WAIT_MS} ms after the spawn (${FROM_SPAWN_SHARE * 100}% of cycles) or the first log line, writer ~${WRITER_TPS} tps, TIDEMARK_TEST_CHUNK_DELAY_MS=${CHUNK_DELAY_MS}, TIDEMARK_TEST_CRASH_AT=${HAND_OFF_CRASH} (the run committing the last chunk kills itself there)`,
    "kills by phase: start-up = before 'snapshot starting' or 'streaming' was logged; chunks = after 'snapshot starting', chunks left; " +
      "hand-off = after the last chunk's commit, before 'streaming' (a kill before 'snapshot complete' counts here when the next run goes " +
      "straight to the stream); streaming = after 'streaming'.",
    `command: TIDEMARK_SOAK_SEED=${SEED} TIDEMARK_SOAK_CYCLES=${CYCLES} npx vitest run -c vitest.faults.config.ts test/faults/long/soak.test.ts`,
    '',
    ...head,
    ...body,
    ...failures,
    '',
    '```json',
    JSON.stringify(rows, null, 2),
    '```',
    '',
  ].join('\n');
}

describe('kill -9 soak', () => {
  console.log(`kill -9 soak: seed ${SEED} (TIDEMARK_SOAK_SEED=${SEED} replays it), ${CYCLES} cycles per combination`);

  afterAll(() => {
    const text = markdown(results);
    console.log(text);
    if (REPORT) writeFileSync(REPORT, text);
  });

  it.each(COMBOS)(
    '$flavour → $sink: every change once after random SIGKILLs under a writer',
    async ({ flavour, sink, serverId }) => {
      const started = Date.now();
      // Each combination its own stream of kill times and writes, all from the one printed seed.
      const comboSeed = (SEED + serverId) >>> 0;
      const rng = rngFrom(comboSeed);
      const result: SoakResult = {
        flavour,
        sink,
        seed: SEED,
        cycles: 0,
        kills: { 'start-up': 0, chunks: 0, 'hand-off': 0, streaming: 0 },
        snapshotDoneInCycle: null,
        handOffCrashes: 0,
        chunksDone: 0,
        writer: null,
        eventsChecked: 0,
        events: null,
        violations: null,
        wallSeconds: 0,
      };
      results.push(result);
      const s = await setup(flavour, sink, serverId);
      const writer = startWriter(urlOf(flavour), s.db, writerTables, { tps: WRITER_TPS, seed: comboSeed });
      const runs: { phase: Phase; logs: Logs }[] = [];
      try {
        for (let cycle = 1; cycle <= CYCLES; cycle++) {
          const fromSpawn = rng() < FROM_SPAWN_SHARE;
          const wait = MIN_WAIT_MS + Math.floor(rng() * (MAX_WAIT_MS - MIN_WAIT_MS));
          const p = tidemark(['sync', '-c', s.config], { TIDEMARK_TEST_CHUNK_DELAY_MS: String(CHUNK_DELAY_MS), TIDEMARK_TEST_CRASH_AT: HAND_OFF_CRASH });
          if (!fromSpawn) await p.waitForLog(() => true);
          await sleep(wait);
          if (p.child.signalCode === 'SIGKILL') result.handOffCrashes++;
          const exit = await p.kill('SIGKILL');
          // The 'exit' event can come before the last lines written to the pipe are read.
          if (!p.child.stderr!.readableEnded) await once(p.child.stderr!, 'end');
          const phase = phaseOf(p.logs);
          expect(
            exit.signal,
            `cycle ${cycle} (${wait} ms after ${fromSpawn ? 'the spawn' : 'the first log line'}, ${phase}) ended before the kill:\n${p.stderr.slice(-3000)}`,
          ).toBe('SIGKILL');
          runs.push({ phase, logs: p.logs });
          result.cycles = cycle;
          result.kills[phase]++;
          result.chunksDone += p.count('chunk done');
        }
        const stats = await writer.stop();
        result.writer = {
          statements: stats.statements,
          transactions: stats.transactions,
          inserts: stats.inserts,
          updates: stats.updates,
          deletes: stats.deletes,
          keyChanges: stats.keyChanges,
        };
        const finish = await runTidemark(['sync', '-c', s.config, '--until-caught-up']);
        expect(finish.code, finish.stderr.slice(-3000)).toBe(0);
        const phases = withHandOffs([...runs, { logs: finish.logs }]);
        result.kills = Object.fromEntries(PHASES.map((ph) => [ph, phases.filter((x) => x === ph).length])) as Record<Phase, number>;
        const done = phases.findIndex((ph) => ph === 'hand-off' || ph === 'streaming');
        result.snapshotDoneInCycle = done === -1 ? null : done + 1;

        const { source, keyColumns } = await sourceState(s.conn, s.db, TABLES);
        const report = checkConsistency(await s.output(), source, { keyColumns, allowUnpairedMoves: true });
        result.eventsChecked = report.counts.lines;
        result.events = report.counts.events;
        result.violations = report.problemCount;
        if (!report.ok) result.failure = formatReport(report);
        expect(report.ok, formatReport(report)).toBe(true);
        // Only a row the writer deleted or re-keyed before its chunk was read can lack a read.
        expect(report.counts.events.r).toBeGreaterThanOrEqual(TABLES.reduce((n, t) => n + t.rows, 0) - stats.deletes - stats.keyChanges);
        // Streaming under the writer: its changes reached the output as changes, not only folded into reads.
        if (result.kills.streaming > 0) expect(report.counts.events.u).toBeGreaterThan(0);
        // A soak whose kills all hit one phase proves little: with enough cycles, both long phases must have been hit.
        if (CYCLES >= 20) {
          expect(result.kills.chunks, JSON.stringify(result.kills)).toBeGreaterThan(0);
          expect(result.kills.streaming, JSON.stringify(result.kills)).toBeGreaterThan(0);
        }
      } catch (err) {
        result.failure ??= (err as Error).message.slice(0, 4000);
        throw err;
      } finally {
        // stop() is idempotent; a writer left running would keep writing into later combinations' servers.
        await writer.stop().catch(() => {});
        result.wallSeconds = (Date.now() - started) / 1000;
        await s.conn.end();
      }
    },
    // 50 cycles of at most 4 s plus start-up, the catch-up run and the check; generous on a loaded 2-core machine.
    Math.max(1_800_000, CYCLES * 30_000),
  );
});
