import mysql from 'mysql2/promise';
import { randomBytes } from 'node:crypto';

export type Flavour = 'mysql' | 'mariadb';

export const FLAVOURS: Flavour[] = ['mysql', 'mariadb'];

/** A fresh database on the given server, for one test to own. */
export async function freshDatabase(url: string, prefix = 't'): Promise<{ db: string; conn: mysql.Connection }> {
  const db = `${prefix}_${randomBytes(4).toString('hex')}`;
  const conn = await mysql.createConnection({ uri: url, multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true });
  await conn.query(`CREATE DATABASE \`${db}\``);
  await conn.query(`USE \`${db}\``);
  return { db, conn };
}
