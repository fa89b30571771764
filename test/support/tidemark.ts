import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const BIN = fileURLToPath(new URL('../../bin/tidemark', import.meta.url));

export function tempDir(prefix = 'tidemark-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Splits a `mysql://user:password@host:port` test URL into config keys. */
export function sourceFromUrl(url: string): { host: string; port: number; user: string; password: string } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) };
}

export function writeConfig(dir: string, config: Record<string, unknown>, file = 'tidemark.yaml'): string {
  const path = join(dir, file);
  writeFileSync(path, stringify(config));
  return path;
}

const running = new Set<ChildProcess>();

/**
 * Kills every tidemark process a test started and left running, as a failed assertion does: run after
 * each test (test/support/each-test.ts), so a failure cannot leave syncs behind to disturb later tests.
 */
export function killLeftovers(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

/** A running `tidemark` process, its log lines (JSON objects from stderr) and its exit. */
export class TidemarkProcess {
  readonly child: ChildProcess;
  readonly logs: Record<string, unknown>[] = [];
  stderr = '';
  stdout = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: { test: (l: Record<string, unknown>) => boolean; resolve: () => void }[] = [];

  /** `wrap` turns the command line into another that runs it, e.g. inside a network namespace. */
  constructor(args: string[], env: NodeJS.ProcessEnv = {}, wrap: (argv: string[]) => string[] = (argv) => argv) {
    const [cmd, ...argv] = wrap([process.execPath, BIN, ...args]);
    this.child = spawn(cmd!, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this.child);
    this.child.once('exit', () => running.delete(this.child));
    let partial = '';
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          this.logs.push(entry);
          const ready = this.waiters.filter((w) => w.test(entry));
          this.waiters = this.waiters.filter((w) => !ready.includes(w));
          for (const w of ready) w.resolve();
        } catch {
          // not a log line
        }
      }
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Resolves at the first log line (past or future) that matches; rejects if the process exits first. */
  waitForLog(test: (l: Record<string, unknown>) => boolean, timeoutMs = 120_000): Promise<void> {
    if (this.logs.some(test)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a log line; stderr:\n${this.stderr.slice(-3000)}`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      void this.exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`tidemark exited (${e.code ?? e.signal}) before the awaited log line; stderr:\n${this.stderr.slice(-3000)}`));
      });
    });
  }

  count(msg: string): number {
    return this.logs.filter((l) => l.msg === msg).length;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill(signal);
    return this.exited;
  }
}

export function tidemark(args: string[], env?: NodeJS.ProcessEnv, wrap?: (argv: string[]) => string[]): TidemarkProcess {
  return new TidemarkProcess(args, env, wrap);
}

/** Runs tidemark to completion and returns its exit code and output. */
export async function runTidemark(
  args: string[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 170_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string; logs: Record<string, unknown>[] }> {
  const p = new TidemarkProcess(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  return { code, signal, stderr: p.stderr, stdout: p.stdout, logs: p.logs };
}
