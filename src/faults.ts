import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Fault injection for the integration tests, which must kill tidemark at moments no signal sent from outside
 * can hit reliably. TIDEMARK_TEST_CRASH_AT=<point> kills the process there, as `kill -9` would.
 */
export function crashPoint(point: 'stream-start' | 'planned' | 'sink-commit' | 'sink-committed' | 'transaction-part'): void {
  if (process.env.TIDEMARK_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

/**
 * TIDEMARK_TEST_DROP_AT=<point>: the connection in use there counts as lost, as a network drop at that moment would;
 * for moments a test cannot hit from outside (the binlog connection ready, nothing received on it yet).
 */
export function dropPoint(point: 'binlog-start'): Error | undefined {
  if (process.env.TIDEMARK_TEST_DROP_AT !== point) return undefined;
  return Object.assign(new Error(`connection dropped by TIDEMARK_TEST_DROP_AT=${point}`), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true });
}

const pauseHits = new Map<string, number>();

/**
 * TIDEMARK_TEST_PAUSE_AT=<point>[@<n>]: the n-th time (default the first) the process gets there, it writes a
 * `test pause` log line and waits until the file TIDEMARK_TEST_PAUSE_UNTIL exists; for moments a test must act in
 * that no timing hits reliably (a server stopped while a Kafka transaction of tidemark's is open, or between two
 * chunk reads). Undefined, so nothing is awaited, unless armed.
 */
export function pausePoint(point: 'kafka-transaction' | 'chunk-split'): Promise<void> | undefined {
  const armed = process.env.TIDEMARK_TEST_PAUSE_AT;
  if (armed === undefined) return undefined;
  const [at, nth = '1'] = armed.split('@');
  if (at !== point) return undefined;
  const hit = (pauseHits.get(point) ?? 0) + 1;
  pauseHits.set(point, hit);
  if (hit !== Number(nth)) return undefined;
  const until = process.env.TIDEMARK_TEST_PAUSE_UNTIL;
  if (!until) throw new Error('TIDEMARK_TEST_PAUSE_AT needs TIDEMARK_TEST_PAUSE_UNTIL, the file whose creation ends the pause');
  process.stderr.write(`${JSON.stringify({ level: 40, time: Date.now(), msg: 'test pause', point, hit })}\n`);
  return (async () => {
    while (!existsSync(until)) await sleep(20);
  })();
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
