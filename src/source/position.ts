/**
 * A binlog position at a transaction boundary. `gtid` is the executed GTID set (MySQL) or GTID
 * position (MariaDB) at that point when it is known exactly; file/pos alone orders positions.
 */
export interface Position {
  file: string;
  pos: number;
  gtid?: string;
}

/** The numeric suffix of a binlog file name (`binlog.000042` → 42): files sort by it, not by name. */
export function fileSequence(file: string): number {
  const m = /\.(\d+)$/.exec(file);
  if (!m) throw new Error(`binlog file name without a sequence number: ${file}`);
  return Number(m[1]);
}

export function comparePositions(a: Position, b: Position): number {
  return fileSequence(a.file) - fileSequence(b.file) || a.pos - b.pos;
}

export function formatPosition(p: Position): string {
  return `${p.file}:${p.pos}${p.gtid ? ` (${p.gtid})` : ''}`;
}

export function minPosition<T extends Position>(positions: T[]): T | undefined {
  return positions.reduce<T | undefined>((min, p) => (min === undefined || comparePositions(p, min) < 0 ? p : min), undefined);
}

export function maxPosition<T extends Position>(positions: T[]): T | undefined {
  return positions.reduce<T | undefined>((max, p) => (max === undefined || comparePositions(p, max) > 0 ? p : max), undefined);
}

/** Binlog bytes from `from` to `to`; across files, the rest of `from`'s file plus every file in between. */
export function bytesBetween(from: Position, to: Position, logs: { name: string; size: number }[]): number | undefined {
  if (comparePositions(from, to) >= 0) return 0;
  if (from.file === to.file) return to.pos - from.pos;
  const first = logs.find((l) => l.name === from.file);
  if (!first) return undefined;
  const lo = fileSequence(from.file);
  const hi = fileSequence(to.file);
  let bytes = first.size - from.pos + to.pos;
  for (const l of logs) {
    const seq = fileSequence(l.name);
    if (seq > lo && seq < hi) bytes += l.size;
  }
  return bytes;
}
