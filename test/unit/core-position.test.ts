import { describe, expect, it } from 'vitest';
import { comparePositions, fileSequence, formatPosition, maxPosition, minPosition, type Position } from '../../src/source/position.js';

const p = (file: string, pos: number, gtid?: string): Position => (gtid === undefined ? { file, pos } : { file, pos, gtid });

describe('fileSequence', () => {
  it('reads the numeric suffix of MySQL and MariaDB binlog names', () => {
    expect(fileSequence('binlog.000042')).toBe(42);
    expect(fileSequence('mysql-bin.000001')).toBe(1);
    expect(fileSequence('mariadb-bin.1000000')).toBe(1_000_000);
    // A dotted base name must not confuse it: only the last suffix counts.
    expect(fileSequence('host.example.binlog.000007')).toBe(7);
  });

  it('rejects names without a sequence number', () => {
    expect(() => fileSequence('binlog')).toThrow('binlog file name without a sequence number: binlog');
    expect(() => fileSequence('binlog.')).toThrow('binlog file name without a sequence number: binlog.');
    expect(() => fileSequence('binlog.00a1')).toThrow('binlog file name without a sequence number: binlog.00a1');
    expect(() => fileSequence('')).toThrow('without a sequence number');
  });
});

describe('comparePositions', () => {
  it('orders files by sequence number, not by name', () => {
    // '000010' > '000009' either way, so also check names whose text order disagrees with their numbers.
    expect(comparePositions(p('binlog.000009', 999_999), p('binlog.000010', 4))).toBeLessThan(0);
    expect(comparePositions(p('binlog.000010', 4), p('binlog.000009', 999_999))).toBeGreaterThan(0);
    expect(comparePositions(p('binlog.999999', 4), p('binlog.1000000', 4))).toBeLessThan(0);
    expect(comparePositions(p('binlog.9', 4), p('binlog.10', 4))).toBeLessThan(0);
  });

  it('orders by pos within one file, and equal positions compare 0', () => {
    expect(comparePositions(p('binlog.000003', 157), p('binlog.000003', 4000))).toBeLessThan(0);
    expect(comparePositions(p('binlog.000003', 4000), p('binlog.000003', 157))).toBeGreaterThan(0);
    expect(comparePositions(p('binlog.000003', 157), p('binlog.000003', 157))).toBe(0);
  });

  it('ignores the GTID set: file/pos alone orders positions', () => {
    expect(comparePositions(p('binlog.000003', 157, 'uuid:1-5'), p('binlog.000003', 157, 'uuid:1-9'))).toBe(0);
  });

  it('throws on a bad file name on either side', () => {
    expect(() => comparePositions(p('nonsense', 4), p('binlog.000001', 4))).toThrow('without a sequence number: nonsense');
    expect(() => comparePositions(p('binlog.000001', 4), p('nonsense', 4))).toThrow('without a sequence number: nonsense');
  });
});

describe('minPosition / maxPosition', () => {
  const a = p('binlog.000009', 500);
  const b = p('binlog.000010', 120);
  const c = p('binlog.000010', 7000);
  const d = p('binlog.000002', 9_000_000);

  it('pick the extremes by numeric file order and return the element itself', () => {
    const all = [b, a, c, d];
    expect(minPosition(all)).toBe(d);
    expect(maxPosition(all)).toBe(c);
    expect(minPosition([a, b])).toBe(a);
    expect(maxPosition([a, b])).toBe(b);
  });

  it('keep extra fields of the element type', () => {
    const chunks = [
      { ...b, idx: 1 },
      { ...a, idx: 0 },
    ];
    expect(minPosition(chunks)?.idx).toBe(0);
    expect(maxPosition(chunks)?.idx).toBe(1);
  });

  it('return the first of equal extremes and undefined for no positions', () => {
    const a2 = p('binlog.000009', 500, 'other');
    expect(minPosition([a, a2])).toBe(a);
    expect(maxPosition([a, a2])).toBe(a);
    expect(minPosition([])).toBeUndefined();
    expect(maxPosition([])).toBeUndefined();
  });
});

describe('formatPosition', () => {
  it('shows file:pos and the GTID set when known', () => {
    expect(formatPosition(p('binlog.000010', 157))).toBe('binlog.000010:157');
    expect(formatPosition(p('binlog.000010', 157, 'u:1-3'))).toBe('binlog.000010:157 (u:1-3)');
  });
});
