// Section parallelism: the snapshot into jsonl with snapshot.parallelism 1, 2 (the default) and 4.

import { rmSync } from 'node:fs';
import { snapshotRun } from '../lib/snapshot-runs.mjs';
import { rate } from '../lib/stats.mjs';

/** @import { Bench } from '../lib/bench.mjs' */
/** @import { SnapshotRuns } from '../lib/snapshot-runs.mjs' */

export const name = 'parallelism';

const PARALLELISMS = /** @type {const} */ ([1, 2, 4]);

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs  gets p1, p2 and p4
 */
export async function run(bench, runs) {
  for (const p of PARALLELISMS) {
    // parallelism 2 is the default, which the jsonl snapshot of the snapshot section already measured.
    if (p === 2 && runs.jsonl) {
      runs.p2 = runs.jsonl;
      continue;
    }
    const r = await snapshotRun(bench, `snap-jsonl-p${p}`, 'jsonl', { parallelism: p });
    runs[`p${p}`] = r;
    if (r.out) rmSync(r.out, { force: true });
  }
}

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs
 * @param {number} selectRate  the mysql2 SELECT * ceiling, rows/s
 */
export function record(bench, runs, selectRate) {
  for (const p of PARALLELISMS) {
    const r = runs[`p${p}`];
    if (r)
      bench.results.add({
        section: 'parallelism',
        measure: `snapshot → jsonl, parallelism ${p}`,
        rows: r.rows,
        seconds: r.seconds,
        rate: rate(r.rows, r.seconds),
        ceiling: 'mysql2 SELECT *',
        ceilingRate: selectRate,
        peakRssMb: r.peakRssMb,
      });
  }
}
