/** What every command shares: the log, and the one place where an error becomes a message and an exit code. */
import { EXIT, TidemarkError } from '../errors.js';
import { createLogger, type Log, logFunction } from '../ops/logger.js';

const logger = createLogger();
export const log: Log = logFunction(logger);

/**
 * Runs a command and resolves to the process exit code: the command's own (a failed check, say), 0 when it
 * returns nothing, or the error's. An error the user can act on prints its message alone, with its stack
 * in the debug log (TIDEMARK_LOG_LEVEL=debug); anything else is a bug and prints its stack.
 */
export async function runCommand(fn: () => unknown): Promise<number> {
  try {
    const code = await fn();
    return typeof code === 'number' ? code : EXIT.ok;
  } catch (err) {
    if (err instanceof TidemarkError) {
      logger.debug({ err }, 'error details');
      process.stderr.write(`tidemark: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`tidemark: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.runtime;
  }
}
