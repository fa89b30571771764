import cliProgress from 'cli-progress';
import { formatDuration } from './duration.js';
import type { Log } from './logger.js';
import type { SyncObserver } from './observer.js';

interface TableProgressState {
  name: string;
  estimate: number;
  rows: number;
}

function eta(remaining: number, rate: number): string {
  if (rate <= 0 || remaining <= 0) return '-';
  return formatDuration(Math.round(remaining / rate));
}

/**
 * Snapshot progress: a bar per table and one overall on a terminal, a log line every 10 s
 * otherwise. Rows/s and ETA come from the tables' row estimates (InnoDB's, so approximate).
 */
export class SnapshotProgress implements SyncObserver {
  private readonly tables = new Map<string, TableProgressState>();
  private bars: cliProgress.MultiBar | null = null;
  private readonly barOf = new Map<string, cliProgress.SingleBar>();
  private overall: cliProgress.SingleBar | null = null;
  private started = 0;
  private lastLog = 0;

  constructor(
    private readonly tty: boolean,
    private readonly log: Log,
  ) {}

  tablesPlanned(tables: { name: string; rowsEstimate: number | null; rowsDone: number; chunksTotal: number | null; chunksDone: number }[]): void {
    const pending = tables.filter((t) => t.chunksTotal === null || t.chunksDone < t.chunksTotal);
    if (pending.length === 0) return;
    this.started = Date.now();
    for (const t of pending) this.tables.set(t.name, { name: t.name, estimate: Math.max(t.rowsEstimate ?? 0, t.rowsDone, 1), rows: t.rowsDone });
    if (!this.tty) return;
    this.bars = new cliProgress.MultiBar(
      { format: ' {name} |{bar}| {value}/{total} rows | {rate} rows/s | ETA {eta_text}', hideCursor: true, clearOnComplete: false, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    for (const t of this.tables.values()) this.barOf.set(t.name, this.bars.create(t.estimate, t.rows, { name: t.name.padEnd(30), rate: 0, eta_text: '-' }));
    this.overall = this.bars.create(this.total().estimate, this.total().rows, { name: 'all tables'.padEnd(30), rate: 0, eta_text: '-' });
  }

  private total(): { rows: number; estimate: number } {
    let rows = 0;
    let estimate = 0;
    for (const t of this.tables.values()) {
      rows += t.rows;
      estimate += Math.max(t.estimate, t.rows);
    }
    return { rows, estimate };
  }

  chunkDone(table: string, rows: number): void {
    const t = this.tables.get(table);
    if (!t) return;
    t.rows += rows;
    const total = this.total();
    const rate = total.rows / Math.max(0.001, (Date.now() - this.started) / 1000);
    if (this.bars) {
      const bar = this.barOf.get(table)!;
      bar.setTotal(Math.max(t.estimate, t.rows));
      bar.update(t.rows, { rate: Math.round(rate), eta_text: eta(t.estimate - t.rows, rate) });
      this.overall!.setTotal(total.estimate);
      this.overall!.update(total.rows, { rate: Math.round(rate), eta_text: eta(total.estimate - total.rows, rate) });
    } else if (Date.now() - this.lastLog >= 10_000) {
      this.lastLog = Date.now();
      this.log('snapshot progress', {
        rows: total.rows,
        estimate: total.estimate,
        rowsPerSecond: Math.round(rate),
        eta: eta(total.estimate - total.rows, rate),
      });
    }
  }

  snapshotFinished(): void {
    this.bars?.stop();
    this.bars = null;
  }
}
