import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { decoderFor } from '../../src/events/charsets.js';
import { FLAVOURS, urlOf } from '../support/db.js';

// The binlog's text columns are decoded by tidemark (src/events/charsets.ts); the snapshot gets the server's own
// conversion to utf8mb4. This asks the server to convert every character of every charset it has and checks the
// decoder agrees: every byte, every 2-byte sequence, EUC's 3-byte ones, GB18030's 4-byte BMP ones and a sample of
// its others, and a sample of code points in the Unicode charsets.

const BATCH = 2000;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const hex = (...bytes: number[]) => Buffer.from(bytes).toString('hex');

/** Byte sequences to try in a charset of the given maximum character length; the server says which are characters. */
function sequences(charset: string, maxlen: number): string[] {
  if (charset === 'utf16' || charset === 'ucs2')
    return codePoints(charset === 'ucs2').map((c) => Buffer.from(String.fromCodePoint(c), 'utf16le').swap16().toString('hex'));
  if (charset === 'utf16le') return codePoints(false).map((c) => Buffer.from(String.fromCodePoint(c), 'utf16le').toString('hex'));
  if (charset === 'utf32') return codePoints(false).map((c) => c.toString(16).padStart(8, '0'));
  const found = range(0, 255).map((b) => hex(b));
  if (maxlen === 1) return found;
  for (const lead of range(0x80, 0xff)) for (const trail of range(0x40, 0xfe)) found.push(hex(lead, trail));
  if (charset === 'ujis' || charset === 'eucjpms') for (const a of range(0xa1, 0xfe)) for (const b of range(0xa1, 0xfe)) found.push(hex(0x8f, a, b));
  if (charset === 'gb18030') {
    for (const a of range(0x81, 0x84))
      for (const b of range(0x30, 0x39)) for (const c of range(0x81, 0xfe)) for (const d of range(0x30, 0x39)) found.push(hex(a, b, c, d));
    for (const a of range(0x85, 0xfe)) found.push(hex(a, 0x30 + (a % 10), 0x81 + ((a * 7) % 126), 0x39 - (a % 10)));
  }
  return found;
}

/** Every 61st code point of the BMP outside the surrogates, and (but for ucs2) a sample beyond it. */
function codePoints(bmpOnly: boolean): number[] {
  const bmp = range(0, 0xfffe / 61)
    .map((i) => i * 61)
    .filter((c) => c < 0xd800 || c > 0xdfff);
  return bmpOnly ? bmp : [...bmp, ...range(0, 200).map((i) => 0x10000 + i * 5000)];
}

describe.each(FLAVOURS)('charset decoding on %s', (flavour) => {
  it('decodes every character of every server charset as the server converts it to utf8mb4', async () => {
    const conn = await mysql.createConnection({ uri: urlOf(flavour), charset: 'UTF8MB4_UNICODE_CI' });
    try {
      const [charsets] = await conn.query('SELECT CHARACTER_SET_NAME AS name, MAXLEN AS maxlen FROM INFORMATION_SCHEMA.CHARACTER_SETS ORDER BY 1');
      const differences: string[] = [];
      let compared = 0;
      for (const { name, maxlen } of charsets as { name: string; maxlen: number }[]) {
        if (name === 'binary') continue;
        const decode = decoderFor(name);
        const all = sequences(name, Number(maxlen));
        for (let i = 0; i < all.length; i += BATCH) {
          const batch = all.slice(i, i + BATCH);
          const sql = `SELECT ${batch.map((s) => `HEX(CONVERT(CAST(X'${s}' AS CHAR CHARACTER SET ${name}) USING utf8mb4))`).join(', ')}`;
          const [rows] = await conn.query({ sql, rowsAsArray: true });
          (rows as (string | null)[][])[0]!.forEach((converted, k) => {
            const server = converted === null ? null : Buffer.from(converted, 'hex').toString('utf8');
            // Only characters: the server turns a sequence that is none (which a column cannot hold) into '?' or NULL.
            if (server === null || [...server].length !== 1 || (server === '?' && batch[k] !== '3f')) return;
            compared++;
            const ours = decode(Buffer.from(batch[k]!, 'hex'));
            if (ours !== server) differences.push(`${name} ${batch[k]}: server U+${server.codePointAt(0)!.toString(16)}, decoded ${JSON.stringify(ours)}`);
          });
        }
      }
      expect(differences.slice(0, 20), `${differences.length} differences`).toEqual([]);
      expect(compared).toBeGreaterThan(100_000);
    } finally {
      await conn.end();
    }
  });
});
