import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, matchTables, serverIdRange } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
function write(text: string, subdir = ''): string {
  const target = join(dir, subdir);
  mkdirSync(target, { recursive: true });
  const file = join(target, `config-${++files}.yaml`);
  writeFileSync(file, text);
  return file;
}

const MINIMAL = `
name: shop-cdc
source:
  user: cdc
  tables: [shop.orders]
sink:
  type: stdout
`;

/** The ConfigError that loading `file` throws. */
function errorFrom(file: string, env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    loadConfig(file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected loadConfig to throw');
}

const failure = (text: string, env: NodeJS.ProcessEnv = {}): ConfigError => errorFrom(write(text), env);

describe('loadConfig', () => {
  it('loads a full config', () => {
    const file = write(`
name: shop-cdc
source:
  host: db.internal
  port: 3307
  user: cdc
  password: \${MYSQL_PASSWORD}
  serverId: 5401
  tables: [shop.orders, "shop.*"]
  connectTimeoutMs: 2000
snapshot:
  mode: when_needed
  chunkSize: 1000
  parallelism: 4
  chunkKey:
    shop.events: [event_id]
checkpoint:
  path: /var/lib/tidemark/shop.sqlite
sink:
  type: jsonl
  path: /var/out/shop.jsonl
  tombstones: false
commit:
  maxRecords: 50
  maxDelayMs: 100
metrics:
  port: 9464
`);
    expect(loadConfig(file, { MYSQL_PASSWORD: 's3cret' })).toEqual({
      name: 'shop-cdc',
      configPath: file,
      source: {
        host: 'db.internal',
        port: 3307,
        user: 'cdc',
        password: 's3cret',
        serverId: 5401,
        tables: ['shop.orders', 'shop.*'],
        connectTimeoutMs: 2000,
        heartbeatTimeoutMs: 30_000,
        allowWithoutGtid: false,
        ssl: { mode: 'preferred' },
      },
      snapshot: { mode: 'when_needed', chunkSize: 1000, parallelism: 4, chunkKey: { 'shop.events': ['event_id'] } },
      checkpoint: { path: '/var/lib/tidemark/shop.sqlite' },
      sink: { type: 'jsonl', path: '/var/out/shop.jsonl', tombstones: false, schemaChanges: true, overwrite: false },
      commit: { maxRecords: 50, maxDelayMs: 100 },
      metrics: { port: 9464, host: '127.0.0.1' },
      errors: { mode: 'fail' },
    });
  });

  it('fills in defaults', () => {
    const file = write(MINIMAL);
    const config = loadConfig(file, {});
    expect(config.source).toMatchObject({ host: '127.0.0.1', port: 3306, user: 'cdc', password: '', connectTimeoutMs: 10_000 });
    expect(config.snapshot).toEqual({ mode: 'initial', chunkSize: 8192, parallelism: 2, chunkKey: {} });
    expect(config.checkpoint.path).toBe(join(dir, 'data', 'shop-cdc.sqlite'));
    expect(config.sink).toEqual({ type: 'stdout', tombstones: true, schemaChanges: true });
    expect(config.commit).toEqual({ maxRecords: 10_000, maxDelayMs: 50 });
    expect(config.metrics).toEqual({ host: '127.0.0.1' });
  });

  it('derives a stable server id from the name, never 0', () => {
    const id = loadConfig(write(MINIMAL), {}).source.serverId;
    expect(loadConfig(write(MINIMAL), {}).source.serverId).toBe(id);
    expect(id).toBeGreaterThanOrEqual(5400);
    expect(id).toBeLessThan(5400 + 2 ** 31);
    const other = loadConfig(write(MINIMAL.replace('shop-cdc', 'billing-cdc')), {}).source.serverId;
    expect(other).not.toBe(id);
  });

  it('splits source.url into host, port, user and password', () => {
    const file = write(`
name: a
source:
  url: mysql://c%40dc:p%3Aw%2Fd@10.0.0.5:3310
  tables: [a.b]
sink: { type: stdout }
`);
    expect(loadConfig(file, {}).source).toMatchObject({ host: '10.0.0.5', port: 3310, user: 'c@dc', password: 'p:w/d' });
  });

  it('accepts mariadb:// and defaults the port and password', () => {
    const file = write(`
name: a
source: { url: "mariadb://cdc@[::1]", tables: [a.b] }
sink: { type: stdout }
`);
    expect(loadConfig(file, {}).source).toMatchObject({ host: '::1', port: 3306, user: 'cdc', password: '' });
  });

  it('rejects other URL schemes without echoing the URL', () => {
    const err = failure(`
name: a
source: { url: "postgres://cdc:hunter2@h", tables: [a.b] }
sink: { type: stdout }
`);
    expect(err.message).toContain('source.url: expected a mysql:// or mariadb:// URL, got scheme "postgres"');
    expect(err.message).not.toContain('hunter2');
  });

  it('rejects url together with host/port/user/password', () => {
    const err = failure(`
name: a
source: { url: "mysql://cdc@h", host: h, user: cdc, tables: [a.b] }
sink: { type: stdout }
`);
    expect(err.message).toContain('source.url: cannot be combined with source.host, source.user');
  });

  it('substitutes environment variables, with defaults and escapes', () => {
    const file = write(`
name: \${NAME:-fallback}
source:
  url: mysql://\${USER}:\${PW}@\${HOST:-localhost}:\${PORT}
  tables: ["\${DB}.orders"]
sink:
  type: jsonl
  path: "/out/$\${literal}-\${EMPTY:-x}.jsonl"
  tombstones: \${TOMBSTONES}
snapshot:
  parallelism: \${PAR}
`);
    const config = loadConfig(file, { USER: 'cdc', PW: 'pw', PORT: '3307', DB: 'shop', EMPTY: '', TOMBSTONES: 'false', PAR: '3' });
    expect(config.name).toBe('fallback');
    expect(config.source).toMatchObject({ host: 'localhost', port: 3307, user: 'cdc', password: 'pw', tables: ['shop.orders'] });
    expect(config.sink).toEqual({ type: 'jsonl', path: '/out/${literal}-x.jsonl', tombstones: false, schemaChanges: true, overwrite: false });
    expect(config.snapshot.parallelism).toBe(3);
  });

  it('reads process.env by default', () => {
    process.env.TIDEMARK_TEST_PW = 'from-process';
    try {
      const config = loadConfig(write(MINIMAL.replace('user: cdc', 'user: cdc\n  password: ${TIDEMARK_TEST_PW}')));
      expect(config.source.password).toBe('from-process');
    } finally {
      delete process.env.TIDEMARK_TEST_PW;
    }
  });

  it('names the variable and the key path of a missing variable, once', () => {
    const err = failure(MINIMAL.replace('user: cdc', 'user: cdc\n  password: ${MYSQL_PASSWORD}\n  serverId: ${SERVER_ID}'));
    expect(err.problems).toEqual([
      'source.password: environment variable MYSQL_PASSWORD is not set',
      'source.serverId: environment variable SERVER_ID is not set',
    ]);
  });

  it('rejects an unknown key at the top level, listing the allowed keys', () => {
    const err = failure(`${MINIMAL}\nsinks: {}\n`);
    expect(err.problems).toEqual(['sinks: unknown key (allowed: name, source, snapshot, checkpoint, sink, commit, metrics, errors)']);
  });

  it('rejects an unknown nested key, naming its full path', () => {
    const err = failure(`${MINIMAL}\nsnapshot:\n  chunksize: 10\n`);
    expect(err.problems).toEqual(['snapshot.chunksize: unknown key (allowed: mode, chunkSize, parallelism, chunkKey)']);
  });

  it('checks the keys of each sink type on its own', () => {
    const err = failure(MINIMAL.replace('type: stdout', 'type: stdout\n  path: out.jsonl'));
    expect(err.problems).toEqual(['sink.path: unknown key (allowed: type, tombstones, schemaChanges)']);
  });

  it('rejects a value of the wrong type', () => {
    const err = failure(`${MINIMAL}\nsnapshot:\n  chunkSize: lots\n`);
    expect(err.problems).toEqual(['snapshot.chunkSize: expected an integer from 1 to 10000000, got "lots"']);
  });

  it('does not echo a password of the wrong type', () => {
    const err = failure(MINIMAL.replace('user: cdc', 'user: cdc\n  password: 918273'));
    expect(err.problems).toEqual(['source.password: expected a string, got a number (put it in quotes)']);
  });

  it('rejects a bad enum value', () => {
    const err = failure(`${MINIMAL}\nsnapshot:\n  mode: initail\n`);
    expect(err.problems).toEqual(['snapshot.mode: expected one of initial, never, initial_only, when_needed, got "initail"']);
  });

  it('reads the discard sink under its old name null, quoted or as YAML null', () => {
    for (const type of ['discard', "'null'", 'null', '~']) {
      expect(loadConfig(write(MINIMAL.replace('type: stdout', `type: ${type}`))).sink).toEqual({ type: 'discard', tombstones: true, schemaChanges: true });
    }
  });

  it('rejects an unknown sink type', () => {
    const err = failure(MINIMAL.replace('type: stdout', 'type: oracle'));
    expect(err.problems).toEqual(['sink.type: expected one of jsonl, stdout, discard, kafka, postgres, mysql, got "oracle"']);
  });

  it('reports a missing required key', () => {
    const err = failure(MINIMAL.replace('  tables: [shop.orders]\n', ''));
    expect(err.problems).toEqual(['source.tables: required']);
  });

  it('requires sink.path for a jsonl sink', () => {
    const err = failure(MINIMAL.replace('type: stdout', 'type: jsonl'));
    expect(err.problems).toEqual(['sink.path: required']);
  });

  it('reports every problem at once, one per line', () => {
    const err = failure(`
name: my shop
source:
  port: 70000
  tables: [shop]
snapshot:
  mode: initail
  parallelism: 0
  chunkKey:
    other.table: [id]
sink: { type: jsonl }
commit: { maxDelayMs: 1.5, maxRecord: 5 }
`);
    expect(err.exitCode).toBe(2);
    expect(err.problems).toEqual(
      expect.arrayContaining([
        'name: expected letters, digits, "_", "." or "-", got "my shop"',
        'source.port: expected an integer from 1 to 65535, got 70000',
        'source.user: required (or give source.url)',
        'source.tables[0]: expected "db.table" (either part may use * as a wildcard; no backquotes), got "shop"',
        'snapshot.mode: expected one of initial, never, initial_only, when_needed, got "initail"',
        'snapshot.parallelism: expected an integer from 1 to 16, got 0',
        'sink.path: required',
        'commit.maxDelayMs: expected an integer from 1 to 3600000, got 1.5',
        'commit.maxRecord: unknown key (allowed: maxRecords, maxDelayMs)',
      ]),
    );
    expect(err.problems).toHaveLength(9);
    for (const problem of err.problems) expect(err.message).toContain(`\n  ${problem}`);
  });

  it('rejects a chunk key for a table that is not captured', () => {
    const err = failure(`${MINIMAL}\nsnapshot:\n  chunkKey:\n    shop.events: [event_id]\n`);
    expect(err.problems).toEqual(['snapshot.chunkKey["shop.events"]: this table is not captured by source.tables']);
  });

  it('rejects a server id range that runs past the largest server id', () => {
    const err = failure(MINIMAL.replace('user: cdc', 'user: cdc\n  serverId: 4294967295'));
    expect(err.problems).toEqual(['source.serverId: with snapshot.parallelism 2 the ids up to 4294967297 are used, above the maximum 4294967295']);
  });

  it('names the file, line and column of a YAML syntax error', () => {
    const file = write('name: a\nsource:\n  tables: [a.b\n  user: cdc\n');
    const err = errorFrom(file);
    expect(err.message).toContain(file);
    expect(err.problems).toEqual([expect.stringMatching(/^line 4, column 3: /)]);
  });

  it('names the path of a missing file', () => {
    const file = join(dir, 'absent.yaml');
    expect(errorFrom(file).message).toBe(`config file not found: ${file}`);
  });

  it('rejects an empty file', () => {
    expect(failure('# nothing yet\n').problems).toEqual(['the file is empty']);
  });

  it('resolves relative paths against the config file directory', () => {
    const file = write(`${MINIMAL.replace('type: stdout', 'type: jsonl\n  path: out/shop.jsonl')}\ncheckpoint:\n  path: ../state/shop.sqlite\n`, 'etc');
    expect(process.cwd()).not.toBe(join(dir, 'etc'));
    const config = loadConfig(file, {});
    expect(config.configPath).toBe(file);
    expect(config.sink).toMatchObject({ path: join(dir, 'etc', 'out', 'shop.jsonl') });
    expect(config.checkpoint.path).toBe(join(dir, 'state', 'shop.sqlite'));
  });
});

describe('kafka sink config', () => {
  const kafka = (sink: string): string => MINIMAL.replace('  type: stdout\n', `${sink.replace(/^/gm, '  ')}\n`);

  it('fills in defaults', () => {
    const config = loadConfig(write(kafka('type: kafka\nbrokers: [k1:9092, k2:9092]')), {});
    expect(config.sink).toEqual({
      type: 'kafka',
      brokers: ['k1:9092', 'k2:9092'],
      exactlyOnce: true,
      transactionTimeoutMs: 60_000,
      tombstones: true,
      schemaChanges: true,
      acks: -1,
      compression: 'none',
      maxRecordBytes: 1_000_000,
      topic: { partitions: 1, replicationFactor: 1 },
    });
  });

  it('loads every key, with brokers and secrets from the environment', () => {
    const file = write(
      kafka(`type: kafka
brokers: \${KAFKA_BROKERS}
topicPrefix: shop.cdc_v2
exactlyOnce: "false"
transactionTimeoutMs: 120000
tombstones: false
acks: 1
compression: gzip
topic: { partitions: 6, replicationFactor: 3 }
clientId: shop-cdc-1
ssl: { rejectUnauthorized: false, ca: "-----BEGIN CERTIFICATE-----" }
sasl:
  mechanism: scram-sha-512
  username: cdc
  password: \${KAFKA_PASSWORD}`),
    );
    const config = loadConfig(file, { KAFKA_BROKERS: 'k1:9092, [::1]:9093', KAFKA_PASSWORD: 's3cret' });
    expect(config.sink).toEqual({
      type: 'kafka',
      brokers: ['k1:9092', '[::1]:9093'],
      topicPrefix: 'shop.cdc_v2',
      exactlyOnce: false,
      transactionTimeoutMs: 120_000,
      tombstones: false,
      schemaChanges: true,
      acks: 1,
      compression: 'gzip',
      maxRecordBytes: 1_000_000,
      topic: { partitions: 6, replicationFactor: 3 },
      clientId: 'shop-cdc-1',
      ssl: { rejectUnauthorized: false, ca: '-----BEGIN CERTIFICATE-----' },
      sasl: { mechanism: 'scram-sha-512', username: 'cdc', password: 's3cret' },
    });
  });

  it('requires brokers, each as host:port', () => {
    expect(failure(kafka('type: kafka')).problems).toEqual(['sink.brokers: required']);
    expect(failure(kafka('type: kafka\nbrokers: []')).problems).toEqual(['sink.brokers: expected at least 1 entry']);
    expect(failure(kafka('type: kafka\nbrokers: [k1:9092, localhost]')).problems).toEqual(['sink.brokers[1]: expected "host:port", got "localhost"']);
  });

  it('needs acks -1 for exactly-once', () => {
    expect(failure(kafka('type: kafka\nbrokers: [k:9092]\nacks: 1')).problems).toEqual([
      'sink.acks: must be -1 (all in-sync replicas) with exactlyOnce: true, got 1',
    ]);
    expect(loadConfig(write(kafka('type: kafka\nbrokers: [k:9092]\nacks: 0\nexactlyOnce: false')), {}).sink).toMatchObject({ acks: 0, exactlyOnce: false });
    expect(failure(kafka('type: kafka\nbrokers: [k:9092]\nacks: 2')).problems).toEqual(['sink.acks: expected one of -1, 0, 1, got 2']);
  });

  it('names the key of each bad value', () => {
    const err = failure(
      kafka(`type: kafka
brokers: [k:9092]
topicPrefix: "shop cdc"
compression: brotli
transactionTimeoutMs: 3600000
topic: { partitions: 0, replicas: 3 }
ssl: 5
sasl: { mechanism: gssapi }`),
    );
    expect(err.problems).toEqual(
      expect.arrayContaining([
        'sink.topicPrefix: expected up to 200 letters, digits, "_", "." or "-", got "shop cdc"',
        'sink.compression: expected one of none, gzip, snappy, lz4, zstd, got "brotli"',
        'sink.transactionTimeoutMs: expected an integer from 1000 to 900000, got 3600000',
        'sink.topic.partitions: expected an integer from 1 to 100000, got 0',
        'sink.topic.replicas: unknown key (allowed: partitions, replicationFactor)',
        'sink.ssl: expected true, false or a mapping of TLS options, got 5',
        'sink.sasl.mechanism: expected one of plain, scram-sha-256, scram-sha-512, aws, got "gssapi"',
      ]),
    );
    expect(err.problems).toHaveLength(7);
  });

  it('does not echo a SASL password of the wrong type', () => {
    const err = failure(kafka('type: kafka\nbrokers: [k:9092]\nsasl: { mechanism: plain, username: cdc, password: 918273 }'));
    expect(err.problems).toEqual(['sink.sasl.password: expected a string, got a number (put it in quotes)']);
  });

  it('lists the kafka keys for an unknown one', () => {
    expect(failure(kafka('type: kafka\nbrokers: [k:9092]\npath: out.jsonl')).problems).toEqual([
      'sink.path: unknown key (allowed: type, brokers, topicPrefix, exactlyOnce, transactionTimeoutMs, tombstones, schemaChanges, acks, compression, maxRecordBytes, topic, clientId, ssl, sasl)',
    ]);
  });
});

describe('serverIdRange', () => {
  it('gives one id to the tailer and one to each concurrent backfill', () => {
    const config = loadConfig(write(`${MINIMAL.replace('user: cdc', 'user: cdc\n  serverId: 7000')}\nsnapshot: { parallelism: 4 }\n`), {});
    expect(serverIdRange(config)).toEqual({ first: 7000, size: 5 });
  });
});

describe('matchTables', () => {
  const available = [
    { db: 'shop', table: 'orders' },
    { db: 'shop', table: 'order_items' },
    { db: 'shop', table: 'Customers' },
    { db: 'shop_archive', table: 'orders' },
    { db: 'billing', table: 'invoices' },
  ];

  it('matches exact names and * within one part, sorted and deduplicated', () => {
    expect(matchTables(['shop.order*', 'shop.orders', '*.orders'], available)).toEqual([
      { db: 'shop', table: 'order_items' },
      { db: 'shop', table: 'orders' },
      { db: 'shop_archive', table: 'orders' },
    ]);
  });

  it('does not let * cross the dot, and is case-sensitive', () => {
    const dotted = [
      { db: 'shop', table: 'orders' },
      { db: 's', table: 'hop.orders' },
    ];
    expect(matchTables(['s*.orders'], dotted)).toEqual([{ db: 'shop', table: 'orders' }]);
    expect(matchTables(['shop.customers'], available)).toEqual([]);
    expect(matchTables(['shop.C*'], available)).toEqual([{ db: 'shop', table: 'Customers' }]);
  });

  it('treats regular expression characters literally', () => {
    expect(matchTables(['shop.order.'], available)).toEqual([]);
    expect(matchTables(['*.*'], [{ db: 'a+b', table: 't(1)' }])).toEqual([{ db: 'a+b', table: 't(1)' }]);
  });
});
