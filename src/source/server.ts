import type { Socket } from 'node:net';
import type { Connection, ConnectionOptions, Pool } from 'mysql2/promise';
import mysql from 'mysql2/promise';
import pRetry from 'p-retry';
import type { SourceIdentity } from '../checkpoint/store.js';
import type { SourceTls } from '../config/schema.js';
import { ConnectionSilent, errorOf, isConnectionLoss, SourceError } from '../errors.js';
import { SNAPSHOT_CONNECTION_OPTIONS, SNAPSHOT_SESSION_SQL } from '../events/values.js';
import { bytesBetween, type Position } from './position.js';
import { describeTlsError, identityStream, rememberNoTls, serverOffersNoTls, sslOptions } from './tls.js';

export interface SourceSettings {
  host: string;
  port: number;
  user: string;
  password: string;
  connectTimeoutMs: number;
  /** TLS of every connection: queries, pools, chunk readers and the binlog stream all take their options here. */
  ssl: SourceTls;
}

/** `tryTls`: in mode preferred, ask for TLS even where the server offered none last time. */
export function connectionOptions(s: SourceSettings, tryTls = false): ConnectionOptions {
  const options: ConnectionOptions = { host: s.host, port: s.port, user: s.user, password: s.password, connectTimeout: s.connectTimeoutMs };
  const ssl = sslOptions(s, tryTls);
  if (ssl) options.ssl = ssl;
  const stream = identityStream(s);
  if (stream) options.stream = stream;
  return options;
}

/** Opens a query connection whose values are lossless and whose session time zone is UTC. */
export async function connect(s: SourceSettings): Promise<Connection> {
  let conn: Connection;
  try {
    conn = await mysql.createConnection({ ...connectionOptions(s, true), ...SNAPSHOT_CONNECTION_OPTIONS });
    if (s.ssl.mode === 'preferred') rememberNoTls(s, false);
  } catch (err) {
    if (s.ssl.mode !== 'preferred' || !serverOffersNoTls(err)) throw describeConnectError(err, s);
    // Preferred, as in the mysql client: TLS where the server offers it, plain text where it offers none.
    rememberNoTls(s, true);
    try {
      conn = await mysql.createConnection({ ...connectionOptions(s), ...SNAPSHOT_CONNECTION_OPTIONS });
    } catch (plainErr) {
      throw describeConnectError(plainErr, s);
    }
  }
  for (const sql of SNAPSHOT_SESSION_SQL) await conn.query(sql);
  return conn;
}

/** The waits between attempts to reach a source that went away: a few quick ones, then every 15 s. */
export const SOURCE_BACKOFF = { minTimeout: 500, maxTimeout: 15_000, factor: 2 };

/** What a control query that waits for a lost source tells, and when to give up waiting (a stop). */
export interface OutageHandlers {
  /** `first`: the first failure of an outage, each of which ends with one `back`. */
  lost(error: string, attempt: number, first: boolean): void;
  back(outageMs: number): void;
  signal?: AbortSignal | undefined;
}

/**
 * Control queries of a long-running sync (positions, schemas, sort weights) go through a small
 * pool, so a connection lost to a server restart or a KILL is replaced on the next query instead of
 * failing every later one. With `outage`, a query whose connection is lost is tried again until the
 * source answers: a partition or a restart while the stream needs sort weights must not end the run.
 * Every control query only reads, so running one twice is harmless.
 */
export function controlPool(s: SourceSettings & Silence, outage?: OutageHandlers): Pool {
  const pool = mysql.createPool({ ...connectionOptions(s), ...SNAPSHOT_CONNECTION_OPTIONS, connectionLimit: 2, enableKeepAlive: true });
  // The pool's connections, for closePool to drop when they do not end in time; a closed one leaves the set.
  const open = new Set<{ destroy(): void }>();
  poolConnections.set(pool, open);
  pool.pool.on('connection', (c) => {
    for (const sql of SNAPSHOT_SESSION_SQL) c.query(sql);
    open.add(c);
    (c as unknown as { stream?: Socket }).stream?.once('close', () => open.delete(c));
  });
  // A pooled connection is watched while a query holds it, not while it idles in the pool.
  const unwatch = new WeakMap<object, () => void>();
  pool.pool.on('acquire', (c) => unwatch.set(c, watchSilence(c, s.heartbeatTimeoutMs, 'no answer from the server to a query')));
  pool.pool.on('release', (c) => {
    unwatch.get(c)?.();
    unwatch.delete(c);
  });
  if (outage) waitOutOutages(pool, outage);
  return pool;
}

const poolConnections = new WeakMap<Pool, Set<{ destroy(): void }>>();

/** How long a polite end (COM_QUIT, then the server's close) may take before the connection is dropped instead. */
const END_WAIT_MS = 2000;

/**
 * Ends politely, or drops when the server does not answer in time: behind a partition, a polite end waits on TCP
 * for many minutes, and a stop asked for then would hang.
 */
async function endWithin(end: Promise<unknown>, drop: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), END_WAIT_MS);
  });
  const settled = end.then(
    () => false,
    () => false,
  );
  const timedOut = await Promise.race([settled, late]);
  clearTimeout(timer);
  if (timedOut) drop();
}

export function closeConnection(conn: Connection): Promise<void> {
  return endWithin(conn.end(), () => conn.destroy());
}

export function closePool(pool: Pool): Promise<void> {
  return endWithin(pool.end(), () => {
    for (const c of poolConnections.get(pool) ?? []) c.destroy();
  });
}

function waitOutOutages(pool: Pool, outage: OutageHandlers): void {
  let lostAt: number | undefined;
  const tryAgain = (err: unknown) => isConnectionLoss(err) && !outage.signal?.aborted;
  for (const method of ['query', 'execute'] as const) {
    const call = pool[method].bind(pool) as (...args: unknown[]) => Promise<unknown>;
    const waiting = async (...args: unknown[]) => {
      const result = await pRetry(() => call(...args), {
        forever: true,
        ...SOURCE_BACKOFF,
        shouldRetry: tryAgain,
        // p-retry calls this also for an error it will not retry.
        onFailedAttempt: (err) => {
          if (!tryAgain(err)) return;
          const first = lostAt === undefined;
          lostAt ??= Date.now();
          outage.lost(errorOf(err).message, err.attemptNumber, first);
        },
        ...(outage.signal ? { signal: outage.signal } : {}),
      });
      if (lostAt !== undefined) {
        outage.back(Date.now() - lostAt);
        lostAt = undefined;
      }
      return result;
    };
    Object.assign(pool, { [method]: waiting });
  }
}

/** How long a server may stay silent while tidemark waits on it. */
export interface Silence {
  heartbeatTimeoutMs: number;
}

/**
 * Takes a connection for dead when no byte comes or goes for `ms` while it is watched: a partition leaves a
 * query waiting on TCP for many minutes otherwise. The socket is destroyed, which fails the waiting query as
 * a lost connection (retried). Returns the function that ends the watch.
 */
export function watchSilence(conn: object, ms: number, what: string): () => void {
  // mysql2's socket: `stream` on a callback connection, under `connection` on a promise one.
  const c = conn as { stream?: Socket; connection?: { stream?: Socket } };
  const socket = c.stream ?? c.connection?.stream;
  if (!socket) return () => {};
  const onTimeout = () => socket.destroy(new ConnectionSilent(what, ms));
  socket.setTimeout(ms);
  socket.on('timeout', onTimeout);
  return () => {
    socket.setTimeout(0);
    socket.off('timeout', onTimeout);
  };
}

/** One dedicated connection (a chunk reader's), replaced after it is lost. */
export class SourceLink {
  private conn: Connection | null = null;

  constructor(private readonly settings: SourceSettings & Silence) {}

  async get(): Promise<Connection> {
    this.conn ??= await connect(this.settings);
    return this.conn;
  }

  /** Runs `read` on the connection, which is taken for dead if the server falls silent meanwhile (watchSilence). */
  async use<T>(read: (conn: Connection) => Promise<T>): Promise<T> {
    const conn = await this.get();
    const unwatch = watchSilence(conn, this.settings.heartbeatTimeoutMs, 'no answer from the server to a chunk read');
    try {
      return await read(conn);
    } finally {
      unwatch();
    }
  }

  discard(): void {
    this.conn?.destroy();
    this.conn = null;
  }

  async end(): Promise<void> {
    if (this.conn) await closeConnection(this.conn);
    this.conn = null;
  }
}

function describeConnectError(err: unknown, s: SourceSettings): Error {
  const e = err as { code?: string; message?: string };
  const where = `${s.user}@${s.host}:${s.port}`;
  const tls = describeTlsError(err, s);
  if (tls) return tls;
  if (e.code === 'ER_ACCESS_DENIED_ERROR') {
    // The server says the same to an account created REQUIRE SSL (or X509) that connects without TLS, and MariaDB
    // also to any connection without TLS while require_secure_transport is ON.
    const plain =
      sslOptions(s) === undefined
        ? ' An account created REQUIRE SSL gets this too without TLS, as does any account on a MariaDB server with require_secure_transport=ON, ' +
          `and this connection had none (source.ssl.mode ${s.ssl.mode}).`
        : '';
    return new SourceError(
      `cannot log in to the source as ${where}: access denied. Check source.user and source.password (or the password in source.url).${plain}`,
    );
  }
  if (e.code === 'ECONNREFUSED' || e.code === 'ETIMEDOUT' || e.code === 'ENOTFOUND' || e.code === 'EHOSTUNREACH') {
    return new SourceError(
      `cannot reach the source at ${s.host}:${s.port} (${e.code}). Check source.host/source.port (or source.url) and that the server is running.`,
      { retriable: e.code !== 'ENOTFOUND', cause: err },
    );
  }
  return new SourceError(`cannot connect to the source as ${where}: ${e.message ?? String(err)}`, { retriable: isConnectionLoss(err), cause: err });
}

export interface ServerInfo {
  identity: SourceIdentity;
  gtidMode: boolean;
  /** `@@server_id`, reported as the origin of binlog events (those replicated from elsewhere included: zongji does not expose the event header's id). */
  serverId: number;
}

async function variables(conn: Connection, names: string[]): Promise<Record<string, string | null>> {
  const [rows] = await conn.query(`SHOW GLOBAL VARIABLES WHERE Variable_name IN (?)`, [names]);
  const out: Record<string, string | null> = Object.fromEntries(names.map((n) => [n, null]));
  for (const r of rows as { Variable_name: string; Value: string }[]) out[r.Variable_name] = r.Value;
  return out;
}

/** Reads who the server is and refuses settings under which row changes can't be captured. */
export async function inspectServer(conn: Connection): Promise<ServerInfo> {
  const v = await variables(conn, [
    'version',
    'log_bin',
    'binlog_format',
    'binlog_row_image',
    'server_uuid',
    'server_id',
    'gtid_mode',
    'binlog_transaction_compression',
    'binlog_row_value_options',
  ]);
  const version = v.version ?? '';
  const flavour = /mariadb/i.test(version) ? 'mariadb' : 'mysql';
  if (v.log_bin !== 'ON') {
    throw new SourceError('the source has no binary log (log_bin is OFF). Start the server with --log-bin (and --server-id) so tidemark can follow changes.');
  }
  if (v.binlog_format !== 'ROW') {
    throw new SourceError(
      `the source logs binlog_format=${v.binlog_format}; tidemark needs ROW. Run SET GLOBAL binlog_format = 'ROW' (and set it in the server config), then reconnect.`,
    );
  }
  if (v.binlog_row_image !== 'FULL') {
    throw new SourceError(
      `the source logs binlog_row_image=${v.binlog_row_image}; tidemark needs FULL before/after images. Run SET GLOBAL binlog_row_image = 'FULL' (and set it in the server config).`,
    );
  }
  // zongji cannot decode compressed transactions or partial JSON updates; a session may still turn either on,
  // which the binlog reader then stops at (describeDecodeError).
  if (v.binlog_transaction_compression === 'ON') {
    throw new SourceError(
      'the source compresses binlog transactions (binlog_transaction_compression=ON), which tidemark cannot decode. ' +
        'Run SET PERSIST binlog_transaction_compression = OFF, then start tidemark again.',
    );
  }
  if (v.binlog_row_value_options?.toUpperCase().includes('PARTIAL_JSON')) {
    throw new SourceError(
      "the source logs partial JSON updates (binlog_row_value_options=PARTIAL_JSON), which tidemark cannot decode. Run SET PERSIST binlog_row_value_options = '', then start tidemark again.",
    );
  }
  return {
    identity: { flavour, serverId: (flavour === 'mysql' ? v.server_uuid : v.server_id) ?? '', version },
    gtidMode: flavour === 'mariadb' || v.gtid_mode === 'ON',
    serverId: Number(v.server_id ?? 0),
  };
}

/** The current binlog position; always at a transaction boundary. */
export async function currentPosition(conn: Connection, flavour: 'mysql' | 'mariadb'): Promise<Position> {
  let rows: unknown;
  try {
    [rows] = await conn.query('SHOW BINARY LOG STATUS');
  } catch {
    // MariaDB and MySQL before 8.2 only know the older name.
    [rows] = await conn.query('SHOW MASTER STATUS');
  }
  const r = (rows as { File: string; Position: number | string; Executed_Gtid_Set?: string }[])[0];
  if (!r)
    throw new SourceError(
      'SHOW BINARY LOG STATUS returned nothing: the binary log is off, or the user lacks REPLICATION CLIENT. Grant it with GRANT REPLICATION CLIENT ON *.* TO <user>.',
    );
  const p: Position = { file: r.File, pos: Number(r.Position) };
  // MySQL reads the executed set before the position, so the set never claims a transaction past it.
  if (flavour === 'mysql' && r.Executed_Gtid_Set) p.gtid = r.Executed_Gtid_Set.replace(/\s+/g, '');
  return flavour === 'mariadb' ? withMariadbGtid(conn, p) : p;
}

/** MariaDB knows the exact GTID position of any binlog position it still has (`BINLOG_GTID_POS`). */
export async function withMariadbGtid(conn: Connection, p: Position): Promise<Position> {
  const [rows] = await conn.query({ sql: 'SELECT BINLOG_GTID_POS(?, ?)', rowsAsArray: true }, [p.file, p.pos]);
  const gtid = (rows as (string | null)[][])[0]![0];
  return gtid === null || gtid === undefined ? p : { ...p, gtid };
}

/**
 * The XA transactions prepared on the server and not yet committed or rolled back, as `XA RECOVER` lists them;
 * null when the account may not ask (MySQL needs XA_RECOVER_ADMIN).
 */
export async function preparedXa(conn: Connection): Promise<string[] | null> {
  try {
    const [rows] = await conn.query('XA RECOVER');
    return (rows as { data: Buffer | string }[]).map((r) => Buffer.from(r.data).toString('utf8'));
  } catch (err) {
    // MySQL answers an account without XA_RECOVER_ADMIN with XAER_RMERR, not an access error.
    if (/ACCESS_DENIED|^ER_XAER_RMERR$/.test((err as { code?: string }).code ?? '')) return null;
    throw err;
  }
}

/** Binlog bytes from `p` to the server's current position: how far a stream at `p` is behind. */
export async function lagBytes(conn: Connection, flavour: 'mysql' | 'mariadb', p: Position): Promise<number | undefined> {
  const now = await currentPosition(conn, flavour);
  return bytesBetween(p, now, await binlogSizes(conn));
}

/** Binlog files the server still has, oldest first, with their sizes. */
export async function binlogSizes(conn: Connection): Promise<{ name: string; size: number }[]> {
  const [rows] = await conn.query('SHOW BINARY LOGS');
  return (rows as { Log_name: string; File_size: number | string }[]).map((r) => ({ name: r.Log_name, size: Number(r.File_size) }));
}

export async function binlogFiles(conn: Connection): Promise<string[]> {
  return (await binlogSizes(conn)).map((l) => l.name);
}

export async function listTables(conn: Connection): Promise<{ db: string; table: string }[]> {
  const [rows] = await conn.query(
    `SELECT TABLE_SCHEMA AS db, TABLE_NAME AS t FROM INFORMATION_SCHEMA.TABLES
      WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema')`,
  );
  return (rows as { db: string; t: string }[]).map((r) => ({ db: r.db, table: r.t }));
}

/**
 * The server's connections. SHOW PROCESSLIST, not INFORMATION_SCHEMA.PROCESSLIST: the latter stores
 * statement text as utf8mb3 and fails outright while any connection runs a statement with emoji.
 */
export async function processList(conn: Connection): Promise<{ id: number; user: string; host: string; command: string }[]> {
  const [rows] = await conn.query('SHOW PROCESSLIST');
  return (rows as { Id: number | string; User: string; Host: string; Command: string }[]).map((r) => ({
    id: Number(r.Id),
    user: r.User,
    host: r.Host,
    command: r.Command,
  }));
}

export function quoteId(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}
