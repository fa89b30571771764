import { Command, Option } from 'commander';
import { createRequire } from 'node:module';
import { ConfigError, loadConfig } from '../config/load.js';
import { SourceError } from '../source/server.js';
import { runSync } from '../sync/connector.js';
import { registerCheckCommand } from './check.js';
import { registerStatusCommands } from './status.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/** One JSON object per line on stderr: stdout stays free for the stdout sink. */
export function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), msg, ...fields }) + '\n');
}

/** Stops on the first SIGINT/SIGTERM: the running batch is committed, then the process exits 0. */
function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = (sig: string) => {
    if (controller.signal.aborted) return;
    log('stopping', { signal: sig });
    controller.abort();
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  return controller.signal;
}

/** Builds the CLI and runs it; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = new Command()
    .name('tidemark')
    .description('Change-data-capture for MySQL and MariaDB: chunked snapshot, then the binlog, exactly once.')
    .version(pkg.version)
    .showHelpAfterError();

  program
    .command('sync')
    .description('snapshot the configured tables, then stream their changes into the sink until stopped')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .addOption(new Option('--until-caught-up', 'exit 0 once the stream reaches the binlog position current when the snapshot finished'))
    .action(async (o: { config: string; untilCaughtUp?: boolean }) => {
      code = await runCommand(async () => {
        const config = loadConfig(o.config);
        await runSync(config, { untilCaughtUp: o.untilCaughtUp ?? false, signal: shutdownSignal(), log });
      });
    });

  const setExitCode = (c: number) => {
    code = c;
  };
  registerCheckCommand(program, setExitCode);
  registerStatusCommands(program, setExitCode);

  await program.parseAsync(argv);
  return code;
}

export async function runCommand(fn: () => Promise<void>): Promise<number> {
  try {
    await fn();
    return 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`tidemark: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof SourceError) {
      process.stderr.write(`tidemark: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`tidemark: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}
