// Section snapshot: the initial snapshot into each sink against the mysql2 SELECT * ceiling, and the Kafka
// sink's exactly-once snapshot against kafkajs producing the same records without transactions.

import { kafkajsCeiling } from '../lib/ceilings.mjs';
import { fmtInt } from '../lib/format.mjs';
import { say } from '../lib/log.mjs';
import { ceilingRow } from '../lib/results.mjs';
import { snapshotRun } from '../lib/snapshot-runs.mjs';
import { rate } from '../lib/stats.mjs';

/** @import { Bench } from '../lib/bench.mjs' */
/** @import { SnapshotRun, SnapshotRuns } from '../lib/snapshot-runs.mjs' */

export const name = 'snapshot';

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs  gets null, jsonl, kafka and kafkajs
 */
export async function run(bench, runs) {
  runs.null = await snapshotRun(bench, 'snap-null', 'null');
  const jsonl = await snapshotRun(bench, 'snap-jsonl', 'jsonl');
  runs.jsonl = jsonl;
  runs.kafka = await snapshotRun(bench, 'snap-kafka', 'kafka');
  say('kafkajs ceiling: producing the records of the jsonl snapshot');
  if (!jsonl.out) throw new Error('the jsonl snapshot has no output file');
  const raw = await kafkajsCeiling(bench, jsonl.out);
  say(`kafkajs without transactions: ${fmtInt(raw.rows)} records in ${raw.seconds.toFixed(2)} s`);
  runs.kafkajs = raw;
}

/**
 * The section's rows for the snapshots there are. The jsonl one is there after rss alone as well.
 * @param {Bench} bench
 * @param {SnapshotRuns} runs
 * @param {number} selectRate  the mysql2 SELECT * ceiling, rows/s
 */
export function record(bench, runs, selectRate) {
  /**
   * @param {string} measure
   * @param {SnapshotRun} r
   * @param {{ bytes?: number | null }} [extra]
   */
  const snapRow = (measure, r, extra = {}) =>
    bench.results.add({
      section: 'snapshot',
      measure,
      rows: r.rows,
      seconds: r.seconds,
      rate: rate(r.rows, r.seconds),
      ceiling: 'mysql2 SELECT *',
      ceilingRate: selectRate,
      peakRssMb: r.peakRssMb,
      ...extra,
    });
  if (runs.null) snapRow('snapshot → null', runs.null);
  if (runs.jsonl) snapRow('snapshot → jsonl', runs.jsonl, { bytes: runs.jsonl.bytes });
  const k = runs.kafka;
  const raw = runs.kafkajs;
  if (k && raw) {
    bench.results.add({ ...ceilingRow('kafkajs producing the same records, no transactions', raw), ceilingRate: null });
    snapRow('snapshot → kafka (exactly-once)', k);
    bench.results.add({
      section: 'snapshot',
      measure: 'snapshot → kafka (exactly-once) vs kafkajs',
      rows: k.rows,
      seconds: k.seconds,
      rate: rate(k.rows, k.seconds),
      ceiling: 'kafkajs, no transactions',
      ceilingRate: rate(raw.rows, raw.seconds),
    });
  }
}
