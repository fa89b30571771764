import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import mysql from 'mysql2/promise';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { CheckResult } from '../../src/source/checks/index.js';
import { checkConsistency, formatReport, readJsonl, selectAllCanonical } from '../support/consistency.js';
import { FLAVOURS, type Flavour, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';
import { TlsSniffer } from '../support/tls-sniffer.js';
import { makeCertificates, TlsTerminator } from '../support/tls-terminator.js';
import { createWorkloadTable, startWriter } from '../support/workload.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const caOf = (flavour: Flavour): string => inject(flavour === 'mysql' ? 'mysqlCa' : 'mariadbCa');

/** An account that can capture, created REQUIRE SSL: the server refuses it any connection without TLS. */
async function tlsOnlyAccount(conn: mysql.Connection, flavour: Flavour): Promise<{ user: string; password: string }> {
  const user = `tm_tls_${randomBytes(3).toString('hex')}`;
  const password = `tls-${randomBytes(6).toString('hex')}`;
  await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}' REQUIRE SSL`);
  await conn.query(`GRANT SELECT, REPLICATION SLAVE, ${flavour === 'mysql' ? 'REPLICATION CLIENT' : 'BINLOG MONITOR'} ON *.* TO '${user}'@'%'`);
  return { user, password };
}

/** Size, modification time and bytes: a file that was not touched keeps all three. */
function fingerprint(path: string): string {
  const s = statSync(path);
  return `${s.size}:${s.mtimeMs}:${readFileSync(path).toString('base64')}`;
}

describe.each(FLAVOURS)('TLS to the source (%s)', (flavour) => {
  const id = (n: number) => n + (flavour === 'mysql' ? 0 : 50);
  let cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    cleanup = [];
  });

  it('an account created REQUIRE SSL syncs, snapshot then stream, on encrypted connections only (the binlog stream too), verified against the CA', async () => {
    const url = urlOf(flavour);
    const ca = caOf(flavour);
    expect(ca, 'the test servers give the CA of their certificate').not.toBe('');
    const { db, conn } = await freshDatabase(url, 'tls');
    cleanup.push(() => conn.end());
    await createWorkloadTable(conn, db, 'items', { rows: 400, key: 'int' });
    const account = await tlsOnlyAccount(conn, flavour);
    cleanup.push(() => conn.query(`DROP USER '${account.user}'@'%'`));
    // Every connection tidemark opens goes through the relay, which tells TLS from plain text on the wire.
    const sniffer = await TlsSniffer.start(sourceFromUrl(url));
    cleanup.push(() => sniffer.stop());
    const dir = tempDir();
    const out = join(dir, 'out.jsonl');
    const checkpoint = join(dir, 'checkpoint.sqlite');
    const configWith = (ssl: Record<string, unknown> | string, file = 'tidemark.yaml') =>
      writeConfig(
        dir,
        {
          name: 'tls',
          source: { host: sniffer.host, port: sniffer.port, ...account, serverId: id(9200), tables: [`${db}.items`], ssl },
          snapshot: { chunkSize: 100, parallelism: 2 },
          checkpoint: { path: checkpoint },
          sink: { type: 'jsonl', path: out },
          commit: { maxRecords: 200, maxDelayMs: 100 },
        },
        file,
      );
    const config = configWith({ mode: 'verify-ca', ca });

    const sync = tidemark(['sync', '-c', config]);
    cleanup.push(() => sync.kill('SIGKILL'));
    await sync.waitForLog((l) => l.msg === 'streaming', 60_000);
    const writer = startWriter(url, db, [{ table: 'items', key: 'int' }], { tps: 150, seed: 12 });
    await sleep(1500);
    await writer.stop();
    await sleep(500);
    expect((await sync.kill('SIGTERM')).code, sync.stderr.slice(-2000)).toBe(0);
    // Changes the stream delivered: they came on the binlog connection, through the relay like every other.
    expect(readJsonl(out).filter((l) => l.value !== null && l.value.op !== 'r').length).toBeGreaterThan(0);
    const finish = await runTidemark(['sync', '-c', config, '--until-caught-up']);
    expect(finish.code, finish.stderr.slice(-2000)).toBe(0);
    const report = checkConsistency(readJsonl(out), new Map([[`${db}.items`, await selectAllCanonical(conn, db, 'items', ['id'])]]), {
      keyColumns: { [`${db}.items`]: ['id'] },
    });
    expect(report.ok, formatReport(report)).toBe(true);

    const checked = await runTidemark(['check', '-c', config, '--json']);
    expect(checked.code, checked.stderr).toBe(0);
    const tlsRow = (JSON.parse(checked.stdout) as CheckResult[]).find((r) => r.check === 'tls');
    expect(tlsRow).toMatchObject({ status: 'PASS' });
    expect(tlsRow!.found).toMatch(/^TLSv1\.[23], cipher \S+; the server's certificate is checked against the CA, not its host name/);

    // Control, chunk readers with their binlog backfills, the stream, the second run and check: none in plain text.
    expect(sniffer.plain).toBe(0);
    expect(sniffer.tls).toBeGreaterThanOrEqual(6);

    // A certificate the CA did not sign, or TLS left out: refused before anything is read or written.
    const before = [fingerprint(checkpoint), fingerprint(out)];
    const wrongCa = caOf(flavour === 'mysql' ? 'mariadb' : 'mysql');
    for (const mode of ['verify-ca', 'verify-identity']) {
      const refused = await runTidemark(['sync', '-c', configWith({ mode, ca: wrongCa }, `${mode}.yaml`)]);
      expect(refused.code, refused.stderr).toBe(1);
      expect(refused.stderr).toContain(`source.ssl.mode ${mode} checks it against the CA in source.ssl.ca`);
      expect(refused.stderr).toContain('set source.ssl.ca to the CA that signed');
    }
    const plain = await runTidemark(['sync', '-c', configWith('disabled', 'disabled.yaml')]);
    expect(plain.code, plain.stderr).toBe(1);
    expect(plain.stderr).toContain(`cannot log in to the source as ${account.user}@`);
    expect(plain.stderr).toContain('An account created REQUIRE SSL gets this too without TLS');
    expect(plain.stderr).toContain('and this connection had none (source.ssl.mode disabled)');
    expect([fingerprint(checkpoint), fingerprint(out)]).toEqual(before);
    // The relay does see plain text when there is some: the disabled run's login went through it.
    expect(sniffer.plain).toBeGreaterThan(0);
  });

  it('verify-identity checks the host name in the certificate', async () => {
    const url = urlOf(flavour);
    const { db, conn } = await freshDatabase(url, 'tls_id');
    cleanup.push(() => conn.end());
    await conn.query('CREATE TABLE items (id INT PRIMARY KEY, version INT NOT NULL)');
    const { host, port, user, password } = sourceFromUrl(url);
    const config = writeConfig(tempDir(), {
      name: 'tls-identity',
      source: { host, port, user, password, serverId: id(9210), tables: [`${db}.items`], ssl: { mode: 'verify-identity', ca: caOf(flavour) } },
      sink: { type: 'stdout' },
    });
    const run = await runTidemark(['check', '-c', config, '--json']);
    if (flavour === 'mariadb') {
      // scripts/test-servers.sh gives MariaDB a certificate for 127.0.0.1 and localhost.
      expect(run.code, run.stderr).toBe(0);
      const tlsRow = (JSON.parse(run.stdout) as CheckResult[]).find((r) => r.check === 'tls');
      expect(tlsRow!.found).toContain("the server's certificate is checked against the CA and the host name");
    } else {
      // MySQL's own certificate names no host: the chain is right, the name is not.
      expect(run.code).toBe(1);
      expect(run.stdout + run.stderr).toContain(`the TLS certificate of the source at ${host}:${port} is not for the host ${host}`);
      expect(run.stdout + run.stderr).toContain('source.ssl.mode: verify-ca to check the chain only');
    }
  });

  /*
   * require_secure_transport is a global: while it is ON the server refuses every new plain TCP connection, other
   * tests' included. Safe here because integration files run one after another in one fork (vitest.config.ts), so
   * nothing else connects meanwhile, and it is ON for one short sync and check only; SET GLOBAL (not PERSIST) means a
   * server restart clears it even if this process dies in between.
   */
  it('a server with require_secure_transport=ON: the default (preferred) syncs; ssl disabled is told to turn TLS on', async () => {
    const url = urlOf(flavour);
    const { db, conn } = await freshDatabase(url, 'tls_rst');
    cleanup.push(() => conn.end());
    await conn.query('CREATE TABLE items (id INT PRIMARY KEY, version INT NOT NULL)');
    await conn.query('INSERT INTO items VALUES (1, 1), (2, 1), (3, 1)');
    const dir = tempDir();
    // Short heartbeats: on an idle server they carry the stream to the position --until-caught-up waits for.
    const source = { ...sourceFromUrl(url), serverId: id(9220), tables: [`${db}.items`], heartbeatTimeoutMs: 1500 };
    const config = writeConfig(dir, {
      name: 'rst',
      source,
      checkpoint: { path: join(dir, 'cp.sqlite') },
      sink: { type: 'jsonl', path: join(dir, 'out.jsonl') },
    });
    const plainConfig = writeConfig(dir, { name: 'rst', source: { ...source, ssl: 'disabled' }, sink: { type: 'stdout' } }, 'plain.yaml');

    // Switched on and off on connections of their own, in TLS: while it is ON a new plain connection is refused, and
    // the way back must not depend on a connection that may have been closed meanwhile.
    const setGlobal = async (value: 'ON' | 'OFF') => {
      const admin = await mysql.createConnection({ uri: url, ssl: { rejectUnauthorized: false } });
      try {
        await admin.query(`SET GLOBAL require_secure_transport = ${value}`);
      } finally {
        await admin.end();
      }
    };
    const restore = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await setGlobal('OFF');
        } catch (err) {
          if (attempt === 5) throw err;
          await sleep(200);
        }
      }
    };
    await setGlobal('ON');
    let synced: Awaited<ReturnType<typeof runTidemark>>;
    let plain: Awaited<ReturnType<typeof runTidemark>>;
    try {
      [synced, plain] = await Promise.all([runTidemark(['sync', '-c', config, '--until-caught-up']), runTidemark(['check', '-c', plainConfig])]);
    } finally {
      await restore();
    }
    expect(synced.code, synced.stderr.slice(-2000)).toBe(0);
    expect(readJsonl(join(dir, 'out.jsonl')).filter((l) => l.value?.op === 'r')).toHaveLength(3);
    expect(plain.code).toBe(1);
    if (flavour === 'mysql') {
      expect(plain.stdout + plain.stderr).toContain('takes only encrypted connections (require_secure_transport=ON) and source.ssl.mode is disabled');
    } else {
      // MariaDB refuses a plain connection then as it refuses a wrong password: the message names both causes.
      expect(plain.stdout + plain.stderr).toContain('access denied');
      expect(plain.stdout + plain.stderr).toContain('on a MariaDB server with require_secure_transport=ON');
    }
  });
});

// Certificates MySQL made at initialisation (a client certificate beside its CA) and certificates made here for a
// relay: MySQL only, where those files are.
describe('TLS to the source with other certificates (mysql)', () => {
  const flavour: Flavour = 'mysql';
  const id = (n: number) => n;
  let cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    cleanup = [];
  });

  // The servers' own certificates cannot show it: MySQL's names no host, the test MariaDB's names both localhost and
  // 127.0.0.1. mysql2 sends no server name for an address, and Node would then check the name "localhost".
  it('verify-identity to an IP address wants that address in the certificate, not localhost', async () => {
    const url = urlOf(flavour);
    const { db, conn } = await freshDatabase(url, 'tls_ip');
    cleanup.push(() => conn.end());
    await conn.query('CREATE TABLE items (id INT PRIMARY KEY, version INT NOT NULL)');
    const { user, password } = sourceFromUrl(url);
    const tryWith = async (altNames: string) => {
      const dir = tempDir();
      const { caFile, cert, key } = makeCertificates(dir, altNames);
      const relay = await TlsTerminator.start(sourceFromUrl(url), { cert, key });
      cleanup.push(() => relay.stop());
      const source = { host: '127.0.0.1', port: relay.port, user, password, serverId: id(9250), tables: [`${db}.items`] };
      const config = writeConfig(dir, { name: 'ip', source: { ...source, ssl: { mode: 'verify-identity', ca: caFile } }, sink: { type: 'stdout' } });
      const run = await runTidemark(['check', '-c', config, '--json']);
      return (JSON.parse(run.stdout) as CheckResult[]).find((r) => r.check === 'connection')!;
    };
    const [forName, forAddress] = await Promise.all([tryWith('DNS:localhost'), tryWith('IP:127.0.0.1')]);
    expect(forName.status).toBe('FAIL');
    expect(forName.found).toContain('is not for the host 127.0.0.1');
    expect(forAddress.status, forAddress.found).toBe('PASS');
  });

  it('a client certificate logs in an account created REQUIRE X509', async () => {
    const url = urlOf(flavour);
    const { db, conn } = await freshDatabase(url, 'tls_x509');
    cleanup.push(() => conn.end());
    await conn.query('CREATE TABLE items (id INT PRIMARY KEY, version INT NOT NULL)');
    const user = `tm_x509_${randomBytes(3).toString('hex')}`;
    await conn.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'x509-pw' REQUIRE X509`);
    cleanup.push(() => conn.query(`DROP USER '${user}'@'%'`));
    await conn.query(`GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${user}'@'%'`);
    // MySQL makes a client certificate signed by its CA beside the CA, in its data directory.
    const ca = caOf(flavour);
    const dataDir = dirname(ca);
    const { host, port } = sourceFromUrl(url);
    const dir = tempDir();
    const source = { host, port, user, password: 'x509-pw', serverId: id(9240), tables: [`${db}.items`] };
    const withCert = writeConfig(dir, {
      name: 'x509',
      source: { ...source, ssl: { mode: 'verify-ca', ca, cert: join(dataDir, 'client-cert.pem'), key: join(dataDir, 'client-key.pem') } },
      sink: { type: 'stdout' },
    });
    const without = writeConfig(dir, { name: 'x509', source: { ...source, ssl: { mode: 'verify-ca', ca } }, sink: { type: 'stdout' } }, 'without.yaml');
    const [ok, refused] = await Promise.all([runTidemark(['check', '-c', withCert, '--json']), runTidemark(['check', '-c', without, '--json'])]);
    const rowOf = (run: typeof ok, name: string) => (JSON.parse(run.stdout) as CheckResult[]).find((r) => r.check === name);
    expect(rowOf(ok, 'connection')?.status, ok.stdout).toBe('PASS');
    expect(rowOf(ok, 'tls')?.status, ok.stdout).toBe('PASS');
    expect(rowOf(refused, 'connection')).toMatchObject({ status: 'FAIL' });
    expect(rowOf(refused, 'connection')!.found).toContain('access denied');
  });
});
