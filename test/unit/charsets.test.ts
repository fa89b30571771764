import { describe, expect, it } from 'vitest';
import { decoderFor } from '../../src/events/charsets.js';

const hex = (h: string) => Buffer.from(h, 'hex');

describe('decoderFor', () => {
  it("decodes latin1 as MySQL's cp1252, with the five bytes cp1252 leaves undefined as C1 controls", () => {
    expect(decoderFor('latin1')(hex('41818d8f909d80ff'))).toBe('A\u0081\u008d\u008f\u0090\u009d€ÿ');
  });

  it('decodes the single-byte charsets iconv-lite lacks, by the server tables', () => {
    expect(decoderFor('swe7')(hex('405b7d'))).toBe('ÉÄå');
    expect(decoderFor('koi8r')(hex('f0d2c9d7c5d4'))).toBe('Привет');
    expect(decoderFor('ascii')(hex('41'))).toBe('A');
  });

  it('corrects iconv-lite where the server converts a multi-byte character differently', () => {
    expect(decoderFor('sjis')(hex('41815f8160817c42'))).toBe('A\\\u301c\u2212B');
    expect(decoderFor('big5')(hex('a145a4a4a1c2'))).toBe('\u2022中\u203e');
    expect(decoderFor('eucjpms')(hex('f5a18fa2c3'))).toBe('\ue000\uffe4');
    expect(decoderFor('gb18030')(hex('a3a081308130'))).toBe('\ue5e5\u0080');
  });

  it('leaves multi-byte text without such characters to iconv-lite', () => {
    expect(decoderFor('gbk')(hex('c4e3bac3'))).toBe('你好');
    expect(decoderFor('euckr')(hex('c7d1b1db'))).toBe('한글');
  });

  it('decodes the Unicode charsets in the server byte order', () => {
    expect(decoderFor('utf16')(hex('00e9d83dde00'))).toBe('é😀');
    expect(decoderFor('ucs2')(hex('00e9'))).toBe('é');
    expect(decoderFor('utf16le')(hex('e9003dd800de'))).toBe('é😀');
    expect(decoderFor('utf32')(hex('000000e90001f600'))).toBe('é😀');
    expect(decoderFor('utf8mb3')(hex('c3a9'))).toBe('é');
  });

  it('refuses a charset it has no table for', () => {
    expect(() => decoderFor('klingon')).toThrow(/cannot decode the server charset klingon/);
  });
});
