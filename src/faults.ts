/**
 * Fault injection for the integration tests, which must kill tidemark at moments no signal sent from outside
 * can hit reliably. TIDEMARK_TEST_CRASH_AT=<point> kills the process there, as `kill -9` would.
 */
export function crashPoint(point: 'stream-start'): void {
  if (process.env.TIDEMARK_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

const POISON = process.env.TIDEMARK_TEST_POISON_VALUE;

/**
 * TIDEMARK_TEST_POISON_VALUE=<text>: a row with a column of exactly that text cannot be encoded, as a row no
 * converter can read would be. Without it the writer is returned as it is: no cost on the hot path.
 */
export function poisoned<R extends Record<string, unknown>>(columns: string[], write: (raw: R) => string): (raw: R) => string {
  if (POISON === undefined) return write;
  return (raw) => {
    for (const c of columns) {
      const v = raw[c];
      if (v === POISON || (Buffer.isBuffer(v) && v.toString() === POISON)) throw new TypeError(`test poison value ${POISON} in column ${c}`);
    }
    return write(raw);
  };
}
