/**
 * The stream: binlog tail → transaction events through the hand-off filter → batches → sink commits, with
 * snapshots while streaming read in between. Each part lives in its own file; this loop wires them.
 */
import type { SchemaVersion } from '../../checkpoint/store.js';
import { SourceError } from '../../errors.js';
import type { DeadLetter, EventSource, RowEvent, SchemaChange } from '../../events/event.js';
import { type BinlogTransaction, changeParts, releaseChanges } from '../../source/binlog.js';
import { parseDdl } from '../../source/ddl.js';
import { comparePositions, formatPosition, type Position } from '../../source/position.js';
import { UnappliedDdl } from '../../source/schema-change.js';
import { currentPosition, lagBytes } from '../../source/server.js';
import { reportChunk } from '../chunk-reads.js';
import { type HandoffFilter, handoffFilter } from '../handoff.js';
import type { RunParts } from '../options.js';
import type { CapturedTable } from '../table-registry.js';
import { Batcher, type CommitSummary } from './batcher.js';
import { BinlogTail } from './binlog-tail.js';
import { LiveSnapshots } from './live-snapshots.js';
import { resolveChanges, transactionEvents } from './transaction-events.js';

/** Lag in bytes costs a round trip to the server: refreshed this often, not per commit. */
const LAG_PROBE_MS = 5000;

export interface StreamPlan {
  from: Position;
  /** Where reading starts when before `from`: XA transactions prepared before it are still open (CheckpointStore.streamRestart). */
  restart: Position | undefined;
  /** Stop once the committed position reaches this (`--until-caught-up`); undefined: run until stopped. */
  until: Position | undefined;
  /** false: the checkpoint's file/pos belong to another server, only its GTIDs count. */
  sameServer: boolean;
}

/** Streams from the checkpoint's position until stopped, or caught up with `plan.until`. */
export async function runStream(parts: RunParts, plan: StreamPlan): Promise<void> {
  const streamer = new Streamer(parts, await handoffFilter(parts));
  await streamer.run(plan);
}

class Streamer {
  private readonly tail: BinlogTail;
  private readonly batcher: Batcher;
  private readonly live: LiveSnapshots;
  private lastLagProbeMs = 0;

  constructor(
    private readonly parts: RunParts,
    private readonly filter: HandoffFilter,
  ) {
    this.tail = new BinlogTail(parts);
    this.batcher = new Batcher(parts.committer, parts.config.commit, {
      countOps: parts.observer !== undefined,
      committed: (summary) => this.committed(summary),
      failed: () => this.tail.interrupt(),
    });
    this.live = new LiveSnapshots(parts, filter, this.batcher, this.tail);
  }

  async run(plan: StreamPlan): Promise<void> {
    const { store, signal, log, observer, config } = this.parts;
    this.live.resumeFromCheckpoint();
    await this.tail.start(plan.from, plan.restart, plan.sameServer);
    log('streaming', { from: formatPosition(plan.from) });
    observer?.streaming?.();
    const onAbort = () => this.tail.interrupt();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        if (plan.until && this.caughtUp(plan.until, plan.sameServer)) {
          log('caught up', { position: formatPosition(store.streamPosition()!) });
          return;
        }
        if (signal?.aborted) return;
        if (this.batcher.failure) throw this.batcher.failure;
        if (await this.live.step()) continue;
        const item = await this.tail.next();
        if (item === undefined) {
          if (signal?.aborted) return;
          await this.batcher.flushIfDue(true);
          await this.tail.wait(config.commit.maxDelayMs);
          continue;
        }
        if ('changes' in item) await this.addTransaction(item);
        else this.batcher.addPosition(item.end, item.restart);
        this.live.releaseIfReached(this.tail.lastReceived);
        await this.batcher.flushIfDue(false);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.tail.stop();
      await this.batcher.flush();
      await this.live.close();
    }
  }

  /** Everything up to `until` is committed, and no snapshot is left running inside the stream. */
  private caughtUp(until: Position, sameServer: boolean): boolean {
    const committed = this.parts.store.streamPosition()!;
    return !this.live.active && (sameServer || this.batcher.committedSinceStart) && comparePositions(committed, until) >= 0;
  }

  private async addTransaction(tx: BinlogTransaction): Promise<void> {
    const events = tx.spooled ? await this.addInParts(tx) : await this.rowEvents(tx, 0);
    // The hand-off of a truncated table is over, in this run and (through the commit) after a restart.
    const truncated = tx.truncates.map((t) => `${t.db}.${t.table}`);
    for (const name of truncated) this.filter.truncated(name);
    const schema = tx.ddl.length > 0 ? await this.schemaChanges(tx, events.length) : { events: [], versions: [] };
    this.batcher.addTransaction([...events, ...schema.events], tx.end, tx.tsMs, { restart: tx.restart, truncated, schemaVersions: schema.versions });
  }

  private async rowEvents(tx: BinlogTransaction, firstRow: number): Promise<(RowEvent | DeadLetter)[]> {
    const changes = await resolveChanges(tx, this.parts.registry, this.filter);
    this.live.absorb(tx, changes);
    return transactionEvents(tx, changes, this.filter, this.parts.info.serverId, this.parts.config.errors.mode, firstRow);
  }

  /**
   * A transaction too large to hold, its changes spooled to disk by the reader: its events go to the batch a part at
   * a time, which the sink writes ahead of the commit that ends with this transaction (Batcher.addPart). None are
   * left for the caller; every part names the transaction's end, known since its commit was read.
   */
  private async addInParts(tx: BinlogTransaction): Promise<(RowEvent | DeadLetter)[]> {
    try {
      let row = 0;
      for (const changes of changeParts(tx)) {
        const part: BinlogTransaction = { ...tx, changes, spooled: undefined, truncates: row === 0 ? tx.truncates : [] };
        const events = await this.rowEvents(part, row);
        row += events.length;
        await this.batcher.addPart(events);
      }
    } finally {
      releaseChanges(tx);
    }
    return [];
  }

  /**
   * DDL on captured tables: their next column versions (committed with this transaction), schema change events,
   * and the tables that start or stop being captured (ARCHITECTURE §4, schema history).
   */
  private async schemaChanges(tx: BinlogTransaction, firstRow: number): Promise<{ events: SchemaChange[]; versions: SchemaVersion[] }> {
    const { registry, log, info, conn, store } = this.parts;
    const source: EventSource = { file: tx.end.file, pos: tx.end.pos, gtid: tx.gtid, serverId: info.serverId, tsMs: tx.tsMs, snapshot: false };
    const events: SchemaChange[] = [];
    const versions: SchemaVersion[] = [];
    const serverPosition = () => currentPosition(conn, info.identity.flavour);
    for (const d of tx.ddl) {
      const change = parseDdl(d.sql, d.db, info.identity.flavour);
      const outcome = await registry.applyDdl(change, d.sql, tx.end, serverPosition).catch((err: unknown) => {
        if (!(err instanceof UnappliedDdl)) throw err;
        throw new SourceError(
          `${err.message} (at ${formatPosition(tx.end)}). tidemark stopped rather than encode rows with the wrong columns. ` +
            'Leave the table out of source.tables, or `tidemark reset` and snapshot again once the statement is behind you.',
        );
      });
      versions.push(...outcome.versions);
      const event = (t: CapturedTable, kind: SchemaChange['kind'], schema: SchemaChange['schema']): SchemaChange => ({
        op: 'schema',
        db: t.schema.db,
        table: t.schema.table,
        kind,
        ddl: d.sql,
        schema,
        row: firstRow + events.length,
        source,
      });
      for (const t of outcome.dropped) {
        events.push(event(t, 'drop', null));
        this.filter.forget(t.name);
        this.live.cancel(t.name);
        store.forgetTable(t.name);
        log('table no longer captured', { table: t.name, sql: d.sql.slice(0, 200) });
      }
      for (const t of outcome.changed) {
        events.push(event(t, 'alter', t.schema));
        log('schema change', { table: t.name, sql: d.sql.slice(0, 200) });
      }
      for (const { table, existingRows, renamedFrom } of outcome.created) {
        events.push(event(table, 'create', table.schema));
        log('table captured', { table: table.name, renamedFrom, sql: d.sql.slice(0, 200) });
        // A table created empty is all in the binlog from here on; one renamed in brings rows to snapshot.
        if (existingRows) await this.live.snapshotNewTable(table);
        else store.addTable(table.name, 'streaming', table.chunkKey, 0);
      }
      for (const t of outcome.keyChanged) await this.live.keyChanged(t, this.filter);
      if (outcome.created.length > 0 || outcome.dropped.length > 0) this.tail.rereadAfterCurrent();
    }
    return { events, versions };
  }

  private async committed({ end, sourceTsMs, chunksDone, byOp }: CommitSummary): Promise<void> {
    const { observer, conn, info, signal } = this.parts;
    if (!observer) return;
    for (const [op, n] of byOp) observer.streamed?.(op, n);
    let bytes: number | undefined;
    // Control queries wait for a source that is away; the last commit of a stop must not wait on a metric.
    if (Date.now() - this.lastLagProbeMs >= LAG_PROBE_MS && !signal?.aborted) {
      this.lastLagProbeMs = Date.now();
      bytes = await lagBytes(conn, info.identity.flavour, end).catch(() => undefined);
    }
    observer.committed?.(sourceTsMs, bytes);
    for (const c of chunksDone) reportChunk(this.parts, c.table, c.rows);
  }
}
