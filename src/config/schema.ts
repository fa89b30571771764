import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { ErrorMode } from '../errors.js';

export const SNAPSHOT_MODES = ['initial', 'never', 'initial_only', 'when_needed'] as const;
export type SnapshotMode = (typeof SNAPSHOT_MODES)[number];

// server_id is a 32-bit unsigned integer on the server.
const MAX_SERVER_ID = 2 ** 32 - 1;
// Derived ids start here so they stay clear of the small ids people hand out to real servers.
const DERIVED_SERVER_ID_FLOOR = 5400;

// The values of these keys, and of every key below them, may hold a password or a private key, so messages never echo them.
const SECRET_KEYS = [
  'source.url',
  'source.password',
  'source.ssl.key',
  'sink.url',
  'sink.password',
  // Kafka's SASL (aws takes its keys here too) and the TLS options handed to kafkajs or a database driver.
  'sink.sasl.password',
  'sink.sasl.accessKeyId',
  'sink.sasl.secretAccessKey',
  'sink.sasl.sessionToken',
  'sink.ssl.key',
  'sink.ssl.passphrase',
  'sink.ssl.pfx',
];

/** Whether the value at `path` (config keys from the top) may hold a secret: a secret key's own or one nested below it. */
export function isSecretPath(path: readonly PropertyKey[]): boolean {
  const dotted = path.map(String).join('.');
  return SECRET_KEYS.some((k) => dotted === k || dotted.startsWith(`${k}.`));
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function got(value: unknown, secret = false): string {
  if (value === null) return 'got null';
  if (Array.isArray(value)) return 'got a list';
  if (isRecord(value)) return 'got a mapping';
  if (secret) return `got a ${typeof value}`;
  return `got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

/**
 * The error map for parsing the config: every message names what was expected and what was found, so a
 * problem can be fixed from the message alone. Schema-level messages below take precedence over it.
 */
export function describeIssue(issue: z.core.$ZodRawIssue): string {
  const secret = isSecretPath(issue.path ?? []);
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required';
      // YAML reads `password: 12345` as a number; the fix is quoting, not a different value.
      if (issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')) {
        return `expected a string, ${got(issue.input, secret)} (put it in quotes)`;
      }
      return `expected ${EXPECTED[issue.expected] ?? issue.expected}, ${got(issue.input, secret)}`;
    case 'invalid_value':
      return `expected one of ${issue.values.join(', ')}, ${got(issue.input, secret)}`;
    case 'invalid_union': {
      // The only union is the sink's, discriminated on `type`; zod reports it at the discriminator's path.
      if (issue.inclusive === false || !issue.discriminator || !issue.options) break;
      const value = isRecord(issue.input) ? issue.input[issue.discriminator] : undefined;
      if (value === undefined) return 'required';
      return `expected one of ${issue.options.join(', ')}, ${got(value)}`;
    }
    case 'invalid_key':
      // A bad key of a record (snapshot.chunkKey); its own issues say what is wrong with it.
      return issue.issues.map((i) => i.message).join('; ');
    case 'too_small':
      if (issue.origin === 'string') return 'must not be empty';
      if (issue.origin === 'array') return `expected at least ${issue.minimum} ${issue.minimum === 1 ? 'entry' : 'entries'}`;
      break;
  }
  return issue.message ?? issue.code;
}

/** Object that rejects unknown keys, listing the keys that are allowed there. */
function strict<S extends z.core.$ZodLooseShape>(shape: S) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown key (allowed: ${allowed})` : undefined),
  });
}

// Environment variables are strings, so `port: ${MYSQL_PORT}` has to be accepted as a number.
const fromDigits = (v: unknown): unknown => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v);
const fromTrueFalse = (v: unknown): unknown => (v === 'true' ? true : v === 'false' ? false : v);

function int(min: number, max: number) {
  const error = (issue: z.core.$ZodRawIssue): string =>
    issue.input === undefined ? 'required' : `expected an integer from ${min} to ${max}, ${got(issue.input)}`;
  return z.preprocess(fromDigits, z.int({ error }).min(min, { error }).max(max, { error }));
}

const bool = z.preprocess(fromTrueFalse, z.boolean());

const nonEmpty = z.string().min(1);

/**
 * A "db.table" name. Identifiers are written bare: a quoted name containing a dot cannot be expressed,
 * which is the price of not making everyone write backquotes.
 */
function tableName(wildcards: boolean) {
  const re = wildcards ? /^[^.`]+\.[^.`]+$/ : /^[^.`*]+\.[^.`*]+$/;
  const expected = wildcards ? '"db.table" (either part may use * as a wildcard; no backquotes)' : '"db.table" (no wildcards, no backquotes)';
  return z.string().regex(re, { error: (issue) => `expected ${expected}, ${got(issue.input)}` });
}

/** Whether a "db.table" pattern (with `*` matching any run of characters within one part) names db.table. */
function patternMatches(pattern: string, db: string, table: string): boolean {
  const dot = pattern.indexOf('.');
  return globPart(pattern.slice(0, dot)).test(db) && globPart(pattern.slice(dot + 1)).test(table);
}

function globPart(glob: string): RegExp {
  const literal = glob.split('*').map((s) => s.replace(/[\\^$.|?+()[\]{}]/g, '\\$&'));
  return new RegExp(`^${literal.join('.*')}$`, 's');
}

/** The tables the `source.tables` patterns select from `available`: deduplicated, sorted by db, then table. */
export function matchTables(patterns: string[], available: { db: string; table: string }[]): { db: string; table: string }[] {
  const byName = new Map<string, { db: string; table: string }>();
  for (const t of available) {
    if (patterns.some((p) => patternMatches(p, t.db, t.table))) byName.set(`${t.db}\0${t.table}`, { db: t.db, table: t.table });
  }
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...byName.values()].sort((a, b) => cmp(a.db, b.db) || cmp(a.table, b.table));
}

interface Endpoint {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
}

/** Splits mysql://user:password@host:port; messages never quote the URL, since it holds the password. */
function parseSourceUrl(raw: string, ctx: z.core.$RefinementCtx<string>): Endpoint {
  const fail = (message: string): never => {
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  };
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail('not a valid URL; expected mysql://user:password@host:port (percent-encode special characters in the password)');
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    return fail(`expected a mysql:// or mariadb:// URL, got scheme "${url.protocol.slice(0, -1)}"`);
  }
  if (url.pathname !== '' && url.pathname !== '/') return fail('a database path is not supported; list the tables in source.tables');
  // A `#` or `?` in a password that is not percent-encoded starts a fragment or a query.
  if (url.search !== '' || url.hash !== '') return fail('query parameters and fragments are not supported (in the password write # as %23, ? as %3F)');
  if (url.hostname === '') return fail('the URL has no host');
  let user: string;
  let password: string;
  try {
    user = decodeURIComponent(url.username);
    password = decodeURIComponent(url.password);
  } catch {
    return fail('malformed percent-encoding in the user or password (write % itself as %25)');
  }
  if (user === '') return fail('the URL has no user');
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 3306 : Number(url.port),
    user,
    password,
  };
}

const ENDPOINT_KEYS = ['host', 'port', 'user', 'password'] as const;

/** TLS to the source, as the mysql client's --ssl-mode names it. */
export const SSL_MODES = ['disabled', 'preferred', 'required', 'verify-ca', 'verify-identity'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/** The modes that check the server's certificate against a CA, so the only ones `ca` is for. */
export const VERIFYING_SSL_MODES: ReadonlySet<SslMode> = new Set(['verify-ca', 'verify-identity']);

// A mode is echoed only when it looks like a word: `ssl:` given a pasted key instead must not print it back.
const modeFound = (v: unknown): string => (typeof v === 'string' && !/^[a-z-]{1,40}$/.test(v) ? `got a string of ${v.length} characters` : got(v));

const sslMode = z.preprocess(
  // The mysql client's spelling (--ssl-mode=VERIFY_IDENTITY) works too.
  (v) => (typeof v === 'string' ? v.trim().toLowerCase().replace(/_/g, '-') : v),
  z.enum(SSL_MODES, { error: (issue) => (issue.input === undefined ? 'required' : `expected one of ${SSL_MODES.join(', ')}, ${modeFound(issue.input)}`) }),
);

const SSL_KEYS = ['mode', 'ca', 'cert', 'key'] as const;

const sslSchema = z.preprocess(
  // `ssl: required` is short for `ssl: { mode: required }`.
  (v) => (typeof v === 'string' ? { mode: v } : v),
  z
    .strictObject(
      {
        mode: sslMode.default('preferred'),
        // Each is PEM text (-----BEGIN …) or the path of a file holding it; loadConfig reads the files.
        ca: nonEmpty.optional(),
        cert: nonEmpty.optional(),
        key: nonEmpty.optional(),
      },
      {
        error: (issue) => {
          if (issue.code === 'unrecognized_keys') return `unknown key (allowed: ${SSL_KEYS.join(', ')})`;
          if (issue.code === 'invalid_type') return `expected a mode (${SSL_MODES.join(', ')}) or a mapping of ${SSL_KEYS.join(', ')}, ${got(issue.input)}`;
          return undefined;
        },
      },
    )
    .superRefine(
      (ssl, ctx) => {
        const issue = (key: string, message: string) => ctx.addIssue({ code: 'custom', path: [key], message });
        // Refused rather than ignored: a CA given with a mode that does not check the certificate would give a false sense of safety.
        if (ssl.ca !== undefined && !VERIFYING_SSL_MODES.has(ssl.mode)) {
          issue(
            'ca',
            `is only used with mode verify-ca or verify-identity (mode ${ssl.mode} does not check the server's certificate); set source.ssl.mode to one of them`,
          );
        }
        if (ssl.mode === 'disabled') {
          for (const k of ['cert', 'key'] as const)
            if (ssl[k] !== undefined) issue(k, 'has no use with mode disabled (no TLS); remove it or choose another mode');
        } else if (ssl.cert !== undefined && ssl.key === undefined) {
          issue('key', "required with source.ssl.cert (the client certificate's private key)");
        } else if (ssl.key !== undefined && ssl.cert === undefined) {
          issue('cert', 'required with source.ssl.key (the client certificate the key belongs to)');
        }
      },
      { when: (payload) => !payload.issues.some((i) => i.path?.[0] === 'mode') },
    ),
);

const sourceSchema = strict({
  url: z.string().transform(parseSourceUrl).optional(),
  // No zod defaults on these four: whether the user wrote them decides whether they clash with `url`.
  host: nonEmpty.optional(),
  port: int(1, 65535).optional(),
  user: nonEmpty.optional(),
  password: z.string().optional(),
  serverId: int(1, MAX_SERVER_ID).optional(),
  tables: z.array(tableName(true)).min(1),
  connectTimeoutMs: int(1, 3_600_000).default(10_000),
  // Silence on a binlog connection (no event, no server heartbeat) this long means it is dead.
  heartbeatTimeoutMs: int(1000, 3_600_000).default(30_000),
  allowWithoutGtid: bool.default(false),
  ssl: sslSchema.prefault({}),
}).superRefine(
  (source, ctx) => {
    const given = ENDPOINT_KEYS.filter((k) => k in source);
    if ('url' in source && given.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['url'],
        message: `cannot be combined with ${given.map((k) => `source.${k}`).join(', ')}; give either the url or the separate keys`,
      });
    }
    if (!('url' in source) && !('user' in source)) ctx.addIssue({ code: 'custom', path: ['user'], message: 'required (or give source.url)' });
  },
  // Runs despite other problems in `source` (it only looks at which keys are present), so they are all reported together.
  { when: (payload) => isRecord(payload.value) },
);

const columnList = z
  .array(nonEmpty)
  .min(1)
  .refine((cols) => new Set(cols).size === cols.length, { error: 'lists a column more than once' });

const snapshotSchema = strict({
  mode: z.enum(SNAPSHOT_MODES).default('initial'),
  chunkSize: int(1, 10_000_000).default(8192),
  parallelism: int(1, 16).default(2),
  chunkKey: z.record(tableName(false), columnList).default({}),
});

/** True when no problem has been found at, above or below any of `paths`, so the values there have their parsed types. */
const validAt =
  (...paths: PropertyKey[][]) =>
  (payload: z.core.ParsePayload): boolean =>
    !payload.issues.some((issue) => paths.some((p) => (issue.path ?? []).every((k, i) => i >= p.length || k === p[i])));

const tombstones = bool.default(true);
// Schema change events on the topic `<name>` (`<topicPrefix>` in Kafka).
const schemaChanges = bool.default(true);

// Kafka's own rule for topic names; tidemark derives `<topicPrefix>.<db>.<table>` and `<topicPrefix>.tidemark.offsets` from it.
const topicPrefix = z.string().regex(/^[a-zA-Z0-9_.-]{1,200}$/, {
  error: (issue) => `expected up to 200 letters, digits, "_", "." or "-", ${got(issue.input)}`,
});

const broker = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):\d{1,5}$/, {
  error: (issue) => `expected "host:port", ${got(issue.input)}`,
});

// `brokers: ${KAFKA_BROKERS}` arrives as one string, so a comma-separated list is accepted too.
const brokerList = z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((b) => b.trim()) : v), z.array(broker).min(1));

const kafkaSinkSchema = strict({
  type: z.literal('kafka'),
  brokers: brokerList,
  topicPrefix: topicPrefix.optional(),
  exactlyOnce: bool.default(true),
  // The broker refuses a transaction timeout above its transaction.max.timeout.ms (15 minutes by default).
  transactionTimeoutMs: int(1000, 900_000).default(60_000),
  tombstones,
  schemaChanges,
  acks: z.preprocess((v) => (typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v), z.literal([-1, 0, 1])).default(-1),
  // kafkajs has only gzip built in; src/sink/kafka-codecs.ts registers snappy, lz4 and zstd from codec packages.
  compression: z.enum(['none', 'gzip', 'snappy', 'lz4', 'zstd']).default('none'),
  // Just under the broker's default message.max.bytes (1048588) less the record batch overhead.
  maxRecordBytes: int(1024, 2_000_000_000).default(1_000_000),
  topic: strict({
    partitions: int(1, 100_000).default(1),
    replicationFactor: int(1, 1000).default(1),
  }).prefault({}),
  clientId: nonEmpty.optional(),
  // Handed to kafkajs unchanged (tls.connect options, PEM contents inline or from ${ENV}).
  ssl: z
    .union([bool, z.record(z.string(), z.unknown())], {
      // A string here is most likely a key or certificate meant for one of the mapping's keys: not echoed.
      error: (issue) => `expected true, false or a mapping of TLS options, ${got(issue.input, typeof issue.input === 'string')}`,
    })
    .optional(),
  sasl: z
    .looseObject({
      mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512', 'aws']),
      username: z.string().optional(),
      password: z.string().optional(),
    })
    .optional(),
}).superRefine(
  (sink, ctx) => {
    if (sink.exactlyOnce && sink.acks !== -1) {
      ctx.addIssue({ code: 'custom', path: ['acks'], message: `must be -1 (all in-sync replicas) with exactlyOnce: true, got ${sink.acks}` });
    }
  },
  { when: validAt(['acks'], ['exactlyOnce']) },
);

/** The schemes a database sink's `url` may have, by sink type. */
const SQL_SCHEMES = { postgres: ['postgres:', 'postgresql:'], mysql: ['mysql:', 'mariadb:'] } as const;

/**
 * A database sink's url: `postgres://user:password@host:port/database` or `mysql://…/database`. Checked here, split
 * by the sink (sqlEndpoint); messages never quote it, since it holds the password.
 */
function sqlUrl(type: keyof typeof SQL_SCHEMES) {
  return z.string().superRefine((raw, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return fail(`not a valid URL; expected ${type}://user:password@host:port/database (percent-encode special characters in the password)`);
    }
    const schemes: readonly string[] = SQL_SCHEMES[type];
    if (!schemes.includes(url.protocol)) return fail(`expected a ${schemes.map((s) => `${s}//`).join(' or ')} URL, got scheme "${url.protocol.slice(0, -1)}"`);
    if (url.hostname === '') return fail('the URL has no host');
    if (url.username === '') return fail('the URL has no user');
    if (url.pathname.length <= 1 || url.pathname.slice(1).includes('/')) return fail('the URL must name the database: …/database');
    if (url.search !== '' || url.hash !== '') return fail('query parameters and fragments are not supported; use sink.ssl for TLS');
  });
}

// `<db>` and `<table>` are replaced by the source table's names; without `<table>` every table would land in one.
const tableNameTemplate = z.string().refine((t) => t.includes('<table>') && !/<(?!db>|table>)[^>]*>/.test(t), {
  error: (issue) => `expected a name holding <table> (and optionally <db>), such as "<db>_<table>", ${got(issue.input)}`,
});

const SQL_ENDPOINT_KEYS = ['host', 'port', 'user', 'password', 'database'] as const;

/** The keys both database sinks take: where the database is, how tables are named, TLS. */
function sqlSinkSchema<T extends keyof typeof SQL_SCHEMES, E extends z.core.$ZodLooseShape>(type: T, extra: E) {
  return strict({
    type: z.literal(type),
    url: sqlUrl(type).optional(),
    host: nonEmpty.optional(),
    port: int(1, 65535).optional(),
    user: nonEmpty.optional(),
    password: z.string().optional(),
    database: nonEmpty.optional(),
    tableName: tableNameTemplate.default('<db>_<table>'),
    // true, or TLS options (ca, cert, key as PEM text; rejectUnauthorized) handed to the driver as they are.
    ssl: z
      .union([bool, z.record(z.string(), z.unknown())], {
        error: (issue) => `expected true, false or a mapping of TLS options, ${got(issue.input, typeof issue.input === 'string')}`,
      })
      .optional(),
    ...extra,
  }).superRefine(
    (sink, ctx) => {
      const given = SQL_ENDPOINT_KEYS.filter((k) => k in sink);
      if ('url' in sink && given.length > 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['url'],
          message: `cannot be combined with ${given.map((k) => `sink.${k}`).join(', ')}; give either the url or the separate keys`,
        });
      }
      if (!('url' in sink)) {
        for (const k of ['user', 'database'] as const) if (!(k in sink)) ctx.addIssue({ code: 'custom', path: [k], message: 'required (or give sink.url)' });
      }
    },
    { when: (payload) => isRecord(payload.value) },
  );
}

// PostgreSQL's identifier rule, as tidemark writes the schema name quoted: 1 to 63 bytes, no NUL.
const pgSchemaName = z.string().refine((s) => s.length > 0 && Buffer.byteLength(s) <= 63 && !s.includes(String.fromCharCode(0)), {
  error: (issue) => `expected a schema name of 1 to 63 bytes, ${got(issue.input)}`,
});

/**
 * `type: null` is the older name of the discard sink; written without quotes YAML reads it as null, which
 * means the same here rather than an error that asks for quotes.
 */
const discardAlias = (sink: unknown): unknown => (isRecord(sink) && (sink.type === null || sink.type === 'null') ? { ...sink, type: 'discard' } : sink);

/** Sink members, discriminated on `type`: a new sink is one more entry here and flows into `Config` unchanged. */
const sinkSchema = z.preprocess(
  discardAlias,
  z.discriminatedUnion('type', [
    // overwrite: a new checkpoint may cut an existing non-empty output it did not write.
    strict({ type: z.literal('jsonl'), path: nonEmpty, tombstones, schemaChanges, overwrite: bool.default(false) }),
    strict({ type: z.literal('stdout'), tombstones, schemaChanges }),
    // Discards everything: for measuring tidemark without a sink's cost (bench/).
    strict({ type: z.literal('discard'), tombstones, schemaChanges }),
    kafkaSinkSchema,
    sqlSinkSchema('postgres', { schema: pgSchemaName.default('public') }),
    sqlSinkSchema('mysql', {}),
  ]),
);

export type SinkConfig = z.output<typeof sinkSchema>;

export interface SourceConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  serverId: number;
  tables: string[];
  connectTimeoutMs: number;
  /** Silence on a binlog connection this long (no event, no heartbeat) means it is dead: reconnect. */
  heartbeatTimeoutMs: number;
  /** Run against a MySQL server with gtid_mode OFF, accepting the low watermark race (README Limits). */
  allowWithoutGtid: boolean;
  /** TLS on every connection to the source. */
  ssl: SourceTls;
}

/** `source.ssl`. After loadConfig, `ca`, `cert` and `key` hold PEM text (a file's content where the config named a file). */
export interface SourceTls {
  mode: SslMode;
  ca?: string;
  cert?: string;
  key?: string;
}

export interface SnapshotConfig {
  mode: SnapshotMode;
  chunkSize: number;
  parallelism: number;
  /** "db.table" → unique NOT NULL columns to chunk on instead of the primary key. */
  chunkKey: Record<string, string[]>;
}

export interface CommitConfig {
  maxRecords: number;
  maxDelayMs: number;
}

/** The config as the rest of tidemark sees it: every default filled in, every path absolute. */
export interface Config {
  name: string;
  /** Absolute path of the file this was loaded from. */
  configPath: string;
  source: SourceConfig;
  snapshot: SnapshotConfig;
  checkpoint: { path: string };
  sink: SinkConfig;
  commit: CommitConfig;
  /** The Prometheus endpoint; off unless a port is set. */
  metrics: { port?: number; host: string };
  /** What a row tidemark cannot encode, or a record a sink refuses, does: stop the run, or go to the dead letters. */
  errors: { mode: ErrorMode };
}

/**
 * Stable across processes and Node versions, so a restarted connector reuses its ids: MySQL then replaces
 * the stale connection of the previous run rather than serving two connectors under different ids.
 */
function derivedServerId(name: string): number {
  return DERIVED_SERVER_ID_FLOOR + (createHash('sha256').update(name).digest().readUInt32BE(0) % 2 ** 31);
}

/**
 * The whole file. Its output is a `Config` whose paths are still relative to the config file: resolving them
 * needs the file's location, which loadConfig knows.
 */
export const configSchema = strict({
  name: z.string().regex(/^[a-zA-Z0-9_.-]+$/, {
    error: (issue) => `expected letters, digits, "_", "." or "-", ${got(issue.input)}`,
  }),
  source: sourceSchema,
  snapshot: snapshotSchema.prefault({}),
  checkpoint: strict({ path: nonEmpty.optional() }).prefault({}),
  sink: sinkSchema,
  commit: strict({
    maxRecords: int(1, 10_000_000).default(10_000),
    maxDelayMs: int(1, 3_600_000).default(50),
  }).prefault({}),
  // Loopback by default: metrics say which tables are captured, which is not for every network.
  metrics: strict({ port: int(1, 65_535).optional(), host: nonEmpty.default('127.0.0.1') }).prefault({}),
  errors: strict({ mode: z.enum(['fail', 'dead-letter']).default('fail') }).prefault({}),
})
  .superRefine(
    (config, ctx) => {
      for (const table of Object.keys(config.snapshot.chunkKey)) {
        const [db = '', name = ''] = table.split('.');
        if (!config.source.tables.some((p) => patternMatches(p, db, name))) {
          ctx.addIssue({ code: 'custom', path: ['snapshot', 'chunkKey', table], message: 'this table is not captured by source.tables' });
        }
      }
    },
    { when: validAt(['source', 'tables'], ['snapshot', 'chunkKey']) },
  )
  .superRefine(
    (config, ctx) => {
      const { serverId } = config.source;
      const last = serverId === undefined ? 0 : serverId + config.snapshot.parallelism;
      if (last > MAX_SERVER_ID) {
        ctx.addIssue({
          code: 'custom',
          path: ['source', 'serverId'],
          message: `with snapshot.parallelism ${config.snapshot.parallelism} the ids up to ${last} are used, above the maximum ${MAX_SERVER_ID}`,
        });
      }
    },
    { when: validAt(['source', 'serverId'], ['snapshot', 'parallelism']) },
  )
  .transform((config): Omit<Config, 'configPath'> => {
    const { url, host, port, user, password, serverId, tables, connectTimeoutMs, heartbeatTimeoutMs, allowWithoutGtid, ssl } = config.source;
    const endpoint = url ?? { host, port, user, password };
    return {
      name: config.name,
      source: {
        host: endpoint.host ?? '127.0.0.1',
        port: endpoint.port ?? 3306,
        // The source refinement guarantees a user from either the url or the `user` key.
        user: endpoint.user ?? '',
        password: endpoint.password ?? '',
        serverId: serverId ?? derivedServerId(config.name),
        tables,
        connectTimeoutMs,
        heartbeatTimeoutMs,
        allowWithoutGtid,
        ssl,
      },
      snapshot: config.snapshot,
      checkpoint: { path: config.checkpoint.path ?? `./data/${config.name}.sqlite` },
      sink: config.sink,
      commit: config.commit,
      metrics: config.metrics.port === undefined ? { host: config.metrics.host } : { port: config.metrics.port, host: config.metrics.host },
      errors: config.errors,
    };
  });
