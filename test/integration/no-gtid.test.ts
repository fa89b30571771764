import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, writeConfig } from '../support/tidemark.js';

// Without GTIDs a chunk read cannot see which transactions were still committing at its low watermark.
// The test server runs with GTIDs; this file turns them off for its tests and back on after.
async function setGtidMode(admin: mysql.Connection, to: 'ON' | 'OFF'): Promise<void> {
  const steps = to === 'OFF' ? ['ON_PERMISSIVE', 'OFF_PERMISSIVE', 'OFF'] : ['OFF_PERMISSIVE', 'ON_PERMISSIVE', 'ON'];
  for (const step of steps) {
    if (step === 'ON') {
      for (let i = 0; i < 100; i++) {
        const [rows] = await admin.query("SHOW STATUS LIKE 'Ongoing_anonymous_transaction_count'");
        if (Number((rows as { Value: string }[])[0]!.Value) === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await admin.query(`SET GLOBAL gtid_mode = ${step}`);
  }
}

describe('a MySQL source with gtid_mode OFF', () => {
  let admin: mysql.Connection;
  beforeAll(async () => {
    admin = await mysql.createConnection(urlOf('mysql'));
    await setGtidMode(admin, 'OFF');
  });
  afterAll(async () => {
    await setGtidMode(admin, 'ON');
    await admin.end();
  });

  async function config(allow: boolean): Promise<{ dir: string; config: string; conn: mysql.Connection }> {
    const { db, conn } = await freshDatabase(urlOf('mysql'), 'nogtid');
    await conn.query('CREATE TABLE t (id INT PRIMARY KEY, version INT NOT NULL)');
    await conn.query('INSERT INTO t VALUES (1, 1), (2, 1)');
    const dir = tempDir();
    return {
      dir,
      conn,
      config: writeConfig(dir, {
        name: 'nogtid',
        source: { ...sourceFromUrl(urlOf('mysql')), serverId: 7560, tables: [`${db}.t`], ...(allow ? { allowWithoutGtid: true } : {}) },
        checkpoint: { path: join(dir, 'checkpoint.sqlite') },
        sink: { type: 'jsonl', path: join(dir, 'out.jsonl') },
      }),
    };
  }

  it('is refused by sync, naming the risk, the fix and the setting that accepts it; nothing is written', async () => {
    const { dir, config: file, conn } = await config(false);
    const run = await runTidemark(['sync', '-c', file, '--until-caught-up']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/gtid_mode OFF.*could then be missed.*SET PERSIST gtid_mode = ON.*source\.allowWithoutGtid: true/s);
    const check = await runTidemark(['check', '-c', file, '--json']);
    expect(check.code).toBe(1);
    expect(JSON.parse(check.stdout).find((r: { check: string }) => r.check === 'gtid_mode').status).toBe('FAIL');
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(dir)).toEqual(['tidemark.yaml']);
    await conn.end();
  });

  it('runs with source.allowWithoutGtid: true, and check only warns', async () => {
    const { config: file, conn } = await config(true);
    const run = await runTidemark(['sync', '-c', file, '--until-caught-up']);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    const check = await runTidemark(['check', '-c', file, '--json']);
    expect(JSON.parse(check.stdout).find((r: { check: string }) => r.check === 'gtid_mode').status).toBe('WARN');
    await conn.end();
  });
});
