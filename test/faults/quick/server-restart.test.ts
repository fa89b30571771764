import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privateServer, RESTART_TABLES, RestartHarness } from '../../support/private-server.js';

/**
 * The source server killed (kill -9) under a running sync while the snapshot is between two chunk reads (issue 12
 * item 8): the same process waits for the server to come back, finishes the snapshot and streams, every change once.
 * On MariaDB, whose server is back within seconds; the other restart cases are in test/faults/long/server-restart.test.ts.
 */
describe('the source server restarts under a running sync (mariadb)', () => {
  let h: RestartHarness;

  beforeAll(async () => {
    h = new RestartHarness(await privateServer('mariadb'), 8780);
  }, 300_000);
  afterAll(async () => {
    await h?.cleanUp();
    await h?.server.down();
  });

  it('between chunk reads (the next chunk bound being read from the index), killed with kill -9: the snapshot waits for the server', async () => {
    const report = await h.killBetweenChunkReads();
    expect(report.counts.events.r).toBeGreaterThanOrEqual(RESTART_TABLES.reduce((n, t) => n + t.rows, 0) - 1000);
  });
});
