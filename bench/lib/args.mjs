// The command line of bench/run.mjs, checked: a bad option ends the run before anything is started.

import { resolve as resolvePath } from 'node:path';
import { parseArgs } from 'node:util';
import { fail, messageOf } from './log.mjs';

/** The sections --only chooses from, one bench/sections/<name>.mjs each. */
export const SECTION_NAMES = /** @type {const} */ (['snapshot', 'stream', 'latency', 'rss', 'parallelism', 'compression', 'postgres']);

/** @typedef {typeof SECTION_NAMES[number]} SectionName */

/**
 * @typedef {object} Options
 * @property {number} rows                           rows in the table, and row changes for the stream section
 * @property {'mysql' | 'mariadb'} flavour           the source server (--server)
 * @property {Set<SectionName>} only                 the chosen sections, in the order given
 * @property {number} latencySeconds                 measured seconds per latency run
 * @property {Record<string, unknown>} syncOverrides laid onto every sync config (--sync-config)
 * @property {string | undefined} cpuProf            an absolute folder for V8 CPU profiles of the sync runs
 * @property {string | undefined} out                the results file; else one under bench/results/
 */

const USAGE =
  'npm run bench -- [--rows 1000000] [--server mysql|mariadb] [--only snapshot,stream,latency,rss,parallelism,compression,postgres] [--latency-seconds 20] [--sync-config JSON] [--cpu-prof DIR] [--out file.json]';

/**
 * Parses and checks process.argv; prints the usage and exits for --help, exits with code 2 for a bad option.
 * @returns {Options}
 */
export function parseOptions() {
  const { values: args } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      server: { type: 'string', default: 'mysql' },
      only: { type: 'string', default: SECTION_NAMES.join(',') },
      'latency-seconds': { type: 'string', default: '20' },
      'sync-config': { type: 'string' },
      'cpu-prof': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (args.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const rows = Number(args.rows.replace(/[_,]/g, ''));
  const flavour = args.server;
  const only = args.only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const latencySeconds = Number(args['latency-seconds']);
  if (!Number.isInteger(rows) || rows < 10_000) fail(`--rows must be an integer of at least 10000, got ${args.rows}`);
  if (flavour !== 'mysql' && flavour !== 'mariadb') fail(`--server must be mysql or mariadb, got ${flavour}`);
  for (const s of only) if (!isSectionName(s)) fail(`--only: unknown section ${s} (known: ${SECTION_NAMES.join(', ')})`);
  if (!(latencySeconds >= 2)) fail('--latency-seconds must be at least 2');
  return {
    rows,
    flavour,
    only: new Set(only.filter(isSectionName)),
    latencySeconds,
    syncOverrides: parseSyncOverrides(args['sync-config']),
    cpuProf: args['cpu-prof'] ? resolvePath(args['cpu-prof']) : undefined,
    out: args.out,
  };
}

/**
 * @param {string} s
 * @returns {s is SectionName}
 */
function isSectionName(s) {
  return /** @type {readonly string[]} */ (SECTION_NAMES).includes(s);
}

/**
 * @param {string | undefined} json
 * @returns {Record<string, unknown>}
 */
function parseSyncOverrides(json) {
  const usage = `--sync-config must be a JSON object (e.g. '{"commit":{"maxDelayMs":50}}')`;
  if (!json) return {};
  /** @type {unknown} */
  let value;
  try {
    value = JSON.parse(json);
  } catch (err) {
    fail(`${usage}: ${messageOf(err)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${usage}, got ${json}`);
  return /** @type {Record<string, unknown>} */ (value);
}
