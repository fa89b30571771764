import { randomBytes } from 'node:crypto';
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

/** A fresh database on the given server, for one test to own. */
export async function freshDatabase(url: string, prefix = 't'): Promise<{ db: string; conn: mysql.Connection }> {
  const db = `${prefix}_${randomBytes(4).toString('hex')}`;
  const conn = await mysql.createConnection({ uri: url, multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true });
  await conn.query(`CREATE DATABASE \`${db}\``);
  await conn.query(`USE \`${db}\``);
  return { db, conn };
}
