import type { Connection } from 'mysql2/promise';
import type { KeyTuple } from '../checkpoint/store.js';
import type { ColumnInfo } from './schema.js';

const INTEGER_TYPES = new Set(['tinyint', 'smallint', 'mediumint', 'int', 'integer', 'bigint', 'year']);
const DECIMAL_TYPES = new Set(['decimal', 'numeric']);
const FLOAT_TYPES = new Set(['float', 'double', 'real']);
const COLLATED_TYPES = new Set(['char', 'varchar', 'tinytext', 'text', 'mediumtext', 'longtext', 'enum', 'set']);
const BINARY_TYPES = new Set(['binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob']);

/** Orders canonical numbers exactly: integers beyond 2^53 arrive as decimal strings. */
function compareNumeric(a: unknown, b: unknown): number {
  const x = String(a);
  const y = String(b);
  if (/^-?\d+$/.test(x) && /^-?\d+$/.test(y)) {
    const d = BigInt(x) - BigInt(y);
    return d < 0n ? -1 : d > 0n ? 1 : 0;
  }
  return compareDecimalStrings(x, y);
}

function compareDecimalStrings(x: string, y: string): number {
  const neg = (s: string) => s.startsWith('-');
  if (neg(x) !== neg(y)) return neg(x) ? -1 : 1;
  const sign = neg(x) ? -1 : 1;
  const [xi = '', xf = ''] = x.replace('-', '').split('.');
  const [yi = '', yf = ''] = y.replace('-', '').split('.');
  const xi2 = xi.replace(/^0+/, '');
  const yi2 = yi.replace(/^0+/, '');
  if (xi2.length !== yi2.length) return sign * (xi2.length - yi2.length);
  if (xi2 !== yi2) return sign * (xi2 < yi2 ? -1 : 1);
  const len = Math.max(xf.length, yf.length);
  const a = xf.padEnd(len, '0');
  const b = yf.padEnd(len, '0');
  return a === b ? 0 : sign * (a < b ? -1 : 1);
}

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const compareBytes = (a: unknown, b: unknown): number => Buffer.compare(Buffer.from(String(a), 'base64'), Buffer.from(String(b), 'base64'));

/** BIT(n) is a number up to 53 bits and big-endian bytes (base64) beyond; either way it orders as an unsigned integer. */
const compareBits = (a: unknown, b: unknown): number => (typeof a === 'number' && typeof b === 'number' ? a - b : compareBytes(a, b));

/** TIME is a signed duration ('-838:59:59.000000' .. '838:59:59.000000'), so it orders by its value, not its text. */
function timeValue(v: unknown): number {
  const m = /^(-?)(\d+):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(String(v));
  if (!m) return NaN;
  const micros = ((Number(m[2]) * 60 + Number(m[3])) * 60 + Number(m[4])) * 1e6 + Number((m[5] ?? '').padEnd(6, '0'));
  return m[1] ? -micros : micros;
}

type Comparator = (a: unknown, b: unknown) => number;

/** Sort weights of changed rows' keys kept between lookups. */
const WEIGHT_CACHE_LIMIT = 200_000;

/**
 * Orders chunk-key tuples the way the server does, so chunk bounds (found by the server) and
 * "which chunk holds this key" (decided here) agree. Integers and decimals compare numerically,
 * binary strings bytewise, and collated strings by the server's own sort weights
 * (`WEIGHT_STRING`), because JavaScript's order is wrong for `_ci`/`_ai` collations
 * ('a' = 'A', 'é' = 'e'). Weights are fetched in batches by `prepare()` before `compare()` needs them.
 *
 * The weights of keys that come and go (a stream's changed rows) live in a bounded cache, cleared when full;
 * those of chunk bounds, which every lookup compares against for as long as the hand-off lasts, are pinned.
 */
export class KeyOrder {
  private readonly comparators: Comparator[];
  private readonly weights: Map<string, string>[];
  private readonly pinned: Map<string, string>[];

  private constructor(
    private readonly conn: Connection,
    private readonly columns: { column: ColumnInfo; padSpace: boolean }[],
  ) {
    this.weights = columns.map(() => new Map());
    this.pinned = columns.map(() => new Map());
    this.comparators = columns.map(({ column }, i) => this.comparatorFor(column, i));
  }

  static async create(conn: Connection, columns: ColumnInfo[]): Promise<KeyOrder> {
    const withPad = [];
    for (const column of columns) {
      withPad.push({ column, padSpace: column.collation ? await isPadSpace(conn, column.collation) : false });
    }
    return new KeyOrder(conn, withPad);
  }

  /** True when some key column needs server weights (collated strings). */
  get needsPrepare(): boolean {
    return this.columns.some(({ column }) => COLLATED_TYPES.has(column.dataType));
  }

  private comparatorFor(column: ColumnInfo, i: number): Comparator {
    if (INTEGER_TYPES.has(column.dataType) || DECIMAL_TYPES.has(column.dataType)) return compareNumeric;
    if (FLOAT_TYPES.has(column.dataType)) return (a, b) => Number(a) - Number(b);
    if (BINARY_TYPES.has(column.dataType)) return compareBytes;
    if (column.dataType === 'bit') return compareBits;
    if (column.dataType === 'time') return (a, b) => timeValue(a) - timeValue(b);
    if (COLLATED_TYPES.has(column.dataType)) {
      const weights = this.weights[i]!;
      const pinned = this.pinned[i]!;
      const weightOf = (v: unknown): string | undefined => {
        const k = this.weightKey(i, v);
        return weights.get(k) ?? pinned.get(k);
      };
      return (a, b) => {
        const wa = weightOf(a);
        const wb = weightOf(b);
        if (wa === undefined || wb === undefined) throw new Error(`key order: no sort weight prepared for ${JSON.stringify(wa === undefined ? a : b)}`);
        return compareStrings(wa, wb);
      };
    }
    // Temporal values in canonical ISO form sort correctly as text.
    return (a, b) => compareStrings(String(a), String(b));
  }

  /** PAD SPACE collations compare as if trailing spaces were absent; WEIGHT_STRING keeps them. */
  private weightKey(i: number, v: unknown): string {
    const s = String(v);
    return this.columns[i]!.padSpace ? s.replace(/ +$/, '') : s;
  }

  /**
   * Fetches the server's sort weights of every collated component not yet known; `pin` keeps them for good
   * (chunk bounds), otherwise they may be dropped by a later call and fetched again when needed.
   */
  async prepare(keys: Iterable<KeyTuple | null>, { pin = false }: { pin?: boolean } = {}): Promise<void> {
    for (let i = 0; i < this.columns.length; i++) {
      const { column } = this.columns[i]!;
      if (!COLLATED_TYPES.has(column.dataType)) continue;
      const pinned = this.pinned[i]!;
      const cache = pin ? pinned : this.weights[i]!;
      const missing = new Set<string>();
      for (const key of keys) {
        if (key === null) continue;
        const k = this.weightKey(i, key[i]);
        if (!cache.has(k) && !pinned.has(k)) missing.add(k);
      }
      if (missing.size === 0) continue;
      // Keep memory bounded on long streams; what is needed again is fetched again.
      if (!pin && cache.size > WEIGHT_CACHE_LIMIT) cache.clear();
      const values = [...missing];
      const charset = column.charset ?? 'utf8mb4';
      for (let start = 0; start < values.length; start += 500) {
        const batch = values.slice(start, start + 500);
        const exprs = batch.map(() => `HEX(WEIGHT_STRING(CONVERT(? USING ${charset}) COLLATE ${column.collation}))`);
        const [rows] = await this.conn.query({ sql: `SELECT ${exprs.join(', ')}`, rowsAsArray: true }, batch);
        const row = (rows as string[][])[0]!;
        for (let j = 0; j < batch.length; j++) cache.set(batch[j]!, row[j]!);
      }
    }
  }

  compare(a: KeyTuple, b: KeyTuple): number {
    for (let i = 0; i < this.comparators.length; i++) {
      const c = this.comparators[i]!(a[i], b[i]);
      if (c !== 0) return c;
    }
    return 0;
  }

  /** Whether `key` lies in `[lo, hi)`; null bounds are open. */
  inRange(key: KeyTuple, lo: KeyTuple | null, hi: KeyTuple | null): boolean {
    return (lo === null || this.compare(key, lo) >= 0) && (hi === null || this.compare(key, hi) < 0);
  }
}

async function isPadSpace(conn: Connection, collation: string): Promise<boolean> {
  try {
    const [rows] = await conn.query('SELECT PAD_ATTRIBUTE AS pad FROM INFORMATION_SCHEMA.COLLATIONS WHERE COLLATION_NAME = ?', [collation]);
    const pad = (rows as { pad: string }[])[0]?.pad;
    if (pad) return pad === 'PAD SPACE';
  } catch {
    // MariaDB has no PAD_ATTRIBUTE column: its NO PAD collations say so in their names.
  }
  return !/nopad|_0900_|_0800_/i.test(collation);
}

/**
 * Finds the chunk holding a key among contiguous chunks sorted by their lower bound
 * (chunk i covers [lo_i, lo_{i+1})): a binary search, since tables have thousands of chunks.
 */
export function findChunk<T extends { lo: KeyTuple | null }>(chunks: T[], key: KeyTuple, order: Pick<KeyOrder, 'compare'>): T | undefined {
  let low = 0;
  let high = chunks.length - 1;
  let found: T | undefined;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const c = chunks[mid]!;
    if (c.lo === null || order.compare(key, c.lo) >= 0) {
      found = c;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  return found;
}
