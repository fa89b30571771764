import { createRequire } from 'node:module';
import { Command } from 'commander';
import { registerCheckCommand } from './check.js';
import { registerDemoCommand } from './demo.js';
import { registerStatusCommands } from './status.js';
import { registerSyncCommands } from './sync.js';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Builds the CLI and runs it; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const setExitCode = (c: number) => {
    code = c;
  };
  const program = new Command()
    .name('tidemark')
    .description('Change-data-capture for MySQL and MariaDB: chunked snapshot, then the binlog, exactly once.')
    .version(pkg.version)
    .showHelpAfterError();
  registerSyncCommands(program, setExitCode);
  registerCheckCommand(program, setExitCode);
  registerStatusCommands(program, setExitCode);
  registerDemoCommand(program, setExitCode);
  await program.parseAsync(argv);
  return code;
}
