// How figures are shown in the tables and progress lines. A missing figure shows as '–'.

/** @param {number | null | undefined} n */
export const fmtInt = (n) => (n == null || !Number.isFinite(n) ? '–' : Math.round(n).toLocaleString('en-US'));

/** @param {number | null | undefined} r */
export const fmtRatio = (r) => (r == null || !Number.isFinite(r) ? '–' : r.toFixed(2));

/** @param {number | null | undefined} n milliseconds */
export const fmtMs = (n) => (n == null || !Number.isFinite(n) ? '–' : n < 10 ? n.toFixed(1) : Math.round(n).toString());

/**
 * Kilobytes as whole megabytes (MiB).
 * @param {number | null} kb
 */
export const mb = (kb) => (kb == null ? null : Math.round(kb / 1024));
