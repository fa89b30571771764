import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

// A self-signed certificate and its key, made for these tests only (openssl req -x509 -newkey ec).
const CERT = `-----BEGIN CERTIFICATE-----
MIIBoDCCAUWgAwIBAgIUKMbg/z6b0mUs8cm6BGU242qQj8wwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZdGlkZW1hcmsgdW5pdCB0ZXN0IGNsaWVudDAgFw0yNjEyMDIx
MTQ1MTVaGA8yMTI2MTEwODExNDUxNVowJDEiMCAGA1UEAwwZdGlkZW1hcmsgdW5p
dCB0ZXN0IGNsaWVudDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABN4PP1Y4Ibuz
5qugn1NX8q2pC5Efd6p258JXl/Tb/7LnsVJTM5IlV50MbWg7hwrvJ3NA4XF61x3H
5L38yOHhQx6jUzBRMB0GA1UdDgQWBBRzsKxcj1YsIMmHlCEeNu5WG2knATAfBgNV
HSMEGDAWgBRzsKxcj1YsIMmHlCEeNu5WG2knATAPBgNVHRMBAf8EBTADAQH/MAoG
CCqGSM49BAMCA0kAMEYCIQC6wm7IMC4/0EFaIhpTlQ122IDyQwbsYoCmLEJ5lRcs
tQIhAIvG9zrqNbiATyRpoDL/tO5WqmiI6/yeS9DydWbXNvyO
-----END CERTIFICATE-----
`;
const KEY_BODY = `MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgaDzRyB4KCKSN6AYX
XPHgNjzltCKz04EIOqYOfHvkKZahRANCAATeDz9WOCG7s+aroJ9TV/KtqQuRH3eq
dufCV5f02/+y57FSUzOSJVedDG1oO4cK7ydzQOFxetcdx+S9/Mjh4UMe`;
const KEY = `-----BEGIN PRIVATE KEY-----\n${KEY_BODY}\n-----END PRIVATE KEY-----\n`;

const dir = mkdtempSync(join(tmpdir(), 'tidemark-config-ssl-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
/** Writes a config whose source has the given `ssl` (left out when undefined) and returns its path. */
function configWith(ssl: unknown, source: Record<string, unknown> = {}, subdir = ''): string {
  const target = join(dir, subdir);
  mkdirSync(target, { recursive: true });
  const file = join(target, `config-${++files}.yaml`);
  const src = { user: 'cdc', tables: ['shop.orders'], ...source, ...(ssl === undefined ? {} : { ssl }) };
  writeFileSync(file, stringify({ name: 'shop-cdc', source: src, sink: { type: 'stdout' } }));
  return file;
}

function problemsOf(file: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    loadConfig(file, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return [...(err as ConfigError).problems];
  }
  throw new Error('expected loadConfig to throw');
}

describe('source.ssl', () => {
  it('defaults to mode preferred', () => {
    expect(loadConfig(configWith(undefined), {}).source.ssl).toEqual({ mode: 'preferred' });
  });

  it('takes a mode alone, also in the mysql client spelling', () => {
    expect(loadConfig(configWith('required'), {}).source.ssl).toEqual({ mode: 'required' });
    expect(loadConfig(configWith('VERIFY_IDENTITY'), {}).source.ssl).toEqual({ mode: 'verify-identity' });
    expect(loadConfig(configWith({ mode: 'disabled' }), {}).source.ssl).toEqual({ mode: 'disabled' });
  });

  it('reads ca, cert and key from files relative to the config file, or takes PEM text inline or from ${ENV}', () => {
    mkdirSync(join(dir, 'etc', 'tls'), { recursive: true });
    writeFileSync(join(dir, 'etc', 'tls', 'ca.pem'), CERT);
    writeFileSync(join(dir, 'etc', 'tls', 'client-key.pem'), KEY);
    const fromFiles = configWith({ mode: 'verify-identity', ca: 'tls/ca.pem', cert: CERT, key: 'tls/client-key.pem' }, {}, 'etc');
    expect(loadConfig(fromFiles, {}).source.ssl).toEqual({ mode: 'verify-identity', ca: CERT, cert: CERT, key: KEY });

    const absolute = configWith({ mode: 'verify-ca', ca: join(dir, 'etc', 'tls', 'ca.pem') });
    expect(loadConfig(absolute, {}).source.ssl).toEqual({ mode: 'verify-ca', ca: CERT });

    const fromEnv = configWith({ mode: 'required', cert: '${CLIENT_CERT}', key: '${CLIENT_KEY}' });
    expect(loadConfig(fromEnv, { CLIENT_CERT: CERT, CLIENT_KEY: KEY }).source.ssl).toEqual({ mode: 'required', cert: CERT, key: KEY });
  });

  it('names the key and the path of a file it cannot read', () => {
    const file = configWith({ mode: 'verify-ca', ca: 'missing/ca.pem' });
    expect(problemsOf(file)).toEqual([`source.ssl.ca: cannot read ${join(dir, 'missing', 'ca.pem')}: no such file`]);
    const key = configWith({ mode: 'required', cert: CERT, key: 'missing-key.pem' });
    expect(problemsOf(key)).toEqual([`source.ssl.key: cannot read ${join(dir, 'missing-key.pem')}: no such file`]);
    const notPem = join(dir, 'not-pem.txt');
    writeFileSync(notPem, 'hello');
    expect(problemsOf(configWith({ mode: 'verify-ca', ca: notPem }))).toEqual([`source.ssl.ca: ${notPem} holds no PEM text (a file starting with -----BEGIN)`]);
  });

  it('refuses a ca with a mode that does not check the certificate, and a cert without its key', () => {
    expect(problemsOf(configWith({ mode: 'required', ca: CERT }))).toEqual([
      "source.ssl.ca: is only used with mode verify-ca or verify-identity (mode required does not check the server's certificate); set source.ssl.mode to one of them",
    ]);
    expect(problemsOf(configWith({ ca: CERT }))[0]).toMatch(/^source\.ssl\.ca: is only used with mode verify-ca or verify-identity \(mode preferred/);
    expect(problemsOf(configWith({ mode: 'verify-ca', cert: CERT }))).toEqual([
      "source.ssl.key: required with source.ssl.cert (the client certificate's private key)",
    ]);
    expect(problemsOf(configWith({ mode: 'disabled', cert: CERT, key: KEY }))).toEqual([
      'source.ssl.cert: has no use with mode disabled (no TLS); remove it or choose another mode',
      'source.ssl.key: has no use with mode disabled (no TLS); remove it or choose another mode',
    ]);
  });

  it('names a misspelt mode and an unknown key', () => {
    expect(problemsOf(configWith('requierd'))).toEqual([
      'source.ssl.mode: expected one of disabled, preferred, required, verify-ca, verify-identity, got "requierd"',
    ]);
    expect(problemsOf(configWith({ mode: 'required', capath: '/etc/ssl' }))).toEqual(['source.ssl.capath: unknown key (allowed: mode, ca, cert, key)']);
    expect(problemsOf(configWith(5))).toEqual([
      'source.ssl: expected a mode (disabled, preferred, required, verify-ca, verify-identity) or a mapping of mode, ca, cert, key, got 5',
    ]);
  });

  it('checks that the files hold what they should', () => {
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(problemsOf(configWith({ mode: 'required', cert: CERT, key: other }))).toEqual([
      'source.ssl.key: is not the private key of the certificate in source.ssl.cert',
    ]);
    expect(problemsOf(configWith({ mode: 'verify-ca', ca: KEY }))).toEqual(['source.ssl.ca: the PEM text holds no certificate (-----BEGIN CERTIFICATE-----)']);
    const encrypted = generateKeyPairSync('ec', {
      namedCurve: 'P-256',
      privateKeyEncoding: { type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    }).privateKey;
    expect(problemsOf(configWith({ mode: 'required', cert: CERT, key: encrypted }))[0]).toMatch(
      /^source\.ssl\.key: the PEM text is an encrypted private key; tidemark needs it unencrypted/,
    );
  });
});

describe('secrets in config errors', () => {
  const SECRET = 'SuperSecretKeyMaterial0123456789';
  const echoes = (problems: string[]) => problems.some((p) => p.includes(SECRET) || p.includes(KEY_BODY.slice(0, 20)));

  it('never echoes an invalid source.ssl.key', () => {
    const broken = `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`;
    const inline = problemsOf(configWith({ mode: 'required', cert: CERT, key: broken }));
    expect(inline).toHaveLength(1);
    expect(inline[0]).toMatch(/^source\.ssl\.key: the PEM text is not a private key tidemark can use/);
    expect(echoes(inline)).toBe(false);

    // Pasted without its -----BEGIN line: on one line it looks like a file name, which is not shown either.
    const oneLine = problemsOf(configWith({ mode: 'required', cert: CERT, key: SECRET }));
    expect(oneLine).toEqual(['source.ssl.key: no such file (the value is not shown: it may be key material)']);
    const body = problemsOf(configWith({ mode: 'required', cert: CERT, key: KEY_BODY }));
    expect(body).toEqual(['source.ssl.key: is neither PEM text (starting with -----BEGIN) nor the name of a file']);
    expect(echoes(body)).toBe(false);

    // A number is described by its type only.
    expect(problemsOf(configWith({ mode: 'required', cert: CERT, key: 1234567 }))).toEqual([
      'source.ssl.key: expected a string, got a number (put it in quotes)',
    ]);
  });

  it('never echoes key material given where a mode belongs', () => {
    const problems = problemsOf(configWith(KEY));
    expect(problems).toEqual([
      `source.ssl.mode: expected one of disabled, preferred, required, verify-ca, verify-identity, got a string of ${KEY.trim().length} characters`,
    ]);
    expect(echoes(problems)).toBe(false);
  });

  it('never echoes a password around an invalid ${…} reference', () => {
    const problems = problemsOf(configWith(undefined, { password: `ab\${${SECRET}!}cd` }));
    expect(problems).toEqual(['source.password: an invalid reference (expected ${NAME} or ${NAME:-default}; write "$${" for a literal "${")']);
    const host = problemsOf(configWith(undefined, { host: '${not valid}' }));
    expect(host[0]).toContain('invalid reference "${not valid}"');
  });
});

describe('passwords with #, / and %', () => {
  const PASSWORD = 'p#ss/w%rd:@x';

  it('go through source.password as they are', () => {
    expect(loadConfig(configWith(undefined, { password: PASSWORD }), {}).source.password).toBe(PASSWORD);
    expect(loadConfig(configWith(undefined, { password: '${PW}' }), { PW: PASSWORD }).source.password).toBe(PASSWORD);
  });

  it('go through source.url percent-encoded, and unencoded get a message that says how', () => {
    const encoded = `mysql://cdc:${encodeURIComponent(PASSWORD)}@db.internal:3306`;
    expect(encoded).toBe('mysql://cdc:p%23ss%2Fw%25rd%3A%40x@db.internal:3306');
    const config = loadConfig(configWith(undefined, { user: undefined, url: encoded }), {});
    expect(config.source).toMatchObject({ host: 'db.internal', port: 3306, user: 'cdc', password: PASSWORD });

    const hash = problemsOf(configWith(undefined, { user: undefined, url: 'mysql://cdc@db.internal:3306/#secret' }));
    expect(hash).toEqual(['source.url: query parameters and fragments are not supported (in the password write # as %23, ? as %3F)']);
    const percent = problemsOf(configWith(undefined, { user: undefined, url: 'mysql://cdc:50%off@db.internal' }));
    expect(percent).toEqual(['source.url: malformed percent-encoding in the user or password (write % itself as %25)']);
    const slash = problemsOf(configWith(undefined, { user: undefined, url: 'mysql://cdc:a/b@db.internal' }));
    expect(slash[0]).toMatch(/^source\.url: not a valid URL; .*percent-encode/);
    for (const p of [...hash, ...percent, ...slash]) expect(p).not.toMatch(/secret|50%off|a\/b/);
  });
});
