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
  const servers = await provisionServers(['mysql', 'mariadb', 'kafka'], (line) => console.log(`[servers] ${line}`));
  project.provide('mysqlUrl', servers.mysqlUrl!);
  project.provide('mariadbUrl', servers.mariadbUrl!);
  project.provide('kafkaBrokers', servers.kafkaBrokers!);
  return () => servers.stop();
}
