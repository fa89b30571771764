import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { inject } from 'vitest';

export type Flavour = 'mysql' | 'mariadb';

export const FLAVOURS: Flavour[] = ['mysql', 'mariadb'];

/** The test server of a flavour, as the global setup provided it. */
export const urlOf = (flavour: Flavour): string => inject(flavour === 'mysql' ? 'mysqlUrl' : 'mariadbUrl');

/** What a test's setup made: its own database and connection, a folder, and a config writing jsonl to `out`. */
export interface JsonlSetup {
  db: string;
  conn: mysql.Connection;
  dir: string;
  config: string;
  out: string;
}

const SCRIPT = fileURLToPath(new URL('../../scripts/test-servers.sh', import.meta.url));

/** A fresh database on the given server, for one test to own. */
export async function freshDatabase(url: string, prefix = 't'): Promise<{ db: string; conn: mysql.Connection }> {
  const db = `${prefix}_${randomBytes(4).toString('hex')}`;
  const conn = await connectReviving(url);
  await conn.query(`CREATE DATABASE \`${db}\``);
  await conn.query(`USE \`${db}\``);
  return { db, conn };
}

/**
 * Connects to a test server. A shared local server that refuses has stopped under the suite (seen once in CI, cause
 * unknown): the end of its error log is printed, so the next run on record says why, and it is started again, so one
 * server's death fails the test it hit rather than every test after it.
 */
async function connectReviving(url: string): Promise<mysql.Connection> {
  const connect = () => mysql.createConnection({ uri: url, multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true });
  try {
    return await connect();
  } catch (err) {
    const flavour = FLAVOURS.find((f) => urlOf(f) === url);
    if ((err as { code?: string }).code !== 'ECONNREFUSED' || flavour === undefined || inject('serversOrigin') !== 'local') throw err;
    const log = execFileSync('bash', [SCRIPT, 'errlog', flavour], { encoding: 'utf8' });
    console.warn(`the shared ${flavour} test server refused a connection: it has stopped. The end of its error log:\n${log}\nStarting it again.`);
    execFileSync('bash', [SCRIPT, 'up', flavour], { stdio: ['ignore', 'ignore', 'inherit'] });
    return connect();
  }
}
