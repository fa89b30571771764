import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckResult } from '../../src/source/checks/index.js';
import { readJsonl } from '../support/consistency.js';
import { FLAVOURS, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir } from '../support/tidemark.js';

// Each of the characters a URL would read as its own syntax, and a space.
const PASSWORD = 'p#ss/w%rd:@x?y 1';

describe.each(FLAVOURS)('a password with #, / and %% (%s)', (flavour) => {
  const id = (n: number) => n + (flavour === 'mysql' ? 0 : 50);
  let cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    cleanup = [];
  });

  it('syncs through source.password written in the YAML and from ${ENV}, and through source.url percent-encoded', async () => {
    const url = urlOf(flavour);
    const { db, conn } = await freshDatabase(url, 'pw');
    cleanup.push(() => conn.end());
    await conn.query('CREATE TABLE items (id INT PRIMARY KEY, version INT NOT NULL)');
    await conn.query('INSERT INTO items VALUES (1, 1), (2, 1)');
    const user = `tm_pw_${randomBytes(3).toString('hex')}`;
    await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY ?`, [PASSWORD]);
    cleanup.push(() => conn.query(`DROP USER '${user}'@'%'`));
    await conn.query(`GRANT SELECT, REPLICATION SLAVE, ${flavour === 'mysql' ? 'REPLICATION CLIENT' : 'BINLOG MONITOR'} ON *.* TO '${user}'@'%'`);
    const { host, port } = sourceFromUrl(url);

    // Written by hand, as the docs say: in single quotes, where the password is taken as it is.
    const configText = (n: number, password: string) => `name: pw
source:
  host: ${host}
  port: ${port}
  user: ${user}
  password: ${password}
  serverId: ${id(9230) + n}
  tables: [${db}.items]
  # An idle server's heartbeats move the stream to the position --until-caught-up waits for: sooner than every 10 s.
  heartbeatTimeoutMs: 1500
sink: { type: jsonl, path: out.jsonl }
checkpoint: { path: checkpoint.sqlite }
`;
    const runs = [
      { config: configText(0, `'${PASSWORD}'`), env: {} },
      { config: configText(1, '${TM_SOURCE_PASSWORD}'), env: { TM_SOURCE_PASSWORD: PASSWORD } },
    ];
    const synced = runs.map(async ({ config, env }) => {
      const dir = tempDir();
      writeFileSync(join(dir, 'tidemark.yaml'), config);
      const run = await runTidemark(['sync', '-c', join(dir, 'tidemark.yaml'), '--until-caught-up'], env);
      expect(run.code, run.stderr.slice(-2000)).toBe(0);
      expect(readJsonl(join(dir, 'out.jsonl')).map((l) => l.key)).toEqual([{ id: 1 }, { id: 2 }]);
      expect(run.stderr).not.toContain(PASSWORD);
    });

    const dir = tempDir();
    const encoded = `mysql://${user}:${encodeURIComponent(PASSWORD)}@${host}:${port}`;
    writeFileSync(join(dir, 'tidemark.yaml'), `name: pw\nsource: { url: '${encoded}', tables: [${db}.items] }\nsink: { type: stdout }\n`);
    const [checked] = await Promise.all([runTidemark(['check', '-c', join(dir, 'tidemark.yaml'), '--json']), ...synced]);
    const connection = (JSON.parse(checked.stdout) as CheckResult[]).find((r) => r.check === 'connection');
    expect(connection?.status, checked.stdout).toBe('PASS');
  });
});
