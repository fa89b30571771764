import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { provisionServers } from '../../src/devservers/provision.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where the servers came from: `local` ones are the project script's, which a test may start again. */
    serversOrigin: string;
    mysqlUrl: string;
    mariadbUrl: string;
    kafkaBrokers: string;
    postgresUrl: string;
    /** The CA file of each server's TLS certificate; '' where the servers' origin gives none. */
    mysqlCa: string;
    mariadbCa: string;
  }
}

/** Finds or starts the real MySQL, MariaDB, Kafka and PostgreSQL servers every integration test runs against. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // End-to-end tests run the real CLI (bin/tidemark → dist/), so dist must match the sources under test.
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  const servers = await provisionServers(['mysql', 'mariadb', 'kafka', 'postgres'], (line) => console.log(`[servers] ${line}`));
  project.provide('serversOrigin', servers.origin);
  project.provide('mysqlUrl', servers.mysqlUrl!);
  project.provide('mariadbUrl', servers.mariadbUrl!);
  project.provide('kafkaBrokers', servers.kafkaBrokers!);
  project.provide('postgresUrl', servers.postgresUrl!);
  project.provide('mysqlCa', process.env.TIDEMARK_TEST_MYSQL_CA ?? servers.mysqlCa ?? '');
  project.provide('mariadbCa', process.env.TIDEMARK_TEST_MARIADB_CA ?? servers.mariadbCa ?? '');
  return () => servers.stop();
}
