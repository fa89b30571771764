import { existsSync, rmSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { Connection } from 'mysql2/promise';
import { CheckpointLock } from '../checkpoint/lock.js';
import { CheckpointStore, type SourceIdentity } from '../checkpoint/store.js';
import { type Config, loadConfig } from '../config/load.js';
import { CheckpointError } from '../errors.js';
import { formatDuration } from '../ops/duration.js';
import { deadLetterPath } from '../sink/jsonl.js';
import { describeOffsets, targetOffsets } from '../sink/sql-check.js';
import type { OffsetsRow } from '../sink/sql-target.js';
import { bytesBetween, formatPosition, type Position } from '../source/position.js';
import { binlogSizes, connect, currentPosition, inspectServer } from '../source/server.js';
import { runCommand } from './run.js';

export interface TableStatus {
  /** `db.table` */
  name: string;
  /** `pending`: no chunk split yet (waiting for its turn); `snapshotting`: chunks being read; `streaming`: snapshot done. */
  phase: 'pending' | 'snapshotting' | 'streaming';
  chunksDone: number;
  /** null until the last chunk of the table has been split. */
  chunksTotal: number | null;
  /** Rows of the snapshot committed to the sink so far. */
  rows: number;
  /** The server's estimate when the table was planned (InnoDB's is approximate). */
  rowsEstimate: number | null;
}

/** What `tidemark status --json` prints (documented in the README). */
export interface StatusReport {
  name: string;
  checkpoint: string;
  /** The server the checkpoint was taken from. */
  source: SourceIdentity | null;
  tables: TableStatus[];
  /** Where the stream resumes: everything before it is committed. null while the first snapshot runs. */
  stream: Position | null;
  lastCommit: {
    at: string;
    ageSeconds: number;
    seq: number;
    /** Source commit time of the newest streamed transaction in the sink; null until the stream has committed one. */
    sourceTime: string | null;
  } | null;
  server: {
    /** Who answers at the configured source now; null when it could not be asked. */
    identity: SourceIdentity | null;
    position: Position | null;
    error: string | null;
  };
  lag: {
    /** Binlog bytes from `stream` to `server.position`. */
    bytes: number | null;
    /** Seconds since the source committed the newest transaction the sink holds; 0 when `bytes` is 0. */
    seconds: number | null;
    /** Why a value is null, or what it is relative to. */
    note: string | null;
  };
  /** Records committed to the dead letters (errors.mode: dead-letter), in all and per `db.table`. */
  deadLetters: { total: number; byTable: Record<string, number> };
  /** A database sink's own record of what it holds (its row in tidemark_offsets); absent for other sinks. */
  target?: { where: string; offsets: OffsetsRow | null; error: string | null };
}

interface CheckpointView {
  identity: SourceIdentity | undefined;
  stream: Position | undefined;
  tables: TableStatus[];
  lastCommitMs: number | undefined;
  lastSourceTsMs: number | undefined;
  seq: number;
  deadLetters: Record<string, number>;
}

interface ServerView {
  identity: SourceIdentity | null;
  position: Position | null;
  logs: { name: string; size: number }[];
  error: string | null;
}

/** `tidemark status` and `tidemark reset`: read and forget the checkpoint. */
export function registerStatusCommands(program: Command, setExitCode: (code: number) => void): void {
  program
    .command('status')
    .description('show snapshot progress per table, the committed stream position and how far behind the source it is')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .option('--json', 'print one JSON object instead of text')
    .action(async (o: { config: string; json?: boolean }) => {
      setExitCode(await runCommand(() => status(loadConfig(o.config), o.json ?? false)));
    });

  program
    .command('reset')
    .description('forget the checkpoint, so the next sync snapshots every table again')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .option('--yes', 'do not ask for confirmation (required when stdin is not a terminal)')
    .action(async (o: { config: string; yes?: boolean }) => {
      setExitCode(await runCommand(() => reset(loadConfig(o.config), o.yes ?? false)));
    });
}

async function status(config: Config, asJson: boolean): Promise<number> {
  const path = config.checkpoint.path;
  if (!existsSync(path)) throw new CheckpointError(`no checkpoint at ${path}: sync has not run yet`);
  let checkpoint: CheckpointView;
  try {
    checkpoint = readCheckpoint(path);
  } catch (err) {
    throw new CheckpointError(`cannot read the checkpoint ${path}: ${(err as Error).message}`);
  }
  // The checkpoint is closed before the source is asked, which may take up to connectTimeoutMs:
  // an open connection would make `tidemark reset` think a sync is running.
  const report = buildReport(config, checkpoint, await askServer(config), Date.now());
  if (config.sink.type === 'postgres' || config.sink.type === 'mysql') report.target = await targetOffsets(config.sink, config.name);
  process.stdout.write(asJson ? `${JSON.stringify(report)}\n` : formatReport(report));
  return 0;
}

function readCheckpoint(path: string): CheckpointView {
  const store = CheckpointStore.openReadOnly(path);
  try {
    return store.consistentRead(() => ({
      identity: store.sourceIdentity(),
      stream: store.streamPosition(),
      tables: store.tables().map((t): TableStatus => {
        const chunks = store.chunks(t.name);
        const phase = t.state === 'snapshotting' && chunks.length === 0 ? 'pending' : t.state;
        return {
          name: t.name,
          phase,
          chunksDone: chunks.filter((c) => c.status === 'done').length,
          chunksTotal: t.chunksTotal,
          rows: t.snapshotRows,
          rowsEstimate: t.rowsEstimate,
        };
      }),
      lastCommitMs: store.lastCommitMs(),
      lastSourceTsMs: store.lastSourceTsMs(),
      seq: store.lastCommittedSeq(),
      deadLetters: store.deadLetters(),
    }));
  } finally {
    store.close();
  }
}

/** The source's identity, current position and binlog file sizes; an unreachable source is reported, not thrown. */
async function askServer(config: Config): Promise<ServerView> {
  let conn: Connection | undefined;
  try {
    conn = await connect(config.source);
    const { identity } = await inspectServer(conn);
    const position = await currentPosition(conn, identity.flavour);
    return { identity, position, logs: await binlogSizes(conn), error: null };
  } catch (err) {
    return { identity: null, position: null, logs: [], error: (err as Error).message };
  } finally {
    await conn?.end().catch(() => {});
  }
}

function buildReport(config: Config, cp: CheckpointView, server: ServerView, now: number): StatusReport {
  const lag: StatusReport['lag'] = { bytes: null, seconds: null, note: null };
  const notes: string[] = [];
  if (!cp.stream) {
    notes.push('the stream starts when the snapshot is done');
  } else if (server.error !== null) {
    notes.push(`lag in bytes unknown, the source could not be asked: ${server.error}`);
  } else if (cp.identity && server.identity && (cp.identity.flavour !== server.identity.flavour || cp.identity.serverId !== server.identity.serverId)) {
    notes.push(
      `lag in bytes unknown: the source is now ${server.identity.flavour} server ${server.identity.serverId}, ` +
        `and the checkpoint's file/pos belong to ${cp.identity.flavour} server ${cp.identity.serverId}`,
    );
  } else {
    lag.bytes = bytesBetween(cp.stream, server.position!, server.logs) ?? null;
    if (lag.bytes === null) notes.push(`lag in bytes unknown: binlog file ${cp.stream.file} has been purged from the source`);
  }
  if (lag.bytes === 0) lag.seconds = 0;
  else if (cp.stream && cp.lastSourceTsMs !== undefined) {
    lag.seconds = Math.max(0, (now - cp.lastSourceTsMs) / 1000);
    notes.push('seconds as of the last commit: since the source committed the newest transaction the sink holds');
  } else if (cp.stream) notes.push('lag in seconds unknown until the stream commits a transaction');
  lag.note = notes.length > 0 ? notes.join('; ') : null;

  return {
    name: config.name,
    checkpoint: config.checkpoint.path,
    source: cp.identity ?? null,
    tables: cp.tables,
    stream: cp.stream ?? null,
    lastCommit:
      cp.lastCommitMs === undefined
        ? null
        : {
            at: new Date(cp.lastCommitMs).toISOString(),
            ageSeconds: Math.max(0, (now - cp.lastCommitMs) / 1000),
            seq: cp.seq,
            sourceTime: cp.lastSourceTsMs === undefined ? null : new Date(cp.lastSourceTsMs).toISOString(),
          },
    server: { identity: server.identity, position: server.position, error: server.error },
    lag,
    deadLetters: { total: Object.values(cp.deadLetters).reduce((n, c) => n + c, 0), byTable: cp.deadLetters },
  };
}

function describeTable(t: TableStatus): string {
  const estimate = t.rowsEstimate === null ? '' : ` of ~${t.rowsEstimate}`;
  switch (t.phase) {
    case 'pending':
      return t.rowsEstimate === null ? 'not started' : `not started, ~${t.rowsEstimate} rows`;
    case 'snapshotting': {
      const chunks = t.chunksTotal === null ? `${t.chunksDone} chunks done, splitting` : `${t.chunksDone} of ${t.chunksTotal} chunks`;
      return `${chunks}, ${t.rows}${estimate} rows`;
    }
    case 'streaming':
      return t.chunksDone === 0 ? 'no snapshot' : `snapshot done: ${t.rows} rows in ${t.chunksDone} chunks`;
  }
}

function formatReport(r: StatusReport): string {
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`${label.padEnd(12)} ${value}`);
  row('connector', r.name);
  row('checkpoint', r.checkpoint);
  row('source', r.source ? `${r.source.flavour} ${r.source.version} (server ${r.source.serverId})` : 'not recorded yet');
  if (r.tables.length === 0) row('tables', 'none planned yet');
  else {
    lines.push('tables');
    const width = Math.max(...r.tables.map((t) => t.name.length));
    for (const t of r.tables) lines.push(`  ${t.name.padEnd(width)}  ${t.phase.padEnd(12)}  ${describeTable(t)}`);
  }
  row('stream', r.stream ? `${r.stream.file}:${r.stream.pos}` : 'not started');
  if (r.stream?.gtid) row('gtid set', r.stream.gtid);
  if (r.server.position) row('server at', formatPosition(r.server.position));
  const behind: string[] = [];
  if (r.lag.bytes !== null) behind.push(`${r.lag.bytes} bytes`);
  if (r.lag.seconds !== null) behind.push(r.lag.bytes === 0 ? 'caught up' : `${formatDuration(r.lag.seconds)} as of the last commit`);
  row('behind', behind.length > 0 ? behind.join('; ') : 'unknown');
  if (r.lag.note && (r.lag.bytes === null || r.lag.seconds === null)) row('', r.lag.note);
  row('last commit', r.lastCommit ? `${r.lastCommit.at} (${formatDuration(r.lastCommit.ageSeconds)} ago)` : 'none yet');
  if (r.target) {
    const held = r.target.offsets ? describeOffsets(r.target.offsets) : 'nothing committed yet';
    row('target', `${r.target.where}: ${r.target.error === null ? held : `could not be asked: ${r.target.error}`}`);
  }
  if (r.deadLetters.total > 0) {
    const tables = Object.entries(r.deadLetters.byTable).map(([t, n]) => `${t} ${n}`);
    row('dead letters', `${r.deadLetters.total} (${tables.join(', ')})`);
  }
  return `${lines.join('\n')}\n`;
}

/** The jsonl output and its dead letters: tidemark's files, which are only true together with the checkpoint. */
function outputFiles(config: Config): string[] {
  if (config.sink.type !== 'jsonl') return [];
  return [config.sink.path, deadLetterPath(config.sink.path)].filter((f) => existsSync(f));
}

function outputNote(config: Config): string | undefined {
  const files = outputFiles(config);
  if (files.length === 0) return undefined;
  return `The jsonl output goes with it: ${files.map((f) => `${f} (${statSync(f).size} bytes)`).join(', ')}. Move it away first to keep it.`;
}

async function confirm(config: Config, path: string): Promise<boolean> {
  process.stderr.write(`This forgets all progress of connector ${config.name}: ${path} is deleted and the next sync snapshots every table again.\n`);
  const note = outputNote(config);
  if (note) process.stderr.write(`${note}\n`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    // End of input (Ctrl-D) closes the interface without an answer: that is a no.
    const answer = await new Promise<string | null>((resolve) => {
      rl.once('close', () => resolve(null));
      rl.question(`Type the connector name (${config.name}) to confirm: `).then(resolve, () => resolve(null));
    });
    return answer?.trim() === config.name;
  } finally {
    rl.close();
  }
}

async function reset(config: Config, yes: boolean): Promise<number> {
  const path = config.checkpoint.path;
  // -wal and -shm go before the database: a -wal left beside a new checkpoint would be replayed into it.
  const files = [`${path}-wal`, `${path}-shm`, path];
  if (!files.some((f) => existsSync(f))) {
    process.stdout.write(`no checkpoint at ${path}: nothing to reset\n`);
    return 0;
  }
  const holder = CheckpointLock.holder(path);
  const inUse = `the checkpoint ${path} is open in another process, most likely a running tidemark sync${holder ? ` (pid ${holder})` : ''}: stop it, then reset`;
  if (existsSync(path) && CheckpointStore.inUse(path)) throw new CheckpointError(inUse);
  if (!yes) {
    if (!process.stdin.isTTY)
      throw new CheckpointError(`refusing to reset ${path} without confirmation: stdin is not a terminal. Pass --yes to reset from a script.`);
    if (!(await confirm(config, path))) throw new CheckpointError('not confirmed: the checkpoint was left as it was');
    // The prompt may have waited long enough for a sync to start.
    if (existsSync(path) && CheckpointStore.inUse(path)) throw new CheckpointError(inUse);
  }
  const output = outputFiles(config);
  for (const f of [...files, ...output]) rmSync(f, { force: true });
  process.stdout.write(`reset: deleted ${[path, ...output].join(', ')}; the next sync snapshots every table again.\n`);
  return 0;
}
