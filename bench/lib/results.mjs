// What the sections measured, as the results file keeps it (results, latency, notes and fsyncMs).

import { fmtInt, fmtRatio } from './format.mjs';
import { say } from './log.mjs';
import { rate } from './stats.mjs';

/** @import { Measured } from './stats.mjs' */

/**
 * One line of the throughput table. Key order is the results file's.
 * @typedef {object} ResultRow
 * @property {'ceiling' | 'snapshot' | 'stream' | 'parallelism' | 'rss' | 'compression' | 'postgres'} section
 * @property {string} measure
 * @property {number} rows
 * @property {number} seconds
 * @property {number} rate              rows/s
 * @property {string} [ceiling]         what `rate` is compared with
 * @property {number | null} [ceilingRate]
 * @property {number | null} [peakRssMb]
 * @property {number | null} [bytes]    of the output
 * @property {number[]} [runs]          a ceiling's rate in each of its measurements
 */

/**
 * One line of the latency table, commit → visible in the sink, in ms.
 * @typedef {object} LatencyRow
 * @property {string} sink
 * @property {number | null} targetRate
 * @property {number} achievedRate
 * @property {number} rows              rows counted
 * @property {number} lost              rows never seen in the sink
 * @property {number | undefined} p50
 * @property {number | undefined} p99
 * @property {number | undefined} max
 * @property {number | undefined} [insertP50]  the writer's INSERT round trip
 * @property {number | undefined} [insertP99]
 * @property {number | null} [peakRssMb]
 */

/** @typedef {{ p50: number | undefined, p99: number | undefined }} FsyncCost */

export class Results {
  /** @type {ResultRow[]} */
  rows = [];
  /** @type {LatencyRow[]} */
  latency = [];
  /** @type {FsyncCost | null} fsync of a small append on the disk of the jsonl output (latency section) */
  fsyncMs = null;
  /** @type {string[]} anything a reader of the figures should know */
  notes = [];

  /**
   * Keeps a row of the throughput table and says it.
   * @param {ResultRow} r
   */
  add(r) {
    this.rows.push(r);
    const ratio = r.ceilingRate ? ` = ${fmtRatio(r.rate / r.ceilingRate)} of ${r.ceiling}` : '';
    say(
      `${r.section}: ${r.measure}: ${fmtInt(r.rows)} rows in ${r.seconds.toFixed(2)} s, ${fmtInt(r.rate)} rows/s${ratio}${r.peakRssMb ? `, peak RSS ${r.peakRssMb} MB` : ''}`,
    );
  }

  /** @param {string} text */
  note(text) {
    this.notes.push(text);
  }
}

/**
 * A ceiling's row of the throughput table.
 * @param {string} name
 * @param {Measured} m
 * @returns {ResultRow}
 */
export const ceilingRow = (name, m) => ({ section: 'ceiling', measure: name, rows: m.rows, seconds: m.seconds, rate: rate(m.rows, m.seconds) });
