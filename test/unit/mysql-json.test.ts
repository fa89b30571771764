import { describe, expect, it } from 'vitest';
import { decimalText, renderJsonDouble, renderMysqlJson } from '../../src/events/mysql-json.js';

/** Binary documents as MySQL 9.7 wrote them to the binlog, with the text it prints for each (`CAST(j AS CHAR)`). */
const FROM_THE_SERVER: [hex: string, text: string][] = [
  [
    '00050038002700010028000100290001002a0001002b0002000b2d000c350004000004010005fbff616364656262000000000000f03f02780a',
    '{"a": 1.0, "c": "x\\n", "d": null, "e": true, "bb": -5}',
  ],
  [
    '0207004b000f19000f22000a2b00093300093b00074300074700f6070b028000000c32f6070a017ffffffffaffffffffffffffff0000000000000080ffffffff0000000000000080ffff0000',
    '[12.50, -0.5, 18446744073709551615, -9223372036854775808, 4294967295, -2147483648, 65535]',
  ],
  [
    '0205003f000f13000f1d000f27000f31000f3b000a080000000000bab2190c0820a107fb7ebbb2190b08702ffc4737ffffff0c08000000053144b2190f0200ff',
    '["2024-02-29", "2024-02-29 23:59:59.500000", "-12:34:56.250000", "2024-01-02 03:04:05.000000", "base64:type15:AP8="]',
  ],
  ['0c04f09f9880', '"😀"'],
  ['0b0000000000000080', '-0.0'],
  ['0400', 'null'],
];

describe('renderMysqlJson', () => {
  it.each(FROM_THE_SERVER)('renders %s as the server prints it', (hex, text) => {
    expect(renderMysqlJson(Buffer.from(hex, 'hex'))).toBe(text);
  });

  it('reads the large format, whose 4-byte entries hold INT32 values inline', () => {
    const doc = Buffer.from(
      [
        '03', // large array
        '03000000', // 3 elements
        '21000000', // 33 bytes
        '0707000000', // INT32 7, inline
        '0c17000000', // string at offset 23
        '0b19000000', // double at offset 25
        '0173', // "s"
        '0000000000000440', // 2.5
      ].join(''),
      'hex',
    );
    expect(renderMysqlJson(doc)).toBe('[7, "s", 2.5]');
  });

  it('reads an empty value as the JSON null MySQL takes it for', () => {
    expect(renderMysqlJson(Buffer.alloc(0))).toBe('null');
  });

  it('refuses a value type it does not know', () => {
    expect(() => renderMysqlJson(Buffer.from('0d00', 'hex'))).toThrow(/unknown value type 13/);
  });
});

describe('renderJsonDouble', () => {
  it.each([
    [1, '1.0'],
    [-0, '-0.0'],
    [0, '0.0'],
    [100, '100.0'],
    [12.5, '12.5'],
    [0.1, '0.1'],
    [1e-7, '0.0000001'],
    [1e-15, '0.000000000000001'],
    [1.5e-15, '0.0000000000000015'],
    [1e-16, '1e-16'],
    [123456789012345, '123456789012345.0'],
    [1e15, '1e15'],
    [1e16, '1e16'],
    [3938927522752580.5, '3938927522752580.5'],
    [2 ** 64, '1.8446744073709552e19'],
    [1.2345678901234568e29, '1.2345678901234568e29'],
    [-1.7976931348623157e308, '-1.7976931348623157e308'],
    [5e-324, '5e-324'],
  ])('%d as %s', (x, text) => {
    expect(renderJsonDouble(x)).toBe(text);
  });
});

describe('decimalText', () => {
  it('prints the binary DECIMAL with its scale and without leading zeros', () => {
    // DECIMAL(10,2) 12.50: 8 integer digits in 4 bytes (top bit set: non-negative), 2 fraction digits in 1.
    expect(decimalText(Buffer.from('8000000c32', 'hex'), 10, 2)).toBe('12.50');
    // Negative values have every bit inverted.
    expect(decimalText(Buffer.from('7ffffff3cd', 'hex'), 10, 2)).toBe('-12.50');
    expect(decimalText(Buffer.from('8000', 'hex'), 3, 1)).toBe('0.0');
  });
});
