import { Command } from 'commander';
import { createRequire } from 'node:module';

const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };

/** Builds the CLI and runs it; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('tidemark')
    .description('Change-data-capture for MySQL and MariaDB: chunked snapshot, then the binlog, exactly once.')
    .version(pkg.version);
  await program.parseAsync(argv);
  return 0;
}
