// tidemark's benchmark (issue 6): every figure next to a ceiling measured in the same run, on the same data and
// the same servers, so that machine noise and server settings cancel out of the ratios.
//
//   npm run bench -- [--rows 1000000] [--server mysql|mariadb] [--only snapshot,stream,latency,rss,parallelism,compression,postgres]
//                    [--latency-seconds 20] [--out file.json]
//                    [--sync-config '{"commit":{"maxDelayMs":50}}']   laid onto every sync config, to try settings
//                    [--cpu-prof DIR]                                 a V8 CPU profile of every sync run
//
// Servers: TIDEMARK_TEST_MYSQL_URL / TIDEMARK_TEST_MARIADB_URL / TIDEMARK_TEST_KAFKA_BROKERS when set, else
// containers or the local test servers, exactly as the tests find them. Needs dist/ (npm run build).
// Prints markdown tables and writes bench/results/<date>-<host>.json. Never part of npm test. See docs/performance.md.
//
// One file per section in bench/sections/; bench/lib/ has what they share: the options (args), the run's
// servers, copy of dist/ and cleanup (bench), the table (data), the sync processes (sync-process), the
// ceilings, the sink observers, the results and the report.

import { parseOptions } from './lib/args.mjs';
import { openBench } from './lib/bench.mjs';
import { measureSelect, selectCeiling } from './lib/ceilings.mjs';
import { createTable, fill, serverVersion, TABLE } from './lib/data.mjs';
import { fmtInt } from './lib/format.mjs';
import { say } from './lib/log.mjs';
import { writeReport } from './lib/report.mjs';
import { ceilingRow } from './lib/results.mjs';
import { removeOutputs } from './lib/snapshot-runs.mjs';
import { fastest, rate } from './lib/stats.mjs';
import * as compression from './sections/compression.mjs';
import * as latency from './sections/latency.mjs';
import * as parallelism from './sections/parallelism.mjs';
import * as postgres from './sections/postgres.mjs';
import * as rss from './sections/rss.mjs';
import * as snapshot from './sections/snapshot.mjs';
import * as stream from './sections/stream.mjs';

/** @import { Bench } from './lib/bench.mjs' */
/** @import { SourceFacts } from './lib/report.mjs' */
/** @import { SnapshotRuns } from './lib/snapshot-runs.mjs' */

// In the order they run. The snapshot sections share one mysql2 SELECT * ceiling, measured before and after
// them all; parallelism, rss and compression reuse the snapshot section's jsonl run where there is one.
const SNAPSHOT_SECTIONS = [snapshot, parallelism, rss, compression, postgres];
const OTHER_SECTIONS = [stream, latency];

const bench = await openBench(parseOptions());
try {
  const source = await prepareSource(bench);
  await runSnapshotSections(bench);
  for (const section of OTHER_SECTIONS) if (bench.options.only.has(section.name)) await section.run(bench);
  await writeReport(bench, source);
} finally {
  await bench.close();
}

/**
 * The database and the filled table, and one unmeasured read of it.
 * @param {Bench} bench
 * @returns {Promise<SourceFacts>}
 */
async function prepareSource(bench) {
  const { options, source, brokers } = bench;
  const { version, comment } = await serverVersion(bench);
  say(`${options.flavour} ${version} at ${source.host}:${source.port}${brokers ? `, kafka at ${brokers.join(',')}` : ''}, work dir ${bench.work}`);
  await bench.conn.query(`CREATE DATABASE ${bench.db}`);
  await createTable(bench, TABLE);
  const t0 = performance.now();
  await fill(bench, TABLE, options.rows);
  const fillSeconds = (performance.now() - t0) / 1000;
  say(`filled ${bench.db}.${TABLE} with ${fmtInt(options.rows)} rows in ${fillSeconds.toFixed(1)} s`);
  // The first full read also pulls the table into the buffer pool and page cache; it is not counted.
  say('warming up: one unmeasured SELECT *');
  await selectCeiling(bench);
  return { serverVersion: version, serverComment: comment, fillSeconds };
}

/**
 * The chosen snapshot sections between two reads of the mysql2 SELECT * ceiling. The faster read is the
 * ceiling, so drift or a noisy neighbour during one of them can only make tidemark's ratios look worse.
 * @param {Bench} bench
 */
async function runSnapshotSections(bench) {
  const chosen = SNAPSHOT_SECTIONS.filter((s) => bench.options.only.has(s.name));
  if (chosen.length === 0) return;
  const selects = [await measureSelect(bench)];
  /** @type {SnapshotRuns} */
  const runs = {};
  for (const section of chosen) await section.run(bench, runs);
  selects.push(await measureSelect(bench));
  const best = fastest(selects);
  bench.results.add({ ...ceilingRow('mysql2 streaming SELECT * (1 connection)', best), ceilingRate: null, runs: selects.map((s) => rate(s.rows, s.seconds)) });
  // Every snapshot section's rows, chosen or not: with rss alone, its full-size run shows as 'snapshot → jsonl' too.
  for (const section of SNAPSHOT_SECTIONS) section.record(bench, runs, rate(best.rows, best.seconds));
  removeOutputs(runs);
}
