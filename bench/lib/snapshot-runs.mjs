// Snapshot runs of `tidemark sync`, shared by the snapshot, parallelism and rss sections.

import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TABLE } from './data.mjs';
import { mb } from './format.mjs';
import { say } from './log.mjs';
import { logAt, sinkConfig, startSync, syncConfig } from './sync-process.mjs';

/** @import { Bench } from './bench.mjs' */
/** @import { Measured } from './stats.mjs' */
/** @import { SinkType } from './sync-process.mjs' */

/**
 * One snapshot: rows and seconds from 'snapshot starting' to 'snapshot complete', the sync's peak memory,
 * and the jsonl file it wrote (null for other sinks) with its size.
 * @typedef {object} SnapshotRun
 * @property {number} rows
 * @property {number} seconds
 * @property {number | null} peakRssMb
 * @property {string | null} out
 * @property {number | null} bytes
 */

/**
 * The snapshot runs of one bench run, by what they are: the snapshot section's one per sink (and the kafkajs
 * ceiling for the kafka one), parallelism's p1, p2, p4 (p2 is the jsonl run when there is one: the default),
 * and rss's run of a table a tenth the size.
 * @typedef {object} SnapshotRuns
 * @property {SnapshotRun} [null]
 * @property {SnapshotRun} [jsonl]
 * @property {SnapshotRun} [kafka]
 * @property {Measured} [kafkajs]
 * @property {SnapshotRun} [p1]
 * @property {SnapshotRun} [p2]
 * @property {SnapshotRun} [p4]
 * @property {SnapshotRun} [small]
 * @property {SnapshotRun} [postgres]  the postgres section's snapshot
 * @property {Measured} [postgresCopy]  and its plain COPY ceiling
 * @property {Record<string, { sync: SnapshotRun, kafkajs: Measured }>} [codecs]  the compression section's, by sink.compression
 */

/**
 * One `sync --until-caught-up` with snapshot.mode initial_only: the time from 'snapshot starting' to 'snapshot complete'.
 * @param {Bench} bench
 * @param {string} tag
 * @param {SinkType} sinkType
 * @param {{ parallelism?: number, table?: string, compression?: string }} [settings]  compression: the kafka sink's
 * @returns {Promise<SnapshotRun>}
 */
export async function snapshotRun(bench, tag, sinkType, { parallelism, table = TABLE, compression } = {}) {
  const sink = sinkConfig(bench, sinkType, tag);
  if (compression && sink.type === 'kafka') sink.compression = compression;
  const cfg = syncConfig(bench, tag, { table, mode: 'initial_only', parallelism, sink });
  say(`snapshot → ${sinkType}${parallelism ? ` (parallelism ${parallelism})` : ''} of ${table}`);
  const run = await startSync(bench, cfg.path, { untilCaughtUp: true }).done;
  const start = logAt(run.logs, 'snapshot starting');
  const end = logAt(run.logs, 'snapshot complete');
  if (end.rows === undefined) throw new Error(`'snapshot complete' logged no rows: ${JSON.stringify(end)}`);
  const seconds = (end.atMs - start.atMs) / 1000;
  const out = sinkType === 'jsonl' ? join(cfg.dir, 'out.jsonl') : null;
  return { rows: end.rows, seconds, peakRssMb: mb(run.peakRssKb), out, bytes: out ? statSync(out).size : null };
}

/**
 * Removes the jsonl files of the runs.
 * @param {SnapshotRuns} runs
 */
export function removeOutputs(runs) {
  for (const r of Object.values(runs)) if ('out' in r && typeof r.out === 'string') rmSync(r.out, { force: true });
}
