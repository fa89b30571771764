// Progress lines and usage errors. Progress goes to stderr, so that stdout holds only the report.

/**
 * A progress line on stderr, stamped with the time of day.
 * @param {string} line
 */
export function say(line) {
  console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
}

/**
 * Ends the run over a bad option or a missing prerequisite, with exit code 2.
 * @param {string} msg
 * @returns {never}
 */
export function fail(msg) {
  console.error(`bench: ${msg}`);
  process.exit(2);
}

/**
 * The message of anything thrown.
 * @param {unknown} err
 */
export function messageOf(err) {
  return err instanceof Error ? err.message : String(err);
}
