import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { withTimeout } from '../timeout.js';

const run = promisify(execFile);

export type ServerKind = 'mysql' | 'mariadb' | 'kafka' | 'postgres';

/** Where the servers came from, in the order they are tried. */
export type ServerOrigin = 'env' | 'containers' | 'local';

export interface DevServers {
  origin: ServerOrigin;
  /** `mysql://user:password@host:port` URLs, Kafka `host:port` lists and `postgres://user@host:port/db` URLs, per requested kind. */
  mysqlUrl?: string;
  mariadbUrl?: string;
  kafkaBrokers?: string;
  postgresUrl?: string;
  /** PEM files of the CAs that signed the MySQL and MariaDB servers' certificates, where known (local servers). */
  mysqlCa?: string;
  mariadbCa?: string;
  /** Stops what this call started; servers that were already there are left running. */
  stop(): Promise<void>;
}

const ENV_KEYS: Record<ServerKind, string> = {
  mysql: 'TIDEMARK_TEST_MYSQL_URL',
  mariadb: 'TIDEMARK_TEST_MARIADB_URL',
  kafka: 'TIDEMARK_TEST_KAFKA_BROKERS',
  postgres: 'TIDEMARK_TEST_POSTGRES_URL',
};

const SCRIPT = fileURLToPath(new URL('../../scripts/test-servers.sh', import.meta.url));

/**
 * Finds or starts MySQL, MariaDB, Kafka and PostgreSQL servers with the settings tidemark needs:
 * each from its URL in the environment when set, the others with testcontainers where a container
 * runtime answers, else the local servers of scripts/test-servers.sh (Debian packages and Maven jars,
 * cached). `TIDEMARK_TEST_SERVERS=local|containers` forces a path.
 */
export async function provisionServers(kinds: ServerKind[], log: (line: string) => void = () => {}): Promise<DevServers> {
  const given = kinds.filter((k) => process.env[ENV_KEYS[k]]);
  const rest = kinds.filter((k) => !given.includes(k));
  if (given.length > 0) log(`using servers from the environment (${given.map((k) => ENV_KEYS[k]).join(', ')})`);
  const fromEnv = (servers: DevServers) =>
    withUrls(
      servers,
      given,
      given.map((k) => process.env[ENV_KEYS[k]]!),
    );
  if (rest.length === 0) return fromEnv({ origin: 'env', stop: async () => {} });
  const forced = process.env.TIDEMARK_TEST_SERVERS;
  if (forced !== 'local' && (forced === 'containers' || (await containerRuntimeAnswers()))) {
    log('a container runtime answers: starting servers with testcontainers');
    return fromEnv(await startContainers(rest, log));
  }
  log(`no container runtime: starting local servers with ${SCRIPT}`);
  return fromEnv(await startLocal(rest, log));
}

function withUrls(base: DevServers, kinds: ServerKind[], values: string[]): DevServers {
  const servers: DevServers = { ...base };
  kinds.forEach((kind, i) => {
    const value = values[i];
    if (kind === 'mysql') servers.mysqlUrl = value;
    else if (kind === 'mariadb') servers.mariadbUrl = value;
    else if (kind === 'postgres') servers.postgresUrl = value;
    else servers.kafkaBrokers = value;
  });
  return servers;
}

async function containerRuntimeAnswers(): Promise<boolean> {
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await withTimeout(getContainerRuntimeClient(), 10_000, 'asking for a container runtime');
    return true;
  } catch {
    return false;
  }
}

async function startLocal(kinds: ServerKind[], log: (line: string) => void): Promise<DevServers> {
  const up = await run('bash', [SCRIPT, 'up', ...kinds], { maxBuffer: 16 << 20 }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`starting local test servers failed:\n${err.stderr ?? err.message}`);
  });
  for (const line of up.stderr.trim().split('\n')) log(line);
  const { stdout } = await run('bash', [SCRIPT, 'env']);
  const env = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]),
  );
  // Local servers outlive the run on purpose: the next run reuses them and starts in seconds.
  const cas = {
    mysqlCa: kinds.includes('mysql') ? env.TIDEMARK_TEST_MYSQL_CA : undefined,
    mariadbCa: kinds.includes('mariadb') ? env.TIDEMARK_TEST_MARIADB_CA : undefined,
  };
  return withUrls(
    { origin: 'local', stop: async () => {}, ...cas },
    kinds,
    kinds.map((k) => env[ENV_KEYS[k]] ?? ''),
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function startContainers(kinds: ServerKind[], log: (line: string) => void): Promise<DevServers> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const started: { stop(): Promise<unknown> }[] = [];
  const values: string[] = [];
  for (const kind of kinds) {
    if (kind === 'kafka') {
      // The broker must advertise the port the host sees, so that port is chosen before start.
      const port = await freePort();
      const c = await new GenericContainer('apache/kafka:3.9.1')
        .withExposedPorts({ container: 9092, host: port })
        .withEnvironment({
          KAFKA_NODE_ID: '1',
          KAFKA_PROCESS_ROLES: 'broker,controller',
          KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
          KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${port}`,
          KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
          KAFKA_LISTENER_SECURITY_PROTOCOL_MAP: 'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
          KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
          KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
          KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR: '1',
          KAFKA_TRANSACTION_STATE_LOG_MIN_ISR: '1',
          KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
        })
        .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
        .start();
      started.push(c);
      values.push(`127.0.0.1:${port}`);
      log(`kafka container on 127.0.0.1:${port}`);
    } else if (kind === 'postgres') {
      const c = await new GenericContainer('postgres:17')
        .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
        .withExposedPorts(5432)
        .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
        .start();
      started.push(c);
      values.push(`postgres://postgres@127.0.0.1:${c.getMappedPort(5432)}/postgres`);
      log(`postgres container on 127.0.0.1:${c.getMappedPort(5432)}`);
    } else {
      const mysql = kind === 'mysql';
      const flags = mysql
        ? ['--log-bin=binlog', '--server-id=84', '--gtid-mode=ON', '--enforce-gtid-consistency=ON', '--binlog-row-metadata=FULL', '--mysqlx=OFF']
        : ['--log-bin=binlog', '--server-id=11', '--binlog-format=ROW', '--binlog-row-metadata=FULL'];
      const c = await new GenericContainer(mysql ? 'mysql:8.4' : 'mariadb:11')
        .withEnvironment(mysql ? { MYSQL_ALLOW_EMPTY_PASSWORD: 'yes' } : { MARIADB_ALLOW_EMPTY_ROOT_PASSWORD: 'yes' })
        .withCommand(flags)
        .withExposedPorts(3306)
        .withWaitStrategy(Wait.forLogMessage(/ready for connections/, 2))
        .withStartupTimeout(180_000)
        .start();
      started.push(c);
      values.push(`mysql://root@127.0.0.1:${c.getMappedPort(3306)}`);
      log(`${kind} container on 127.0.0.1:${c.getMappedPort(3306)}`);
    }
  }
  return withUrls({ origin: 'containers', stop: async () => void (await Promise.all(started.map((c) => c.stop()))) }, kinds, values);
}
