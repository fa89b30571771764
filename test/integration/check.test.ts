import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/source/checks/index.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, writeConfig } from '../support/tidemark.js';

interface CheckRun {
  code: number | null;
  stdout: string;
  stderr: string;
  results: CheckResult[];
}

interface CheckOptions {
  source?: Record<string, unknown>;
  snapshot?: Record<string, unknown>;
  json?: boolean;
}

/** Runs `tidemark check` on a config capturing `tables` from the server at `url`. */
async function check(url: string, tables: string[], opts: CheckOptions = {}): Promise<CheckRun> {
  const config = writeConfig(tempDir(), {
    name: 'check-test',
    source: { ...sourceFromUrl(url), tables, ...opts.source },
    snapshot: opts.snapshot ?? {},
    sink: { type: 'stdout' },
  });
  const json = opts.json ?? true;
  const { code, stdout, stderr } = await runTidemark(['check', '-c', config, ...(json ? ['--json'] : [])]);
  return { code, stdout, stderr, results: json ? (JSON.parse(stdout) as CheckResult[]) : [] };
}

function row(run: CheckRun, name: string): CheckResult {
  const r = run.results.find((x) => x.check === name);
  if (!r) throw new Error(`no "${name}" row in:\n${run.stdout}\n${run.stderr}`);
  return r;
}

async function withItems(flavour: Flavour): Promise<{ db: string; conn: mysql.Connection }> {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'check');
  await conn.query('CREATE TABLE items (id INT PRIMARY KEY, version INT NOT NULL)');
  await conn.query('INSERT INTO items VALUES (1, 1), (2, 1), (3, 1)');
  return { db, conn };
}

describe.each(FLAVOURS)('tidemark check on %s', (flavour) => {
  const clientCheck = flavour === 'mysql' ? 'privilege REPLICATION CLIENT' : 'privilege BINLOG MONITOR';

  it('passes every check against the test server and exits 0', async () => {
    const { db, conn } = await withItems(flavour);
    try {
      const run = await check(urlOf(flavour), [`${db}.items`]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.results.map((r) => r.check)).toEqual([
        'connection',
        'tls',
        'server',
        'log_bin',
        'binlog_format',
        'binlog_row_image',
        'binlog_row_metadata',
        'gtid_mode',
        'binlog_transaction_compression',
        'binlog_row_value_options',
        'source.tables',
        'table keys',
        'privilege SELECT',
        'privilege REPLICATION SLAVE',
        clientCheck,
        'server id',
        'binlog retention',
      ]);
      for (const r of run.results) {
        // A binlog reader closed by an earlier test stays in the server's process list until the next binlog
        // write, and its server id cannot be seen, so this one may warn.
        if (r.check === 'server id') expect(r.status, r.found).not.toBe('FAIL');
        else expect(r, r.found).toMatchObject({ status: 'PASS', fix: null });
      }

      const text = await check(urlOf(flavour), [`${db}.items`], { json: false });
      expect(text.code).toBe(0);
      expect(text.stdout).toMatch(/^STATUS\s+CHECK\s+FOUND$/m);
      expect(text.stdout).toMatch(/^PASS\s+binlog_format\s+ROW$/m);
      expect(text.stdout).toContain('0 failed');
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });

  it('names a table without a primary key, with the snapshot.chunkKey fix', async () => {
    const { db, conn } = await withItems(flavour);
    try {
      await conn.query('CREATE TABLE nokey (a INT, b INT)');
      await conn.query('CREATE TABLE bycode (code VARCHAR(20) NOT NULL, note TEXT, UNIQUE KEY (code))');
      await conn.query('CREATE TABLE keyed (a INT, code VARCHAR(20) NOT NULL, UNIQUE KEY (code))');
      const run = await check(urlOf(flavour), [`${db}.*`], { snapshot: { chunkKey: { [`${db}.keyed`]: ['code'] } } });
      expect(run.code).toBe(1);
      const nokey = row(run, `key of ${db}.nokey`);
      expect(nokey.status).toBe('FAIL');
      expect(nokey.found).toContain(`${db}.nokey has no primary key`);
      expect(nokey.fix).toContain(`snapshot.chunkKey: { ${db}.nokey: [`);
      // A unique index of NOT NULL columns already there is offered as the chunk key.
      expect(row(run, `key of ${db}.bycode`).fix).toContain(`snapshot.chunkKey: { ${db}.bycode: [code] }`);
      // A table with a configured, valid chunk key and one with a primary key are fine.
      expect(run.results.map((r) => r.check)).not.toContain(`key of ${db}.keyed`);
      expect(run.results.map((r) => r.check)).not.toContain(`key of ${db}.items`);

      const text = await check(urlOf(flavour), [`${db}.nokey`], { json: false });
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(new RegExp(`^FAIL\\s+key of ${db}\\.nokey\\s`, 'm'));
      expect(text.stdout).toMatch(/^\s+fix: .*snapshot\.chunkKey/m);
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });

  it('fails an account without REPLICATION SLAVE, giving the GRANT', async () => {
    const { db, conn } = await withItems(flavour);
    const user = `tmcheck_${randomBytes(3).toString('hex')}`;
    try {
      await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'check-pw'`);
      await conn.query(`GRANT SELECT ON \`${db}\`.* TO '${user}'@'%'`);
      const run = await check(urlOf(flavour), [`${db}.items`], { source: { user, password: 'check-pw' } });
      expect(run.code).toBe(1);
      expect(row(run, 'privilege REPLICATION SLAVE')).toMatchObject({
        status: 'FAIL',
        fix: `GRANT REPLICATION SLAVE ON *.* TO '${user}'@'%';`,
      });
      expect(row(run, clientCheck)).toMatchObject({
        status: 'FAIL',
        fix: `GRANT ${flavour === 'mysql' ? 'REPLICATION CLIENT' : 'BINLOG MONITOR'} ON *.* TO '${user}'@'%';`,
      });
      expect(row(run, 'privilege SELECT').status).toBe('PASS');
      // The server settings are still all checked.
      expect(row(run, 'binlog_format').status).toBe('PASS');
    } finally {
      await conn.query(`DROP USER IF EXISTS '${user}'@'%'`);
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });

  it('fails a server id range that holds the source server id', async () => {
    const { db, conn } = await withItems(flavour);
    try {
      const [rows] = await conn.query('SELECT @@GLOBAL.server_id AS id');
      const ownId = Number((rows as { id: string }[])[0]!.id);
      const run = await check(urlOf(flavour), [`${db}.items`], { source: { serverId: ownId } });
      expect(run.code).toBe(1);
      const r = row(run, 'server id');
      expect(r.status).toBe('FAIL');
      expect(r.found).toContain(`the source itself has server_id ${ownId}`);
      expect(r.fix).toMatch(/^source\.serverId: \d+$/);
    } finally {
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });

  it('reports a connection failure as a failed check', async () => {
    const run = await check(urlOf(flavour), ['shop.orders'], { source: { user: 'tidemark_no_such_user', password: 'wrong' } });
    expect(run.code).toBe(1);
    expect(run.results).toHaveLength(1);
    expect(run.results[0]).toMatchObject({ check: 'connection', status: 'FAIL' });
    expect(run.results[0]!.found).toContain('access denied');
    expect(run.results[0]!.fix).toContain('source.password');
  });
});

describe('tidemark check with bad server settings', () => {
  it('fails binlog_format=STATEMENT with the fix (MariaDB)', async () => {
    const { db, conn } = await withItems('mariadb');
    try {
      await conn.query("SET GLOBAL binlog_format = 'STATEMENT'");
      const run = await check(urlOf('mariadb'), [`${db}.items`]);
      expect(run.code).toBe(1);
      const r = row(run, 'binlog_format');
      expect(r.status).toBe('FAIL');
      expect(r.found).toMatch(/^STATEMENT:/);
      expect(r.fix).toContain("SET GLOBAL binlog_format = 'ROW';");
      expect(r.fix).toContain('binlog_format=ROW under [mysqld]');
    } finally {
      await conn.query("SET GLOBAL binlog_format = 'ROW'");
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });

  it('fails binlog_row_image=MINIMAL with the fix (MySQL)', async () => {
    const { db, conn } = await withItems('mysql');
    try {
      await conn.query("SET GLOBAL binlog_row_image = 'MINIMAL'");
      const run = await check(urlOf('mysql'), [`${db}.items`]);
      expect(run.code).toBe(1);
      const r = row(run, 'binlog_row_image');
      expect(r.status).toBe('FAIL');
      expect(r.found).toMatch(/^MINIMAL:/);
      expect(r.fix).toContain("SET PERSIST binlog_row_image = 'FULL';");
      expect(run.results.filter((x) => x.status === 'FAIL').map((x) => x.check)).toEqual(['binlog_row_image']);
    } finally {
      await conn.query("SET GLOBAL binlog_row_image = 'FULL'");
      await conn.query(`DROP DATABASE \`${db}\``);
      await conn.end();
    }
  });

  it('exits 2 on a config error', async () => {
    const run = await runTidemark(['check', '-c', join(tempDir(), 'missing.yaml')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('config file not found');
  });
});
