// Rates, percentiles and the best of repeated measurements.

/**
 * A count of rows over a time.
 * @typedef {object} Measured
 * @property {number} rows
 * @property {number} seconds
 */

/**
 * @param {number} rows
 * @param {number} seconds
 */
export const rate = (rows, seconds) => rows / seconds;

/**
 * The fastest of repeated measurements of the same thing (there must be at least one).
 * @template {Measured} M
 * @param {M[]} measurements
 * @returns {M}
 */
export function fastest(measurements) {
  return measurements.reduce((a, b) => (rate(b.rows, b.seconds) > rate(a.rows, a.seconds) ? b : a));
}

/**
 * The q-quantile (nearest rank) of ascending values; undefined when there are none.
 * @param {ArrayLike<number>} sorted
 * @param {number} q
 */
export function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
