import type { AnyBinlogEvent, DeleteRowsEvent, QueryEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent, XaPrepareEvent } from '@vlasky/zongji';
import ZongJi from '@vlasky/zongji';
import { ConnectionSilent, errorOf, isConnectionLoss, SourceError } from '../errors.js';
import { BINLOG_CONNECTION_OPTIONS } from '../events/values.js';
import { keepRawBytes } from './binlog-columns.js';
import { ChangeSpool, SPOOL_PART_CHANGES } from './change-spool.js';
import { isDdl, parseDdl } from './ddl.js';
import { comparePositions, type Position } from './position.js';
import { connectionOptions, type SourceSettings } from './server.js';

export interface RowChange {
  kind: 'insert' | 'update' | 'delete';
  db: string;
  table: string;
  /** Raw values as zongji decodes them; the value encoder makes them canonical. */
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  /** Index of the row within its binlog event. */
  row: number;
  /** Position of the row event (MariaDB writes 0 inside transactions; then the commit's). */
  pos: number;
  /**
   * The columns the row event's table map names, when it describes them itself (binlog_row_metadata=FULL): the
   * table's columns when the row was written. One array per table map, shared by its rows.
   */
  columns: MappedColumn[] | undefined;
}

/** A column as a self-describing table map gives it. */
export interface MappedColumn {
  name: string;
  /** Its type as INFORMATION_SCHEMA would write it: `int`, `varchar(10)`, `decimal(10,2)`, ... */
  type: string;
}

/** One committed source transaction, delivered whole. */
export interface BinlogTransaction {
  /** Its row changes in memory; a large transaction's earlier ones are in `spooled` (see changeParts). */
  changes: RowChange[];
  /** The changes before `changes`, on disk; the consumer removes it (releaseChanges) once it has read them. */
  spooled?: ChangeSpool<RowChange> | undefined;
  truncates: { db: string; table: string }[];
  /** DDL statements seen in this (implicit) transaction, with their default database. */
  ddl: { db: string; sql: string }[];
  /** The transaction boundary right after its commit: where a resume must start. */
  end: Position;
  /**
   * Where a reader resuming after `end` must start reading instead, when an XA transaction prepared before
   * `end` is not committed yet: the boundary before the oldest such XA PREPARE, whose rows are needed again.
   */
  restart?: Position;
  gtid: string | null;
  tsMs: number;
}

/** The transaction's row changes in binlog order, in parts: those spooled to disk, then those in memory. */
export function* changeParts(tx: BinlogTransaction): Generator<RowChange[]> {
  if (tx.spooled) yield* tx.spooled.parts();
  if (tx.changes.length > 0) yield tx.changes;
}

export const changeCount = (tx: BinlogTransaction): number => (tx.spooled?.count ?? 0) + tx.changes.length;

/** Lets go of a transaction's spooled changes once consumed or dropped. */
export function releaseChanges(tx: { spooled?: ChangeSpool<RowChange> | undefined }): void {
  tx.spooled?.remove();
  tx.spooled = undefined;
}

/** An XA transaction prepared (its rows are in the binlog) but not committed or rolled back yet. */
interface PreparedXa {
  changes: RowChange[];
  spooled: ChangeSpool<RowChange> | undefined;
  truncates: { db: string; table: string }[];
  /** The boundary before its XA PREPARE group. */
  restart: Position;
}

/**
 * An XA COMMIT whose XA PREPARE lies before where the reader started: its rows cannot be read from here. A
 * chunk read starts again later; the stream cannot (see ARCHITECTURE §3 on XA), so there it stops.
 */
export class XaPrepareMissing extends SourceError {}

export type StartAt = { file: string; pos: number } | { gtidSet: string };

/** What a binlog connection needs: the server's address, and how long a silence means it is dead. */
export interface BinlogSourceSettings extends SourceSettings {
  heartbeatTimeoutMs: number;
}

export interface BinlogReaderOptions {
  source: BinlogSourceSettings;
  /** Which grammar DDL statements are read with. */
  flavour: 'mysql' | 'mariadb';
  serverId: number;
  start: StartAt;
  /** Tables whose row events are decoded; others are skipped by zongji before decoding. */
  tables: { db: string; table: string }[];
  /**
   * Where an open transaction's changes go beyond SPOOL_PART_CHANGES, so a bulk statement is not held in memory;
   * undefined: all are kept in memory.
   */
  spoolDir: string | undefined;
  onTransaction(tx: BinlogTransaction): void;
  /** A transaction boundary reached without a captured change (heartbeat, skipped transaction); `restart` as in BinlogTransaction. */
  onPosition?(p: Position, restart?: Position): void;
  onError(err: Error): void;
}

const TRANSACTION_EVENTS = ['gtid', 'anonymousgtid', 'mariadbgtid', 'query', 'xid', 'xaprepare', 'tablemap', 'writerows', 'updaterows', 'deleterows'];

/** `XA COMMIT X'<gtrid>',X'<bqual>',<formatID>` (and ROLLBACK), as both servers write them to the binlog. */
const XA_END = /^XA\s+(COMMIT|ROLLBACK)\s+X'([0-9a-f]*)'\s*,\s*X'([0-9a-f]*)'\s*,\s*(\d+)/i;

const xaKey = (gtridHex: string, bqualHex: string, formatId: number | string): string => `${gtridHex.toLowerCase()},${bqualHex.toLowerCase()},${formatId}`;

/**
 * Events outside any transaction that still move the binlog position: a file switch and the
 * headers of the new file, MariaDB's asynchronous binlog checkpoint events, heartbeats. The server's
 * reported position can end on one of them, so `--until-caught-up` must count them.
 */
const BOUNDARY_EVENTS = ['heartbeat', 'rotate', 'format', 'previousgtids', 'mariadbgtidlist', 'binlogcheckpoint'];

/**
 * The period the server is asked to send heartbeats at while it has nothing else to send: three fit in the
 * timeout, so one lost or late heartbeat is not taken for a dead connection.
 */
export const heartbeatPeriodMs = (timeoutMs: number): number => Math.max(250, Math.floor(timeoutMs / 3));

/**
 * Asks for heartbeats on the binlog connection; the server reads the period (nanoseconds) from this user
 * variable when the dump begins. MySQL 8.4+ reads `source_heartbeat_period`, MariaDB and older MySQL
 * `master_heartbeat_period`; each ignores the other's.
 */
export const heartbeatSql = (timeoutMs: number): string => {
  const ns = BigInt(heartbeatPeriodMs(timeoutMs)) * 1_000_000n;
  return `SET @master_heartbeat_period = ${ns}, @source_heartbeat_period = ${ns}`;
};

/**
 * Follows the binlog with zongji and hands over whole transactions with the exact resume
 * position after each. Row events are buffered until the commit marker, so a consumer never
 * sees half a transaction.
 */
export class BinlogReader {
  private readonly zongji: ZongJi;
  private tx: BinlogTransaction | null = null;
  private stopped = false;
  private lastTable: string | null = null;
  /** The last transaction boundary passed: where the open transaction began. */
  private lastBoundary: Position | null = null;
  private txStart: Position | null = null;
  private readonly prepared = new Map<string, PreparedXa>();
  /** Columns of self-describing table maps, by zongji's table map entry. */
  private readonly mapped = new WeakMap<object, MappedColumn[]>();
  /** When a byte last came from the server (or reading resumed after a pause): the watchdog's clock. */
  private lastHeardMs = 0;
  private paused = false;
  private watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly opts: BinlogReaderOptions) {
    this.zongji = new ZongJi({ ...connectionOptions(opts.source), ...BINLOG_CONNECTION_OPTIONS });
  }

  start(): Promise<void> {
    const includeSchema: Record<string, string[]> = {};
    for (const t of this.opts.tables) includeSchema[t.db] = [...(includeSchema[t.db] ?? []), t.table];
    return new Promise((resolve, reject) => {
      let ready = false;
      const fail = (err: Error) => {
        if (this.stopped) return;
        this.stopWatchdog();
        // The server's replication errors end the connection too, but reconnecting would meet them again.
        const replicationError = (err as { errno?: number }).errno === 1236;
        const e = isConnectionLoss(err) && !replicationError ? err : describeBinlogError(err, this.whereDecoding(), this.opts.serverId);
        if (!ready) {
          // A start that failed part-way leaves connections open.
          this.stop();
          reject(e);
        } else this.opts.onError(e);
      };
      this.startWatchdog(fail);
      this.zongji.on('ready', () => {
        ready = true;
        const conn = this.zongji.connection;
        // Queued now, ahead of the dump command zongji adds right after this event.
        conn?.query(heartbeatSql(this.opts.source.heartbeatTimeoutMs), (err: Error | null) => {
          if (err) fail(err);
        });
        (conn as unknown as { stream?: NodeJS.EventEmitter } | null)?.stream?.on('data', () => {
          this.lastHeardMs = Date.now();
        });
        resolve();
      });
      this.zongji.on('error', fail);
      this.zongji.on('binlog', (evt) => {
        try {
          this.handle(evt);
        } catch (err) {
          this.opts.onError(describeBinlogError(errorOf(err), this.whereDecoding()));
        }
      });
      // After the handler above, which reads a table map's column types before these switch them to raw bytes.
      keepRawBytes(this.zongji);
      this.zongji.start({
        serverId: this.opts.serverId,
        ...('gtidSet' in this.opts.start ? { gtidSet: this.opts.start.gtidSet } : { filename: this.opts.start.file, position: this.opts.start.pos }),
        includeEvents: [...TRANSACTION_EVENTS, ...BOUNDARY_EVENTS],
        includeSchema,
      });
    });
  }

  stop(): void {
    this.stopped = true;
    this.stopWatchdog();
    this.zongji.stop();
    if (this.tx) releaseChanges(this.tx);
    for (const xa of this.prepared.values()) releaseChanges(xa);
  }

  /** Stops delivery while the consumer catches up (TCP back-pressure reaches the server). */
  pause(): void {
    this.paused = true;
    this.zongji.connection?.pause();
  }

  resume(): void {
    // A pause of ours is no silence of the server's.
    if (this.paused) this.lastHeardMs = Date.now();
    this.paused = false;
    this.zongji.connection?.resume();
  }

  /** Fails the connection when the server has been silent for the heartbeat timeout while tidemark was reading. */
  private startWatchdog(fail: (err: Error) => void): void {
    const timeoutMs = this.opts.source.heartbeatTimeoutMs;
    this.lastHeardMs = Date.now();
    this.watchdog = setInterval(
      () => {
        if (!this.paused && Date.now() - this.lastHeardMs > timeoutMs)
          fail(new ConnectionSilent('no binlog event and no heartbeat from the server', timeoutMs));
      },
      Math.max(100, Math.floor(timeoutMs / 10)),
    );
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }

  /** Where the reader is, for an error message: the position and the last table a row event named. */
  private whereDecoding(): string {
    const p = this.zongji.options.filename ? `${this.zongji.options.filename}:${this.zongji.options.position}` : 'the start position';
    return this.lastTable ? `after ${p}, in a transaction on ${this.lastTable}` : `after ${p}`;
  }

  private here(): Position {
    const p: Position = { file: this.zongji.options.filename!, pos: this.zongji.options.position! };
    const gtid = this.zongji.gtidSet;
    if (gtid !== undefined) p.gtid = gtid;
    return p;
  }

  private open(evt: AnyBinlogEvent): BinlogTransaction {
    if (!this.tx) {
      this.tx = { changes: [], truncates: [], ddl: [], end: { file: '', pos: 0 }, gtid: evt.gtid ?? null, tsMs: evt.timestamp };
      this.txStart = this.lastBoundary;
    }
    return this.tx;
  }

  private commit(evt: AnyBinlogEvent): void {
    const tx = this.open(evt);
    this.tx = null;
    tx.end = this.here();
    tx.gtid ??= evt.gtid ?? null;
    tx.tsMs = evt.timestamp;
    const restart = this.restartPoint();
    if (restart) tx.restart = restart;
    this.lastBoundary = tx.end;
    if (changeCount(tx) === 0 && tx.truncates.length === 0 && tx.ddl.length === 0) this.opts.onPosition?.(tx.end, restart);
    else this.opts.onTransaction(tx);
  }

  /** The boundary before the oldest XA PREPARE not yet committed or rolled back, if any. */
  private restartPoint(): Position | undefined {
    let oldest: Position | undefined;
    for (const xa of this.prepared.values()) if (!oldest || comparePositions(xa.restart, oldest) < 0) oldest = xa.restart;
    return oldest;
  }

  /**
   * XA PREPARE ends a group whose rows only count once XA COMMIT comes, in a later group (or never, after XA
   * ROLLBACK); they are held until then. XA COMMIT ... ONE PHASE ends its group as a plain commit does.
   */
  private xaPrepare(evt: XaPrepareEvent): void {
    if (evt.onePhase) {
      this.commit(evt);
      return;
    }
    const tx = this.open(evt);
    const key = xaKey(evt.xidGtrid.toString('hex'), evt.xidBqual.toString('hex'), evt.xidFormatId);
    const start = this.txStart ?? this.lastBoundary;
    // Without a known start the prepare could not be read again after a restart; the reader began inside its group.
    if (!start) throw new XaPrepareMissing(`XA PREPARE of ${key} began before where the binlog reader started`);
    this.prepared.set(key, { changes: tx.changes, spooled: tx.spooled, truncates: tx.truncates, restart: start });
    tx.changes = [];
    tx.spooled = undefined;
    tx.truncates = [];
    this.commit(evt);
  }

  private xaEnd(evt: QueryEvent, m: RegExpExecArray): void {
    const key = xaKey(m[2]!, m[3]!, m[4]!);
    const xa = this.prepared.get(key);
    this.prepared.delete(key);
    const tx = this.open(evt);
    if (m[1]!.toUpperCase() === 'COMMIT') {
      if (!xa) {
        throw new XaPrepareMissing(
          `XA COMMIT of the transaction ${key} comes after where the binlog was read from, but its XA PREPARE (with its rows) lies before it; its rows cannot be read`,
        );
      }
      // The XA COMMIT group has no row events of its own: the prepared rows are all it carries.
      tx.changes = xa.changes;
      tx.spooled = xa.spooled;
      for (const t of xa.truncates) tx.truncates.push(t);
    } else if (xa) releaseChanges(xa);
    this.commit(evt);
  }

  private handle(evt: AnyBinlogEvent): void {
    switch (evt.getEventName()) {
      case 'gtid':
      case 'anonymousgtid':
      case 'mariadbgtid':
        // A transaction left open (none is, in a well-formed binlog) is dropped with what it spooled.
        if (this.tx) releaseChanges(this.tx);
        this.tx = null;
        this.open(evt);
        return;
      case 'writerows':
      case 'updaterows':
      case 'deleterows':
        this.rows(evt as WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent);
        return;
      case 'xid':
        this.commit(evt);
        return;
      case 'xaprepare':
        this.xaPrepare(evt as XaPrepareEvent);
        return;
      case 'tablemap': {
        const map = evt as TableMapEvent;
        this.lastTable = `${map.schemaName}.${map.tableName}`;
        const entry = map.tableMap[map.tableId];
        if (entry && map.hasSelfDescribingMetadata()) {
          this.mapped.set(
            entry,
            (entry.columnSchemas as { COLUMN_NAME: string; COLUMN_TYPE: string }[]).map((c) => ({ name: c.COLUMN_NAME, type: c.COLUMN_TYPE })),
          );
        }
        return;
      }
      case 'query':
        this.query(evt as QueryEvent);
        return;
      default:
        if (this.tx === null && BOUNDARY_EVENTS.includes(evt.getEventName()) && this.zongji.options.filename) {
          this.lastBoundary = this.here();
          this.opts.onPosition?.(this.lastBoundary, this.restartPoint());
        }
        return;
    }
  }

  private query(evt: QueryEvent): void {
    const sql = evt.query.trim();
    if (/^BEGIN$/i.test(sql)) {
      this.open(evt);
      return;
    }
    if (/^COMMIT$/i.test(sql)) {
      this.commit(evt);
      return;
    }
    const xa = XA_END.exec(sql);
    if (xa) {
      this.xaEnd(evt, xa);
      return;
    }
    if (isDdl(sql)) {
      const tx = this.open(evt);
      tx.ddl.push({ db: evt.schema, sql });
      const change = parseDdl(sql, evt.schema, this.opts.flavour);
      if (change.kind === 'truncate') {
        for (const table of change.tables) if (this.opts.tables.some((c) => c.db === table.db && c.table === table.table)) tx.truncates.push(table);
      }
      // A DDL statement commits on its own: it has no Xid event.
      this.commit(evt);
    }
  }

  private rows(evt: WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent): void {
    const meta = evt.tableMap[evt.tableId];
    if (!meta) return;
    const tx = this.open(evt);
    const db = meta.parentSchema;
    const table = meta.tableName;
    const pos = evt.nextPosition;
    const name = evt.getEventName();
    const rows = evt.rows;
    const columns = this.mapped.get(meta);
    // Plain literals of one shape, not spreads: this runs once per changed row.
    for (let row = 0; row < rows.length; row++) {
      const r = rows[row]!;
      if (name === 'writerows') tx.changes.push({ kind: 'insert', db, table, before: null, after: r as Record<string, unknown>, row, pos, columns });
      else if (name === 'deleterows') tx.changes.push({ kind: 'delete', db, table, before: r as Record<string, unknown>, after: null, row, pos, columns });
      else {
        const u = r as { before: Record<string, unknown>; after: Record<string, unknown> };
        tx.changes.push({ kind: 'update', db, table, before: u.before, after: u.after, row, pos, columns });
      }
    }
    if (this.opts.spoolDir !== undefined && tx.changes.length >= SPOOL_PART_CHANGES) {
      tx.spooled ??= ChangeSpool.create<RowChange>(this.opts.spoolDir);
      tx.spooled.append(tx.changes);
      tx.changes = [];
    }
  }
}

/**
 * Turns the server's replication errors into ones that say what to do. Anything else the reader meets (an event
 * zongji cannot decode) will happen again on the same bytes: it stops the run, naming where, and is never skipped.
 */
export function describeBinlogError(err: Error, where: string, serverId?: number): Error {
  const e = err as Error & { errno?: number; code?: string };
  // The server's error 1236 has several causes, each with its own fix (MySQL's and MariaDB's wordings).
  if (/same server_uuid|same server_id|with the same server id/i.test(e.message)) {
    return new SourceError(
      `the server dropped tidemark's binlog connection for another one with the same replica server id${serverId === undefined ? '' : ` (${serverId})`} (${e.message}). ` +
        'Another tidemark, or a replica, uses it: give each connector its own source.serverId range (source.serverId to source.serverId + snapshot.parallelism), clear of every replica server_id.',
    );
  }
  if (/more GTIDs than the (master|source)|has diverged|contains GTIDs with higher sequence numbers/i.test(e.message)) {
    return new SourceError(
      `the server has not executed every transaction the checkpoint has (${e.message}): it is not the server, or not a replica of the server, the checkpoint was taken from, or it lost transactions. ` +
        'Point source at the server the checkpoint belongs to, or run `tidemark reset` and snapshot this one.',
    );
  }
  if (e.errno === 1236 || /purged|could not find first log file|not in the master's binlog|could not find GTID state/i.test(e.message)) {
    return new SourceError(
      `the binlog position tidemark needs is no longer on the server (${e.message}). ` +
        'The server purged it. Set snapshot.mode: when_needed to re-snapshot automatically, or run `tidemark reset` and sync again.',
    );
  }
  if (e.errno === 1227 || /REPLICATION SLAVE|access denied/i.test(e.message)) {
    return new SourceError(`cannot read the binlog: ${e.message}. Grant it with GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO <user>.`);
  }
  if (err instanceof SourceError) return err;
  // The server or the network said no: mysql2 gives those a code; zongji's own decoding failures have none.
  if (e.code !== undefined || e.errno !== undefined) return new SourceError(`the binlog connection failed: ${e.message}`, { cause: err });
  return new SourceError(
    `cannot decode the binlog ${where}: ${err.message} tidemark stopped instead of skipping the change. ` +
      'Fix the cause on the server (a setting named above, or binlog_row_metadata=FULL when a table changed), then start tidemark again: it resumes at the last committed transaction.',
    { cause: err },
  );
}
