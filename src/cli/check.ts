import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { EXIT } from '../errors.js';
import { checkSqlTarget } from '../sink/sql-check.js';
import { type CheckResult, runChecks } from '../source/checks/index.js';
import { runCommand } from './run.js';

/** `tidemark check -c <file>`: is the source ready for capture (and a database sink's target ready to write)? Exits 1 when a check fails, 2 on a config error. */
export function registerCheckCommand(program: Command, setExitCode: (code: number) => void): void {
  program
    .command('check')
    .description('check that the source server, account and tables are ready for capture; exits 1 when a check fails')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .option('--json', 'print a JSON array of {check, status, found, fix} instead of a table')
    .action(async (o: { config: string; json?: boolean }) => {
      const code = await runCommand(async () => {
        const config = loadConfig(o.config);
        const results = await runChecks(config);
        if (config.sink.type === 'postgres' || config.sink.type === 'mysql') results.push(...(await checkSqlTarget(config.sink, config.name)));
        // Wrapping only on a terminal: piped output keeps one line per row, so it can be grepped.
        process.stdout.write(
          o.json ? `${JSON.stringify(results, null, 2)}\n` : formatResults(results, process.stdout.isTTY ? process.stdout.columns : undefined),
        );
        return results.some((r) => r.status === 'FAIL') ? EXIT.runtime : EXIT.ok;
      });
      setExitCode(code);
    });
}

/** A table of STATUS, CHECK and FOUND columns, each fix on the line below its row, then a count of each status. */
function formatResults(results: CheckResult[], width?: number): string {
  const statusWidth = 'STATUS'.length + 2;
  const checkWidth = Math.max('CHECK'.length, ...results.map((r) => r.check.length)) + 2;
  const indent = ' '.repeat(statusWidth + checkWidth);
  const textWidth = width === undefined ? Infinity : Math.max(40, width - indent.length);
  const lines = [`${'STATUS'.padEnd(statusWidth) + 'CHECK'.padEnd(checkWidth)}FOUND`];
  for (const r of results) {
    const [first = '', ...rest] = wrap(r.found, textWidth);
    lines.push(r.status.padEnd(statusWidth) + r.check.padEnd(checkWidth) + first, ...rest.map((l) => indent + l));
    if (r.fix !== null) {
      const [fixFirst = '', ...fixRest] = wrap(r.fix, textWidth - 'fix: '.length);
      lines.push(`${indent}fix: ${fixFirst}`, ...fixRest.map((l) => `${indent}     ${l}`));
    }
  }
  const count = (status: CheckResult['status']) => results.filter((r) => r.status === status).length;
  lines.push('', `${count('FAIL')} failed, ${count('WARN')} warning(s), ${count('PASS')} passed`);
  return `${lines.join('\n')}\n`;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  return [...lines, line];
}
