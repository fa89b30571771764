import { existsSync } from 'node:fs';
import { type Command, Option } from 'commander';
import { CheckpointStore } from '../checkpoint/store.js';
import { type Config, loadConfig, matchTables } from '../config/load.js';
import { CheckpointError, UsageError } from '../errors.js';
import { Metrics } from '../ops/metrics.js';
import { fanOut, type SyncObserver } from '../ops/observer.js';
import { SnapshotProgress } from '../ops/progress.js';
import { runSync } from '../sync/connector.js';
import { log, runCommand } from './run.js';

/** A clean stop that takes longer than this is cut short; the checkpoint makes that safe too. */
const SHUTDOWN_LIMIT_MS = 30_000;

/**
 * The first SIGINT/SIGTERM stops sync: the batch in hand is committed, then the process exits 0.
 * A second signal, or the time limit, ends it at once (exit 130): nothing committed is lost, the
 * uncommitted batch is produced again by the next run.
 */
function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = (sig: string) => {
    if (controller.signal.aborted) {
      log('stopping now', { signal: sig });
      process.exit(130);
    }
    log('stopping', { signal: sig });
    controller.abort();
    setTimeout(() => {
      log('clean stop took too long; stopping now', { limitMs: SHUTDOWN_LIMIT_MS });
      process.exit(130);
    }, SHUTDOWN_LIMIT_MS).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  return controller.signal;
}

/** `tidemark sync` and `tidemark snapshot`. */
export function registerSyncCommands(program: Command, setExitCode: (code: number) => void): void {
  program
    .command('sync')
    .description('snapshot the configured tables, then stream their changes into the sink until stopped')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .addOption(new Option('--until-caught-up', 'exit 0 once the stream reaches the binlog position current when the snapshot finished'))
    .action(async (o: { config: string; untilCaughtUp?: boolean }) => {
      const code = await runCommand(() => sync(loadConfig(o.config), o.untilCaughtUp ?? false));
      setExitCode(code);
      // The sink and the checkpoint are closed. A socket that a stop cut short (a connect into a partition, say)
      // would keep the process alive until TCP gives up, minutes later; the log is written synchronously.
      process.exit(code);
    });

  program
    .command('snapshot')
    .description('ask for a fresh snapshot of tables: a running sync reads them chunk by chunk without stopping the stream, a stopped one at its next start')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .argument('<tables...>', 'db.table names, as captured by source.tables')
    .action(async (tables: string[], o: { config: string }) => {
      setExitCode(await runCommand(() => requestSnapshot(loadConfig(o.config), tables)));
    });
}

async function sync(config: Config, untilCaughtUp: boolean): Promise<void> {
  const metrics = new Metrics();
  const observers: SyncObserver[] = [metrics, new SnapshotProgress(process.stderr.isTTY === true, log)];
  if (config.metrics.port !== undefined) {
    await metrics.serve(config.metrics.port, config.metrics.host);
    log('metrics served', { url: `http://${config.metrics.host}:${config.metrics.port}/metrics` });
  }
  try {
    await runSync(config, { untilCaughtUp, signal: shutdownSignal(), log, observer: fanOut(observers) });
  } catch (err) {
    metrics.failed();
    throw err;
  }
}

function requestSnapshot(config: Config, tables: string[]): void {
  const notCaptured = tables.filter((t) => matchTables(config.source.tables, [splitName(t)]).length === 0);
  if (notCaptured.length > 0) {
    throw new UsageError(
      `${notCaptured.join(', ')}: not captured by source.tables (${config.source.tables.join(', ')}). Name tables as db.table, as source.tables matches them.`,
    );
  }
  if (!existsSync(config.checkpoint.path)) {
    throw new CheckpointError(`no checkpoint at ${config.checkpoint.path}: sync has not run yet, and its first run snapshots every table anyway.`);
  }
  const store = CheckpointStore.open(config.checkpoint.path);
  try {
    store.requestSnapshot(tables);
  } finally {
    store.close();
  }
  process.stdout.write(`snapshot requested for ${tables.join(', ')}: a running sync starts it within a second, a stopped one at its next start\n`);
}

function splitName(name: string): { db: string; table: string } {
  const dot = name.indexOf('.');
  return dot < 0 ? { db: '', table: name } : { db: name.slice(0, dot), table: name.slice(dot + 1) };
}
