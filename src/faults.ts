/**
 * Fault injection for the integration tests, which must kill tidemark at moments no signal sent from outside
 * can hit reliably. TIDEMARK_TEST_CRASH_AT=<point> kills the process there, as `kill -9` would.
 */
export function crashPoint(point: 'stream-start'): void {
  if (process.env.TIDEMARK_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
