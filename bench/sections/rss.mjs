// Section rss: peak memory of the snapshot into jsonl, of the table and of a copy a tenth its size, in the
// same run: the difference is what the table's size adds.

import { rmSync } from 'node:fs';
import { createTable, TABLE, withoutBinlog } from '../lib/data.mjs';
import { fmtInt } from '../lib/format.mjs';
import { snapshotRun } from '../lib/snapshot-runs.mjs';
import { rate } from '../lib/stats.mjs';

/** @import { Bench } from '../lib/bench.mjs' */
/** @import { SnapshotRun, SnapshotRuns } from '../lib/snapshot-runs.mjs' */

export const name = 'rss';

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs  gets small, and jsonl unless the snapshot or parallelism section made one
 */
export async function run(bench, runs) {
  const { conn, db } = bench;
  if (!runs.jsonl && !runs.p2) runs.jsonl = await snapshotRun(bench, 'snap-jsonl', 'jsonl');
  const small = Math.round(bench.options.rows / 10);
  await createTable(bench, 'sbtest_small');
  await withoutBinlog(bench, () => conn.query(`INSERT INTO ${db}.sbtest_small SELECT * FROM ${db}.${TABLE} WHERE id <= ${small}`));
  await conn.query(`ANALYZE TABLE ${db}.sbtest_small`);
  runs.small = await snapshotRun(bench, 'snap-jsonl-small', 'jsonl', { table: 'sbtest_small' });
  if (runs.small.out) rmSync(runs.small.out, { force: true });
}

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs
 */
export function record(bench, runs) {
  const big = runs.jsonl ?? runs.p2;
  if (!runs.small || !big) return;
  /** @param {SnapshotRun} r */
  const rssRow = (r) =>
    bench.results.add({
      section: 'rss',
      measure: `snapshot → jsonl of ${fmtInt(r.rows)} rows`,
      rows: r.rows,
      seconds: r.seconds,
      rate: rate(r.rows, r.seconds),
      peakRssMb: r.peakRssMb,
    });
  rssRow(runs.small);
  rssRow(big);
}
