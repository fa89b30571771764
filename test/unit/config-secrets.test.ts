import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'tidemark-config-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Distinctive enough that any echo of it, or of a good part of it, shows.
const SECRET = 'Zq7sEcReTvAlUe42';

let files = 0;
function write(text: string): string {
  const file = join(dir, `config-${++files}.yaml`);
  writeFileSync(file, text);
  return file;
}

/** The whole message and problem list of the ConfigError that loading `text` throws. */
function errorText(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    loadConfig(write(text), env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    return [e.message, ...e.problems].join('\n');
  }
  throw new Error('the config loaded');
}

const source = (extra: Record<string, unknown>) => ({ user: 'cdc', tables: ['shop.orders'], ...extra });
const yaml = (config: Record<string, unknown>) => stringify({ name: 'shop-cdc', sink: { type: 'stdout' }, ...config });
const kafka = (extra: Record<string, unknown>) => yaml({ source: source({}), sink: { type: 'kafka', brokers: ['k:9092'], ...extra } });
const database = (type: 'postgres' | 'mysql', extra: Record<string, unknown>) => yaml({ source: source({}), sink: { type, ...extra } });

/**
 * Each secret-bearing key with a value that is wrong in some way (a ${…} reference whose body is not a name, the
 * wrong type, a malformed URL): the error must name the key and leave the value out.
 */
const CASES: [string, string, string][] = [
  ['source.password: a bad reference', yaml({ source: source({ password: `ab\${${SECRET} x}cd` }) }), 'source.password'],
  ['source.password: a list', yaml({ source: source({ password: [SECRET] }) }), 'source.password'],
  ['source.url: a bad reference', yaml({ source: { url: `mysql://cdc:\${${SECRET}!}@h`, tables: ['a.b'] } }), 'source.url'],
  ['source.url: not a URL', yaml({ source: { url: `cdc:${SECRET}@h:33x06`, tables: ['a.b'] } }), 'source.url'],
  ['source.url: a # in the password', yaml({ source: { url: `mysql://cdc:ab#${SECRET}@h`, tables: ['a.b'] } }), 'source.url'],
  ['source.url: a bare %', yaml({ source: { url: `mysql://cdc:%zz${SECRET}@h`, tables: ['a.b'] } }), 'source.url'],
  ['source.url: a / in the password', yaml({ source: { url: `mysql://cdc:a/${SECRET}@h`, tables: ['a.b'] } }), 'source.url'],
  ['source.ssl.key: a bad reference', yaml({ source: source({ ssl: { mode: 'required', cert: 'c.pem', key: `\${${SECRET}!}` } }) }), 'source.ssl.key'],
  ['source.ssl.key: a one-line key', yaml({ source: source({ ssl: { mode: 'required', cert: 'c.pem', key: SECRET } }) }), 'source.ssl.key'],
  ['source.ssl: a key where the mode goes', yaml({ source: source({ ssl: `-----BEGIN PRIVATE KEY-----\n${SECRET}\n` }) }), 'source.ssl.mode'],
  ['sink.sasl.password: a bad reference', kafka({ sasl: { mechanism: 'plain', username: 'u', password: `\${${SECRET}!}` } }), 'sink.sasl.password'],
  ['sink.sasl.password: a mapping', kafka({ sasl: { mechanism: 'plain', username: 'u', password: { p: SECRET } } }), 'sink.sasl.password'],
  ['sink.sasl.secretAccessKey: a bad reference', kafka({ sasl: { mechanism: 'aws', secretAccessKey: `\${${SECRET}!}` } }), 'sink.sasl.secretAccessKey'],
  ['sink.ssl.key: a bad reference', kafka({ ssl: { key: `\${${SECRET}!}` } }), 'sink.ssl.key'],
  ['sink.ssl: a key where the mapping goes', kafka({ ssl: `-----BEGIN PRIVATE KEY-----\n${SECRET}\n` }), 'sink.ssl'],
  ['sink.url (postgres): not a URL', database('postgres', { url: `postgres//u:${SECRET}@h/db` }), 'sink.url'],
  ['sink.url (postgres): a fragment', database('postgres', { url: `postgres://u:a#${SECRET}@h/db` }), 'sink.url'],
  ['sink.url (mysql): no database', database('mysql', { url: `mysql://u:${SECRET}@h` }), 'sink.url'],
  ['sink.password (mysql): a number', database('mysql', { user: 'u', database: 'd', password: 4242424242 }), 'sink.password'],
  ['sink.ssl (postgres): a key where the mapping goes', database('postgres', { url: 'postgres://u@h/db', ssl: `x${SECRET}` }), 'sink.ssl'],
];

describe('config errors never echo a secret', () => {
  it.each(CASES)('%s', (_, text, key) => {
    const message = errorText(text);
    expect(message).toContain(key);
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain(SECRET.slice(0, 8));
    expect(message).not.toContain('4242424242');
  });

  it('quotes no line of a YAML syntax error, where a password may stand', () => {
    const message = errorText(`name: x\nsource:\n  user: cdc\n  password: "${SECRET}\n  tables: [a.b]\nsink: { type: stdout }\n`);
    expect(message).toMatch(/invalid YAML .*\n.*line \d+, column \d+/);
    expect(message).not.toContain(SECRET.slice(0, 8));
  });

  it('names the variable, not its value, when a secret comes from the environment and is wrong', () => {
    const message = errorText(yaml({ source: source({ password: '${DB_PASSWORD}' }), snapshot: { chunkSize: '${CHUNK}' } }), {
      DB_PASSWORD: SECRET,
      CHUNK: 'lots',
    });
    expect(message).toContain('snapshot.chunkSize');
    expect(message).not.toContain(SECRET);
    expect(message).not.toContain('environment variable DB_PASSWORD');
  });
});
