import { execFileSync } from 'node:child_process';
import type { TestProject } from 'vitest/node';
import { provisionServers } from '../../src/devservers/provision.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mysqlUrl: string;
    mariadbUrl: string;
    kafkaBrokers: string;
  }
}

/** Finds or starts the real MySQL, MariaDB and Kafka servers every integration test runs against. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // End-to-end tests run the real CLI (bin/tidemark → dist/), so dist must match the sources under test.
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  const servers = await provisionServers(['mysql', 'mariadb', 'kafka'], (line) => console.log(`[servers] ${line}`));
  project.provide('mysqlUrl', servers.mysqlUrl!);
  project.provide('mariadbUrl', servers.mariadbUrl!);
  project.provide('kafkaBrokers', servers.kafkaBrokers!);
  return () => servers.stop();
}
