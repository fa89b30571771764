// `tidemark sync` runs as the bench starts them: their configs, their processes, their log lines and memory.

import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { TABLE } from './data.mjs';
import { ROOT } from './paths.mjs';

/** @import { ChildProcess } from 'node:child_process' */
/** @import { Bench } from './bench.mjs' */

/** @typedef {'null' | 'jsonl' | 'kafka' | 'postgres'} SinkType */

/**
 * The sink of a bench sync config.
 * @typedef {{ type: 'discard' } | { type: 'jsonl', path: string } | { type: 'kafka', brokers: string[] | undefined, topicPrefix: string, exactlyOnce: true, compression?: string } | { type: 'postgres', url: string | undefined, schema: string }} SinkConfig
 */

/**
 * A sync config on disk: its file, its folder (checkpoint, jsonl output) and the connector's name.
 * @typedef {{ path: string, dir: string, name: string }} SyncConfigFile
 */

/**
 * A JSON log line of tidemark, with the time it was logged.
 * @typedef {{ msg: string, time?: string, atMs: number, rows?: number }} LogLine
 */

/**
 * A sync that exited 0.
 * @typedef {object} SyncRun
 * @property {number | null} code
 * @property {LogLine[]} logs
 * @property {number | null} peakRssKb  the highest resident set seen, VmHWM included
 */

/**
 * A running sync.
 * @typedef {object} SyncProcess
 * @property {number | undefined} pid
 * @property {Promise<SyncRun>} done    rejects when the sync exits other than 0, or is killed after timeoutMs
 * @property {LogLine[]} logs           so far
 * @property {(msg: string) => Promise<LogLine>} waitFor  the first line with this message, logged already or not
 * @property {() => void} stop          SIGTERM
 */

/** The syncs running now, killed when the bench ends. */
const children = /** @type {Set<ChildProcess>} */ (new Set());

export function killChildren() {
  for (const p of children) p.kill('SIGKILL');
}

/**
 * The sink config for a run tagged `tag`: jsonl writes into the run's folder, kafka to topics of its own.
 * @param {Bench} bench
 * @param {SinkType} type
 * @param {string} tag
 * @returns {SinkConfig}
 */
export function sinkConfig(bench, type, tag) {
  if (type === 'null') return { type: 'discard' };
  if (type === 'jsonl') return { type: 'jsonl', path: join(bench.work, tag, 'out.jsonl') };
  if (type === 'postgres') return { type: 'postgres', url: bench.servers.postgresUrl, schema: postgresSchema(bench) };
  return { type: 'kafka', brokers: bench.brokers, topicPrefix: `bench-${bench.runId}-${tag}`, exactlyOnce: true };
}

/**
 * `over` laid onto `base`, mappings merged key by key, anything else replaced: for --sync-config.
 * @param {unknown} base
 * @param {unknown} over
 * @returns {unknown}
 */
export function merge(base, over) {
  /** @type {(v: unknown) => v is Record<string, unknown>} */
  const isMap = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isMap(base) || !isMap(over)) return over;
  /** @type {Record<string, unknown>} */
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? merge(base[k], v) : v;
  return out;
}

/**
 * The PostgreSQL schema of the run's postgres sink: its own, dropped at the end of the section.
 * @param {Bench} bench
 */
export const postgresSchema = (bench) => `bench_${bench.runId}`;

let nextServerId = 9800;

/**
 * A sync config as tidemark reads it (JSON is YAML); every run gets its own checkpoint and server ids.
 * @param {Bench} bench
 * @param {string} tag   names the run's folder and connector
 * @param {{ table?: string, mode: 'initial_only' | 'never', parallelism?: number, sink: SinkConfig }} settings
 * @returns {SyncConfigFile}
 */
export function syncConfig(bench, tag, { table = TABLE, mode, parallelism, sink }) {
  const dir = join(bench.work, tag);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'config.yaml');
  const name = `bench-${bench.runId}-${tag}`;
  // Each run holds serverId .. serverId + parallelism; keep them apart so no run drops another's binlog connection.
  const serverId = nextServerId;
  nextServerId += 8;
  /** @type {{ mode: string, parallelism?: number }} */
  const snapshot = { mode };
  if (parallelism !== undefined) snapshot.parallelism = parallelism;
  const source = { ...bench.source, tables: [`${bench.db}.${table}`], serverId };
  const config = { name, source, snapshot, checkpoint: { path: join(dir, 'checkpoint.sqlite') }, sink };
  writeFileSync(path, JSON.stringify(merge(config, bench.options.syncOverrides)));
  return { path, dir, name };
}

/**
 * Starts `tidemark sync` (of the run's copy of dist/) as its own process, collects its JSON log lines and
 * samples its memory every 100 ms.
 * @param {Bench} bench
 * @param {string} configPath
 * @param {{ untilCaughtUp: boolean, timeoutMs?: number }} how
 * @returns {SyncProcess}
 */
export function startSync(bench, configPath, { untilCaughtUp, timeoutMs = 60_000 + bench.options.rows }) {
  const p = spawn(process.execPath, syncArgv(bench, configPath, untilCaughtUp), { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(p);
  const log = new SyncLog();
  const memory = sampleMemory(p.pid);
  p.stderr.on('data', (d) => log.take(d));
  const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
  /** @type {Promise<SyncRun>} */
  const done = new Promise((resolve, reject) => {
    p.on('exit', (code, signal) => {
      const peakRssKb = memory.stop();
      clearTimeout(timer);
      children.delete(p);
      log.end();
      if (code === 0) resolve({ code, logs: log.lines, peakRssKb });
      else reject(new Error(`sync ${configPath} exited ${code ?? signal}: ${JSON.stringify(log.lines.slice(-4))}`));
    });
  });
  return {
    pid: p.pid,
    done,
    logs: log.lines,
    waitFor: (msg) => log.waitFor(msg),
    stop: () => {
      p.kill('SIGTERM');
    },
  };
}

/**
 * @param {Bench} bench
 * @param {string} configPath
 * @param {boolean} untilCaughtUp
 */
function syncArgv(bench, configPath, untilCaughtUp) {
  const dir = bench.options.cpuProf;
  // --cpu-prof: one V8 profile per sync run, named after the run (its config's folder), for finding hot spots.
  const prof = dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${basename(dirname(configPath))}.cpuprofile`] : [];
  const argv = [...prof, join(bench.code, 'bin/tidemark'), 'sync', '-c', configPath];
  if (untilCaughtUp) argv.push('--until-caught-up');
  return argv;
}

/**
 * The JSON lines a sync logs on stderr, parsed as they arrive, and who waits for which message.
 */
class SyncLog {
  /** @type {LogLine[]} */
  lines = [];
  /** @type {{ msg: string, resolve: (line: LogLine) => void, reject: (err: Error) => void }[]} */
  waiters = [];
  rest = '';

  /** @param {Buffer | string} chunk */
  take(chunk) {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.startsWith('{')) continue;
      /** @type {LogLine} */
      let entry;
      try {
        entry = JSON.parse(l);
      } catch {
        continue;
      }
      // pino's own timestamp: when tidemark logged it, not when this process got around to reading the pipe.
      entry.atMs = entry.time ? Date.parse(entry.time) : Date.now();
      this.lines.push(entry);
      for (const w of [...this.waiters])
        if (w.msg === entry.msg) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(entry);
        }
    }
  }

  /** The process exited: nobody waits any longer. */
  end() {
    for (const w of this.waiters) w.reject(new Error(`sync exited before logging '${w.msg}'`));
  }

  /**
   * @param {string} msg
   * @returns {Promise<LogLine>}
   */
  waitFor(msg) {
    const seen = this.lines.find((l) => l.msg === msg);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => this.waiters.push({ msg, resolve, reject }));
  }
}

/**
 * The first log line with message `msg`.
 * @param {LogLine[]} logs
 * @param {string} msg
 */
export const logAt = (logs, msg) => {
  const l = logs.find((x) => x.msg === msg);
  if (!l) throw new Error(`no '${msg}' log line; last lines: ${JSON.stringify(logs.slice(-4))}`);
  return l;
};

/**
 * Samples a process's memory every 100 ms until stop(), which returns the peak in kB (null when never read).
 * VmHWM is the kernel's own high-water mark of the resident set, so sampling can only miss the last 100 ms.
 * @param {number | undefined} pid
 */
function sampleMemory(pid) {
  let peakKb = 0;
  const sample = setInterval(() => {
    const s = readProcStatus(pid);
    if (s) peakKb = Math.max(peakKb, s.hwm || 0, s.rss || 0);
  }, 100);
  return {
    stop: () => {
      clearInterval(sample);
      return peakKb || null;
    },
  };
}

/**
 * VmHWM and VmRSS of a process, in kB; null when it has gone.
 * @param {number | undefined} pid
 */
function readProcStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    /** @param {string} key */
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return null;
  }
}
