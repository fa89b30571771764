// Section stream: streaming the binlog into each sink against zongji decoding the same binlog range.

import { createReadStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { binlogCeiling } from '../lib/ceilings.mjs';
import { binlogHas, binlogPosition, TABLE } from '../lib/data.mjs';
import { fmtInt, mb } from '../lib/format.mjs';
import { say } from '../lib/log.mjs';
import { ceilingRow } from '../lib/results.mjs';
import { fastest, rate } from '../lib/stats.mjs';
import { logAt, sinkConfig, startSync, syncConfig } from '../lib/sync-process.mjs';

/** @import { Bench } from '../lib/bench.mjs' */
/** @import { Position } from '../lib/data.mjs' */
/** @import { Measured } from '../lib/stats.mjs' */
/** @import { SinkType, SyncConfigFile } from '../lib/sync-process.mjs' */

export const name = 'stream';

const SINKS = /** @type {const} */ (['null', 'jsonl', 'kafka']);

/** Thrown when the binlog range under measurement was purged by another client of the shared test server. */
class BinlogGone extends Error {}

/**
 * Runs `fn`, and turns its failure into BinlogGone when the binlog file it reads has been purged.
 * @typedef {<T>(what: string, fn: () => Promise<T>) => Promise<T>} Guard
 */

/** @param {Bench} bench */
export async function run(bench) {
  // The test suite purges binlogs on the same servers (snapshot.mode when_needed tests): if that takes the
  // range away mid-section, the section starts over with fresh connectors and freshly written changes.
  for (let attempt = 1; ; attempt++) {
    try {
      await measureStreaming(bench, attempt);
      break;
    } catch (err) {
      if (!(err instanceof BinlogGone) || attempt >= 3) throw err;
      say(`stream: ${err.message}; starting the section again`);
      bench.results.note(`stream section attempt ${attempt} lost its binlog range to a PURGE by another client`);
    }
  }
}

/**
 * @param {Bench} bench
 * @param {number} attempt
 */
async function measureStreaming(bench, attempt) {
  const configs = await startConnectors(bench, attempt);
  const { from, to } = await writeChanges(bench);
  /** @type {Guard} */
  const guarded = async (what, fn) => {
    if (!(await binlogHas(bench, from.file))) throw new BinlogGone(`${from.file} was purged before ${what}`);
    try {
      return await fn();
    } catch (err) {
      if (!(await binlogHas(bench, from.file))) throw new BinlogGone(`${from.file} was purged during ${what}`);
      throw err;
    }
  };
  /** @type {Measured[]} */
  const zongjis = [];
  const measureZongji = async () => {
    const z = await guarded('zongji', () => binlogCeiling(bench, from, to));
    zongjis.push(z);
    say(`zongji: ${fmtInt(z.rows)} rows in ${z.seconds.toFixed(2)} s`);
  };
  // Once unmeasured: the first read of the binlog pulls it into the page cache.
  await guarded('zongji', () => binlogCeiling(bench, from, to));
  await measureZongji();
  const streamed = await streamEach(bench, configs, guarded);
  await measureZongji();
  record(bench, zongjis, streamed);
}

/**
 * Each connector first runs with snapshot.mode never, which records the current binlog position as its
 * start and exits once caught up. The row changes are written after that, so the next run streams them.
 * @param {Bench} bench
 * @param {number} attempt
 */
async function startConnectors(bench, attempt) {
  /** @type {Partial<Record<SinkType, SyncConfigFile>>} */
  const configs = {};
  for (const sinkType of SINKS) {
    const tag = `stream-${sinkType}-${attempt}`;
    const cfg = syncConfig(bench, tag, { mode: 'never', sink: sinkConfig(bench, sinkType, tag) });
    configs[sinkType] = cfg;
    await startSync(bench, cfg.path, { untilCaughtUp: true }).done;
  }
  return /** @type {Record<SinkType, SyncConfigFile>} */ (configs);
}

/**
 * One UPDATE per 10,000 ids: --rows row changes in the binlog, in 10,000-row transactions.
 * @param {Bench} bench
 * @returns {Promise<{ from: Position, to: Position }>}  the binlog range they are in
 */
async function writeChanges(bench) {
  const rows = bench.options.rows;
  const from = await binlogPosition(bench);
  const t0 = performance.now();
  for (let start = 1; start <= rows; start += 10_000)
    await bench.conn.query(`UPDATE ${bench.db}.${TABLE} SET k = k + 1 WHERE id >= ? AND id < ?`, [start, start + 10_000]);
  const to = await binlogPosition(bench);
  say(
    `wrote ${fmtInt(rows)} row changes (UPDATEs of 10,000 rows) in ${((performance.now() - t0) / 1000).toFixed(1)} s, binlog ${from.file}:${from.pos} → ${to.file}:${to.pos}`,
  );
  return { from, to };
}

/**
 * Each connector streaming the changes: the time from its 'streaming' to its 'caught up'.
 * @param {Bench} bench
 * @param {Record<SinkType, SyncConfigFile>} configs
 * @param {Guard} guarded
 */
async function streamEach(bench, configs, guarded) {
  const expected = bench.options.rows;
  /** @type {Partial<Record<SinkType, Measured & { peakRssMb: number | null }>>} */
  const streamed = {};
  for (const sinkType of SINKS) {
    say(`streaming → ${sinkType}`);
    const run = await guarded(`streaming → ${sinkType}`, () => startSync(bench, configs[sinkType].path, { untilCaughtUp: true }).done);
    const start = logAt(run.logs, 'streaming');
    const end = logAt(run.logs, 'caught up');
    let rows = expected;
    if (sinkType === 'jsonl') {
      const out = join(configs.jsonl.dir, 'out.jsonl');
      rows = await countLines(out);
      if (rows !== expected) bench.results.note(`streaming → jsonl wrote ${rows} lines for ${expected} row changes`);
      rmSync(out, { force: true });
    }
    streamed[sinkType] = { rows, seconds: (end.atMs - start.atMs) / 1000, peakRssMb: mb(run.peakRssKb) };
  }
  return streamed;
}

/**
 * @param {Bench} bench
 * @param {Measured[]} zongjis
 * @param {Partial<Record<SinkType, Measured & { peakRssMb: number | null }>>} streamed
 */
function record(bench, zongjis, streamed) {
  const expected = bench.options.rows;
  const best = fastest(zongjis);
  if (best.rows !== expected) bench.results.note(`zongji saw ${best.rows} rows for ${expected} row changes`);
  const ceil = rate(best.rows, best.seconds);
  bench.results.add({ ...ceilingRow('zongji decoding the same binlog range', best), ceilingRate: null, runs: zongjis.map((z) => rate(z.rows, z.seconds)) });
  for (const [sinkType, r] of Object.entries(streamed)) {
    bench.results.add({
      section: 'stream',
      measure: `streaming → ${sinkType}${sinkType === 'kafka' ? ' (exactly-once)' : ''}`,
      rows: r.rows,
      seconds: r.seconds,
      rate: rate(r.rows, r.seconds),
      ceiling: 'zongji',
      ceilingRate: ceil,
      peakRssMb: r.peakRssMb,
    });
  }
}

/**
 * Lines in a file, counted without holding it.
 * @param {string} path
 */
async function countLines(path) {
  let n = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
  }
  return n;
}
