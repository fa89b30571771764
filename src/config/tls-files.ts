import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SourceTls } from './schema.js';

const PEM = /^\s*-----BEGIN /;
const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

type Part = 'ca' | 'cert' | 'key';

/**
 * `source.ssl` with `ca`, `cert` and `key` as PEM text: inline PEM stays, any other value names a file, read from
 * the config file's directory when relative. Each is parsed here, so a wrong file is a config error at start rather
 * than a TLS failure on some later connection. Problems are returned as `key: message` lines; none quotes key material.
 */
export function readTlsFiles(ssl: SourceTls, dir: string): { ssl: SourceTls; problems: string[] } {
  const out: SourceTls = { mode: ssl.mode };
  const problems: string[] = [];
  let leaf: X509Certificate | undefined;
  let key: KeyObject | undefined;
  for (const part of ['ca', 'cert', 'key'] as const) {
    const value = ssl[part];
    if (value === undefined) continue;
    const read = readPem(part, value, dir);
    if ('problem' in read) {
      problems.push(`source.ssl.${part}: ${read.problem}`);
      continue;
    }
    const parsed = part === 'key' ? parseKey(read.text) : parseCertificates(read.text);
    if ('problem' in parsed) {
      problems.push(`source.ssl.${part}: ${read.where} ${parsed.problem}`);
      continue;
    }
    if ('key' in parsed) key = parsed.key;
    else if (part === 'cert') leaf = parsed.certificates[0];
    out[part] = read.text;
  }
  if (leaf && key && !leaf.checkPrivateKey(key)) problems.push('source.ssl.key: is not the private key of the certificate in source.ssl.cert');
  return { ssl: out, problems };
}

function readPem(part: Part, value: string, dir: string): { text: string; where: string } | { problem: string } {
  if (PEM.test(value)) return { text: value, where: 'the PEM text' };
  // Text with line breaks or spaces is no file name: most likely PEM whose first line is missing.
  if (/\s/.test(value)) return { problem: 'is neither PEM text (starting with -----BEGIN) nor the name of a file' };
  const path = resolve(dir, value);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // A key pasted without its -----BEGIN line looks like a file name; such text never holds a dot, file names mostly do.
    if (part === 'key' && code === 'ENOENT' && !value.includes('.')) return { problem: 'no such file (the value is not shown: it may be key material)' };
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    return { problem: `cannot read ${path}: ${why}` };
  }
  if (!PEM.test(text)) return { problem: `${path} holds no PEM text (a file starting with -----BEGIN)` };
  return { text, where: path };
}

function parseCertificates(text: string): { certificates: X509Certificate[] } | { problem: string } {
  const blocks = [...text.matchAll(CERTIFICATE)].map((m) => m[0]);
  if (blocks.length === 0) return { problem: 'holds no certificate (-----BEGIN CERTIFICATE-----)' };
  try {
    return { certificates: blocks.map((b) => new X509Certificate(b)) };
  } catch (err) {
    return { problem: `holds a certificate that cannot be read (${(err as Error).message})` };
  }
}

function parseKey(text: string): { key: KeyObject } | { problem: string } {
  try {
    return { key: createPrivateKey(text) };
  } catch (err) {
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(text) || (err as NodeJS.ErrnoException).code === 'ERR_MISSING_PASSPHRASE') {
      return {
        problem: "is an encrypted private key; tidemark needs it unencrypted (openssl pkey -in key.pem -out plain.pem), kept private by the file's permissions",
      };
    }
    // Node's messages name the decoder that failed, never the key's bytes.
    return { problem: `is not a private key tidemark can use (${(err as Error).message})` };
  }
}
