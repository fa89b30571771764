// Section postgres: the initial snapshot into PostgreSQL (sink.type: postgres, exactly once, COPY inside its commit
// transactions) against a plain COPY of the same rows into a table of the same shape, with no tidemark in between.

import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { TABLE } from '../lib/data.mjs';
import { fmtInt } from '../lib/format.mjs';
import { say } from '../lib/log.mjs';
import { ceilingRow } from '../lib/results.mjs';
import { snapshotRun } from '../lib/snapshot-runs.mjs';
import { fastest, rate } from '../lib/stats.mjs';
import { postgresSchema } from '../lib/sync-process.mjs';

/** @import { Bench } from '../lib/bench.mjs' */
/** @import { SnapshotRuns } from '../lib/snapshot-runs.mjs' */
/** @import { Measured } from '../lib/stats.mjs' */

export const name = 'postgres';

// The ceiling is measured this often and the fastest counted, as the other ceilings are.
const CEILING_RUNS = 2;

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs  gets postgres and postgresCopy
 */
export async function run(bench, runs) {
  const url = bench.servers.postgresUrl;
  if (!url) throw new Error('no PostgreSQL server was provisioned');
  const schema = postgresSchema(bench);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    runs.postgres = await snapshotRun(bench, 'snap-postgres', 'postgres');
    const copied = `"${schema}"."${bench.db}_${TABLE}"`;
    // The rows exactly as tidemark left them, in COPY's own text: the ceiling pays for no conversion at all.
    const file = join(bench.work, 'postgres-ceiling.copy');
    await pipeline(client.query(copyStreams.to(`COPY ${copied} TO STDOUT`)), createWriteStream(file));
    /** @type {Measured[]} */
    const measured = [];
    for (let i = 0; i < CEILING_RUNS; i++) {
      const ceiling = `"${schema}".ceiling`;
      await client.query(`CREATE TABLE ${ceiling} (LIKE ${copied} INCLUDING ALL)`);
      const t0 = performance.now();
      await client.query('BEGIN');
      await pipeline(createReadStream(file), client.query(copyStreams.from(`COPY ${ceiling} FROM STDIN`)));
      await client.query('COMMIT');
      const seconds = (performance.now() - t0) / 1000;
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM ${ceiling}`);
      measured.push({ rows: rows[0].n, seconds });
      await client.query(`DROP TABLE ${ceiling}`);
    }
    rmSync(file, { force: true });
    runs.postgresCopy = fastest(measured);
    say(`plain COPY of the same rows: ${fmtInt(runs.postgresCopy.rows)} rows in ${runs.postgresCopy.seconds.toFixed(2)} s`);
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await client.end();
  }
}

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs
 * @param {number} selectRate  the mysql2 SELECT * ceiling, rows/s
 */
export function record(bench, runs, selectRate) {
  const r = runs.postgres;
  const copy = runs.postgresCopy;
  if (!r || !copy) return;
  bench.results.add({ ...ceilingRow('PostgreSQL plain COPY of the same rows (1 transaction, no tidemark)', copy), ceilingRate: null });
  const row = { section: /** @type {const} */ ('postgres'), rows: r.rows, seconds: r.seconds, rate: rate(r.rows, r.seconds), peakRssMb: r.peakRssMb };
  bench.results.add({ ...row, measure: 'snapshot → postgres (exactly-once)', ceiling: 'mysql2 SELECT *', ceilingRate: selectRate });
  bench.results.add({ ...row, measure: 'snapshot → postgres vs plain COPY', ceiling: 'PostgreSQL COPY', ceilingRate: rate(copy.rows, copy.seconds) });
}
