// Section compression: the exactly-once snapshot into Kafka with each sink.compression, each against kafkajs
// producing the same records with the same codec and no transactions.

import { kafkajsCeiling } from '../lib/ceilings.mjs';
import { fmtInt } from '../lib/format.mjs';
import { say } from '../lib/log.mjs';
import { snapshotRun } from '../lib/snapshot-runs.mjs';
import { rate } from '../lib/stats.mjs';

/** @import { Bench } from '../lib/bench.mjs' */
/** @import { SnapshotRuns } from '../lib/snapshot-runs.mjs' */

export const name = 'compression';

const CODECS = /** @type {const} */ (['none', 'gzip', 'snappy', 'lz4', 'zstd']);

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs  gets codecs, and jsonl unless another section made one (the ceilings send its records)
 */
export async function run(bench, runs) {
  if (!runs.jsonl?.out) runs.jsonl = await snapshotRun(bench, 'snap-jsonl', 'jsonl');
  const out = runs.jsonl.out;
  if (!out) throw new Error('the jsonl snapshot has no output file');
  runs.codecs = {};
  for (const codec of CODECS) {
    // The snapshot section's kafka run is this section's "none", measured the same way.
    const sync = codec === 'none' && runs.kafka ? runs.kafka : await snapshotRun(bench, `snap-kafka-${codec}`, 'kafka', { compression: codec });
    const kafkajs = codec === 'none' && runs.kafkajs ? runs.kafkajs : await kafkajsCeiling(bench, out, codec);
    say(`kafkajs ${codec}, without transactions: ${fmtInt(kafkajs.rows)} records in ${kafkajs.seconds.toFixed(2)} s`);
    runs.codecs[codec] = { sync, kafkajs };
  }
}

/**
 * @param {Bench} bench
 * @param {SnapshotRuns} runs
 */
export function record(bench, runs) {
  for (const [codec, { sync, kafkajs }] of Object.entries(runs.codecs ?? {})) {
    bench.results.add({
      section: 'compression',
      measure: `snapshot → kafka (exactly-once), compression ${codec}`,
      rows: sync.rows,
      seconds: sync.seconds,
      rate: rate(sync.rows, sync.seconds),
      ceiling: `kafkajs ${codec}, no transactions`,
      ceilingRate: rate(kafkajs.rows, kafkajs.seconds),
      peakRssMb: sync.peakRssMb,
    });
  }
}
