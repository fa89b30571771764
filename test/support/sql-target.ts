import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { inject } from 'vitest';

/** A database sink target a test owns: a PostgreSQL schema, or a database on a MySQL or MariaDB test server. */
export interface Target {
  kind: 'postgres' | 'mysql';
  /** `sink:` of a tidemark config writing here. */
  sink: Record<string, unknown>;
  /** Where tidemark's tables are: `"schema".` or `` `db`. `` */
  prefix: string;
  /** Rows of a target table as the database prints each value (null for NULL), ordered by `key`. */
  rows(table: string, key: string[]): Promise<Record<string, string | null>[]>;
  query(sql: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export const postgresUrl = (): string => inject('postgresUrl');

const TEXT = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

/** A new schema in the test PostgreSQL. */
export async function postgresTarget(): Promise<Target> {
  const schema = `t_${randomBytes(4).toString('hex')}`;
  const client = new pg.Client({ connectionString: postgresUrl() });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  const quote = (n: string) => `"${n.replace(/"/g, '""')}"`;
  return {
    kind: 'postgres',
    sink: { type: 'postgres', url: postgresUrl(), schema },
    prefix: `${schema}.`,
    async rows(table, key) {
      const { rows } = await client.query({ text: `SELECT * FROM ${schema}.${quote(table)} ORDER BY ${key.map(quote).join(', ')}`, types: TEXT });
      return rows as Record<string, string | null>[];
    },
    async query(sql, params) {
      return (await client.query(sql, params)).rows as Record<string, unknown>[];
    },
    async close() {
      await client.query(`DROP SCHEMA ${schema} CASCADE`);
      await client.end();
    },
  };
}

/** A new database on a MySQL or MariaDB test server (`url` without a database). */
export async function mysqlTarget(url: string): Promise<Target> {
  const db = `tgt_${randomBytes(4).toString('hex')}`;
  const conn = await mysql.createConnection({ uri: url, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
  await conn.query(`CREATE DATABASE ${db}`);
  const quote = (n: string) => `\`${n.replace(/`/g, '``')}\``;
  return {
    kind: 'mysql',
    sink: { type: 'mysql', url: `${url}/${db}` },
    prefix: `${db}.`,
    async rows(table, key) {
      const [rows] = await conn.query({
        sql: `SELECT * FROM ${db}.${quote(table)} ORDER BY ${key.map(quote).join(', ')}`,
        typeCast: (field, next) => (field.type === 'GEOMETRY' ? next() : field.string()),
      });
      return rows as Record<string, string | null>[];
    },
    async query(sql, params) {
      const [rows] = await conn.query(sql, params);
      return rows as Record<string, unknown>[];
    },
    async close() {
      await conn.query(`DROP DATABASE ${db}`);
      await conn.end();
    },
  };
}

/** Canonical values (docs/values.md) of the simple types as the target prints them: numbers and text as they are. */
export function asPrinted(rows: Record<string, unknown>[]): Record<string, string | null>[] {
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? null : String(v)])));
}
