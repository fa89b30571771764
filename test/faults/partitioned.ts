import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, expect, inject } from 'vitest';
import { checkConsistency, formatReport, readJsonl } from '../support/consistency.js';
import { type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { asOutputLines, dataTopics, readCommitted } from '../support/kafka.js';
import { NetNamespace } from '../support/netns.js';
import { runTidemark, sourceFromUrl, type TidemarkProcess, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { createWorkloadTable, type KeyKind, sourceState, startWriter, type Writer } from '../support/workload.js';

const TABLES: { table: string; key: KeyKind; rows: number }[] = [
  { table: 'orders', key: 'int', rows: 3_000 },
  { table: 'customers', key: 'string', rows: 1_000 },
];

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type LogLine = Record<string, unknown>;
/**
 * The source is taken for lost by whichever connection waits on it first: the binlog stream, or a control query
 * the stream needs (sort weights while the snapshot hands over), which then holds the stream up.
 */
export const sourceLost = (l: LogLine) =>
  l.msg === 'binlog connection lost; reconnecting' || l.msg === 'source connection lost on a control query; trying it again';
export const sourceBack = (l: LogLine) => l.msg === 'binlog reconnected' || l.msg === 'source reconnected';

export interface PartitionedOptions {
  sink: 'jsonl' | 'kafka';
  serverId: number;
  /** `source.heartbeatTimeoutMs`; the product's default when absent. */
  heartbeatTimeoutMs?: number;
}

/**
 * A fresh database synced by a tidemark that runs in a network namespace of its own, so the test can cut
 * or thin out its traffic to the source (`sourcePort`) and to Kafka (`kafkaPort`). The writer, the test's
 * checks and the final `--until-caught-up` run on this machine's own network, untouched by the faults.
 */
export class Partitioned {
  private readonly cleanups: (() => Promise<void> | void)[] = [];

  private constructor(
    readonly flavour: Flavour,
    readonly ns: NetNamespace,
    private readonly s: { db: string; conn: Awaited<ReturnType<typeof freshDatabase>>['conn']; config: string; out: string; prefix: string },
    readonly sourcePort: number,
    readonly kafkaPort: number,
    private readonly brokers: string,
    private readonly sink: 'jsonl' | 'kafka',
  ) {}

  static async create(flavour: Flavour, opts: PartitionedOptions): Promise<Partitioned> {
    const url = urlOf(flavour);
    const { db, conn } = await freshDatabase(url, 'part');
    for (const t of TABLES) await createWorkloadTable(conn, db, t.table, { rows: t.rows, key: t.key });
    const source = sourceFromUrl(url);
    const brokers = inject('kafkaBrokers');
    const kafkaPort = Number(new URL(`kafka://${brokers.split(',')[0]}`).port);
    const dir = tempDir();
    const out = join(dir, 'out.jsonl');
    const prefix = `part-${randomBytes(4).toString('hex')}`;
    const config = writeConfig(dir, {
      name: prefix,
      source: { ...source, serverId: opts.serverId, tables: [`${db}.*`], ...(opts.heartbeatTimeoutMs ? { heartbeatTimeoutMs: opts.heartbeatTimeoutMs } : {}) },
      snapshot: { chunkSize: 200, parallelism: 2 },
      checkpoint: { path: join(dir, 'checkpoint.sqlite') },
      sink: opts.sink === 'jsonl' ? { type: 'jsonl', path: out } : { type: 'kafka', brokers: brokers.split(','), topicPrefix: prefix },
      commit: { maxRecords: 500, maxDelayMs: 100 },
    });
    const ns = NetNamespace.create([source.port, kafkaPort]);
    const p = new Partitioned(flavour, ns, { db, conn, config, out, prefix }, source.port, kafkaPort, brokers, opts.sink);
    p.cleanups.push(
      () => ns.remove(),
      () => conn.end(),
    );
    return p;
  }

  /** `tidemark sync` inside the namespace. */
  run(env: NodeJS.ProcessEnv = {}): TidemarkProcess {
    const p = tidemark(['sync', '-c', this.s.config], env, (argv) => this.ns.wrap(argv));
    this.cleanups.push(async () => {
      await p.kill('SIGKILL');
    });
    return p;
  }

  writer(seed: number, tps = 150): Writer {
    const w = startWriter(urlOf(this.flavour), this.s.db, TABLES, { tps, seed });
    this.cleanups.push(() => w.stop().then(() => {}));
    return w;
  }

  /** Stops `sync` (SIGTERM, a clean exit), then `catchUpAndCheck`. */
  async stopAndCheck(sync: TidemarkProcess): Promise<void> {
    expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-3000)).toBe(0);
    await this.catchUpAndCheck();
  }

  /** Lets a fresh run catch up, and checks the sink against the source. */
  async catchUpAndCheck(): Promise<void> {
    const finish = await runTidemark(['sync', '-c', this.s.config, '--until-caught-up']);
    expect(finish.code, finish.stderr.slice(-3000)).toBe(0);
    const { source, keyColumns } = await sourceState(this.s.conn, this.s.db, TABLES);
    const lines =
      this.sink === 'jsonl' ? readJsonl(this.s.out) : asOutputLines(await readCommitted(this.brokers, await dataTopics(this.brokers, this.s.prefix)));
    const report = checkConsistency(lines, source, { keyColumns, allowUnpairedMoves: true });
    expect(report.ok, formatReport(report)).toBe(true);
    expect(report.counts.events.r).toBeGreaterThanOrEqual(TABLES.reduce((n, t) => n + t.rows, 0) - 1000);
  }

  async close(): Promise<void> {
    for (const c of this.cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  }
}

/** `Partitioned.create` for the tests of a describe block, each one's namespace and processes removed after it. */
export function partitionedPerTest(): typeof Partitioned.create {
  let open: Partitioned[] = [];
  afterEach(async () => {
    for (const p of open) await p.close();
    open = [];
  });
  return async (flavour, opts) => {
    const p = await Partitioned.create(flavour, opts);
    open.push(p);
    return p;
  };
}
