import { createServer, type Server } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { SyncObserver } from './observer.js';

/**
 * Prometheus metrics of one connector, and the HTTP endpoint that serves them with /healthz
 * (the process runs) and /readyz (connected and snapshotting or streaming).
 */
export class Metrics implements SyncObserver {
  readonly registry = new Registry();
  private ready = false;
  /** Source connections lost and not yet re-established (the binlog stream's, chunk readers'). */
  private outages = 0;
  private lastCommitMs: number | undefined;
  private lastSourceTsMs: number | undefined;
  private readonly rows = new Counter({
    name: 'tidemark_snapshot_rows_total',
    help: 'Rows read by the snapshot',
    labelNames: ['table'],
    registers: [this.registry],
  });
  private readonly chunksDone = new Gauge({
    name: 'tidemark_snapshot_chunks_done',
    help: 'Chunks of the current snapshot done',
    labelNames: ['table'],
    registers: [this.registry],
  });
  private readonly chunksTotal = new Gauge({
    name: 'tidemark_snapshot_chunks_total',
    help: 'Chunks of the current snapshot (-1 while still splitting)',
    labelNames: ['table'],
    registers: [this.registry],
  });
  private readonly events = new Counter({
    name: 'tidemark_stream_events_total',
    help: 'Change events streamed from the binlog',
    labelNames: ['op'],
    registers: [this.registry],
  });
  private readonly lagBytes = new Gauge({
    name: 'tidemark_lag_bytes',
    help: 'Binlog bytes between the last commit and the server position',
    registers: [this.registry],
  });
  private readonly deadLetters = new Counter({
    name: 'tidemark_dead_letters_total',
    help: 'Records written to the dead letters (errors.mode: dead-letter)',
    labelNames: ['table', 'reason'],
    registers: [this.registry],
  });
  private readonly reconnects = new Counter({
    name: 'tidemark_reconnects_total',
    help: 'Source connections re-established (binlog stream, chunk readers)',
    registers: [this.registry],
  });
  private readonly errors = new Counter({ name: 'tidemark_errors_total', help: 'Errors that stopped or interrupted sync', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'tidemark_process_' });
    const self = this;
    new Gauge({
      name: 'tidemark_lag_seconds',
      help: 'Now minus the source commit time of the last committed transaction',
      registers: [this.registry],
      collect() {
        if (self.lastSourceTsMs !== undefined) this.set(Math.max(0, (Date.now() - self.lastSourceTsMs) / 1000));
      },
    });
    new Gauge({
      name: 'tidemark_last_commit_age_seconds',
      help: 'Seconds since the last sink commit',
      registers: [this.registry],
      collect() {
        if (self.lastCommitMs !== undefined) this.set((Date.now() - self.lastCommitMs) / 1000);
      },
    });
  }

  tablesPlanned(tables: { name: string; rowsDone: number; chunksDone: number; chunksTotal: number | null }[]): void {
    this.ready = true;
    for (const t of tables) {
      this.chunksDone.set({ table: t.name }, t.chunksDone);
      this.chunksTotal.set({ table: t.name }, t.chunksTotal ?? -1);
    }
  }

  chunkDone(table: string, rows: number, chunksDone: number, chunksTotal: number | null): void {
    this.rows.inc({ table }, rows);
    this.chunksDone.set({ table }, chunksDone);
    this.chunksTotal.set({ table }, chunksTotal ?? -1);
  }

  streaming(): void {
    this.ready = true;
  }

  streamed(op: string, count: number): void {
    this.events.inc({ op }, count);
  }

  committed(sourceTsMs: number | undefined, bytesBehind?: number): void {
    this.lastCommitMs = Date.now();
    if (sourceTsMs !== undefined) this.lastSourceTsMs = sourceTsMs;
    if (bytesBehind !== undefined) this.lagBytes.set(bytesBehind);
  }

  deadLettered(table: string, reason: string): void {
    this.deadLetters.inc({ table, reason });
  }

  disconnected(): void {
    this.outages++;
  }

  reconnected(): void {
    this.reconnects.inc();
    this.outages = Math.max(0, this.outages - 1);
  }

  failed(): void {
    this.errors.inc();
    this.ready = false;
  }

  /** Connected and snapshotting or streaming: no source connection is being re-established. */
  private get isReady(): boolean {
    return this.ready && this.outages === 0;
  }

  /** Serves /metrics, /healthz and /readyz; resolves once listening. */
  async serve(port: number, host: string): Promise<Server> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        this.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (err: Error) => res.writeHead(500).end(err.message),
        );
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const ready = this.isReady;
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    server.unref();
    return server;
  }
}
