import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import type mysql from 'mysql2/promise';

export type Op = 'r' | 'c' | 'u' | 'd' | 't';
export type Row = Record<string, unknown>;

export interface SourceInfo {
  db?: string;
  table?: string;
  file?: string;
  pos?: number;
  row?: number;
  gtid?: string | null;
  snapshot?: boolean | string;
  ts_ms?: number;
  server_id?: number;
  [field: string]: unknown;
}

export interface Envelope {
  before: Row | null;
  after: Row | null;
  source: SourceInfo;
  op: Op;
  ts_ms?: number;
  [field: string]: unknown;
}

/** One line of the jsonl sink; `value: null` is a tombstone. */
export interface OutputLine {
  topic: string;
  key: Row | null;
  value: Envelope | null;
}

export type ProblemKind =
  /** an event is missing: a version skipped, a change to a key never read or created, a create that is not version 1 */
  | 'gap'
  /** the same change emitted twice */
  | 'duplicate'
  /** the same line, byte for byte, twice (a repeated tombstone is a 'duplicate': after a key is re-inserted, its text legitimately recurs) */
  | 'duplicate-line'
  /** an event impossible in the key's state: version going back, create of a live key, stray tombstone, second read */
  | 'order'
  /** a `before` that is not the previous `after`, or a folded row that differs from the source */
  | 'mismatch'
  /** a key in the source with no live row in the output */
  | 'missing'
  /** a live key in the output that the source does not have */
  | 'extra'
  /** a line that cannot be checked: bad shape, key not matching the row, table without key columns */
  | 'malformed';

export interface Problem {
  kind: ProblemKind;
  /** "db.table" */
  table: string;
  /** The key's column values as JSON, in key-column order. */
  key?: string;
  /** 1-based line numbers of the events involved. */
  lines: number[];
  message: string;
}

export interface ConsistencyReport {
  ok: boolean;
  /** The first MAX_PROBLEMS problems, in output order (fold problems last). */
  problems: Problem[];
  problemCount: number;
  counts: {
    lines: number;
    events: Record<Op, number>;
    tombstones: number;
    /** Distinct keys seen in the output. */
    keys: number;
    /** Keys live after folding the output. */
    liveKeys: number;
    sourceRows: number;
  };
}

export interface ConsistencyOptions {
  /** Primary-key columns, in key order, of every table in the output or the source, by "db.table". */
  keyColumns: Record<string, string[]>;
  /** Tables re-snapshotted on purpose (`tidemark snapshot`): a later read of a key replaces its state. */
  allowReread?: Set<string>;
  /**
   * Accept a create with version > 1 that no delete in the same transaction explains. That is correct output
   * when a primary-key change moved a row out of a chunk read after the change (its delete is filtered, §3
   * "judged per side") into a chunk read before it, so turn it on when a writer runs during the snapshot.
   */
  allowUnpairedMoves?: boolean;
  /**
   * The tables' columns changed during the output (ALTER TABLE): a change's before image then has the columns,
   * and the encodings, of its time, not those of the event before it, so before images are not compared with the
   * state before them. Every other check stays, the final state included.
   */
  columnsChange?: boolean;
}

const MAX_PROBLEMS = 50;
const VERSION = 'version';

/** Reads a jsonl sink file. A line that is not JSON (a torn write) is an error naming the line. */
export function readJsonl(path: string): OutputLine[] {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line, i) => {
    try {
      return JSON.parse(line) as OutputLine;
    } catch (err) {
      throw new Error(`${path}:${i + 1}: not a JSON line (${(err as Error).message}): ${line.slice(0, 200)}`);
    }
  });
}

interface KeyState {
  live: boolean;
  row: Row | null;
  version: number;
  /** Line of the last event on this key. */
  line: number;
  lastOp: Op;
  awaitingTombstone: boolean;
  /** "op:version" → first line, to tell a repeat from a gap. */
  seen: Map<string, number>;
}

interface PendingMove {
  table: string;
  version: number;
  line: number;
  used: boolean;
}

/** The topic is "<name>.<db>.<table>"; the name may itself contain dots. */
function tableOfTopic(topic: string): string {
  const parts = topic.split('.');
  return parts.slice(-2).join('.');
}

const keyText = (columns: string[], row: Row): string => JSON.stringify(columns.map((c) => row[c] ?? null));

const isRow = (v: unknown): v is Row => typeof v === 'object' && v !== null && !Array.isArray(v);

function versionOf(row: Row | null): number | undefined {
  const v = row?.[VERSION];
  return Number.isSafeInteger(v) ? (v as number) : undefined;
}

/** Where a change was committed: the GTID, else the binlog position tidemark reports. */
const transactionOf = (s: SourceInfo): string => (typeof s.gtid === 'string' && s.gtid !== '' ? s.gtid : `${s.file}:${s.pos}`);

function rowDiff(output: Row, source: Row): string {
  const columns = [...new Set([...Object.keys(output), ...Object.keys(source)])];
  return columns
    .filter((c) => !isDeepStrictEqual(output[c], source[c]))
    .map((c) => `${c}: output ${JSON.stringify(output[c])}, source ${JSON.stringify(source[c])}`)
    .join('; ');
}

/**
 * Replays the output per key and checks ARCHITECTURE §7: a read (any version) or a create at version 1 first,
 * then versions +1 with `before` equal to the previous `after`, no gap, no repeat, deletes ending the key,
 * and the folded output equal to the source rows.
 */
export function checkConsistency(lines: OutputLine[], source: Map<string, Row[]>, opts: ConsistencyOptions): ConsistencyReport {
  const problems: Problem[] = [];
  let problemCount = 0;
  const report = (kind: ProblemKind, table: string, key: string | undefined, at: number[], message: string): void => {
    problemCount++;
    if (problems.length < MAX_PROBLEMS) problems.push({ kind, table, key, lines: at, message: `${key === undefined ? table : `${table} ${key}`}: ${message}` });
  };

  const events: Record<Op, number> = { r: 0, c: 0, u: 0, d: 0, t: 0 };
  let tombstones = 0;
  const states = new Map<string, Map<string, KeyState>>();
  const tablesWithoutKey = new Set<string>();
  const lineTexts = new Map<string, number>();
  const changeIds = new Map<string, number>();
  const moves = new Map<string, PendingMove[]>();

  const columnsOf = (table: string, line?: number): string[] | undefined => {
    const columns = opts.keyColumns[table];
    if (!columns && !tablesWithoutKey.has(table)) {
      tablesWithoutKey.add(table);
      report(
        'malformed',
        table,
        undefined,
        line === undefined ? [] : [line],
        `no key columns given for this table${line === undefined ? '' : ` (line ${line})`}`,
      );
    }
    return columns;
  };

  // biome-ignore lint/suspicious/useIterableCallbackReturn: `return report(...)` ends one line's check; report returns nothing
  lines.forEach((out, i) => {
    const n = i + 1;
    const table = tableOfTopic(out.topic);
    const columns = columnsOf(table, n);
    if (!columns) return;
    let tableStates = states.get(table);
    if (!tableStates) {
      tableStates = new Map();
      states.set(table, tableStates);
    }
    const value = out.value;

    if (value === null) {
      tombstones++;
      if (!isRow(out.key)) return report('malformed', table, undefined, [n], `line ${n}: tombstone without a key`);
      const key = keyText(columns, out.key);
      const state = tableStates.get(key);
      if (state?.awaitingTombstone) state.awaitingTombstone = false;
      else if (state?.lastOp === 'd') report('duplicate', table, key, [state.line, n], `line ${n}: second tombstone for the delete at line ${state.line}`);
      else
        report(
          'order',
          table,
          key,
          [n],
          `line ${n}: tombstone without a preceding delete${state ? ` (last event at line ${state.line} is '${state.lastOp}')` : ''}`,
        );
      return;
    }

    // A digest, not the text: outputs of a few hundred thousand lines are the point.
    const text = createHash('sha1').update(JSON.stringify(out)).digest('base64');
    const first = lineTexts.get(text);
    if (first !== undefined) {
      return report('duplicate-line', table, isRow(out.key) ? keyText(columns, out.key) : undefined, [first, n], `line ${n} repeats line ${first} exactly`);
    }
    lineTexts.set(text, n);

    const { op, before, after } = value;
    if (!Object.hasOwn(events, op) || !isRow(value.source)) return report('malformed', table, undefined, [n], `line ${n}: no valid op/source`);
    events[op]++;

    if (op === 't') {
      for (const state of tableStates.values()) {
        if (!state.live) continue;
        Object.assign(state, { live: false, row: null, line: n, lastOp: 't', awaitingTombstone: false });
      }
      return;
    }

    const image = op === 'd' ? before : after;
    const version = versionOf(image);
    if (!isRow(out.key) || !isRow(image) || version === undefined || (op === 'u' && versionOf(before) === undefined)) {
      return report(
        'malformed',
        table,
        undefined,
        [n],
        `line ${n}: '${op}' needs a key and ${op === 'd' ? 'a before' : op === 'u' ? 'before and after' : 'an after'} row with an integer ${VERSION}`,
      );
    }
    const key = keyText(columns, out.key);
    for (const [label, row] of [
      ['before', before],
      ['after', after],
    ] as const) {
      if (isRow(row) && keyText(columns, row) !== key) {
        return report('malformed', table, key, [n], `line ${n}: '${op}' ${label} row has key ${keyText(columns, row)}, not the event's key`);
      }
    }

    const state = tableStates.get(key);
    const prior = state ? `'${state.lastOp}' at line ${state.line}` : '';

    if (op !== 'r') {
      const id = JSON.stringify([table, key, op, version, value.source.gtid, value.source.file, value.source.pos, value.source.row]);
      const earlier = changeIds.get(id);
      if (earlier !== undefined)
        return report('duplicate', table, key, [earlier, n], `line ${n}: '${op}' version ${version} from the same source position as line ${earlier}`);
      changeIds.set(id, n);
    }

    const adopt = (): void => {
      const live = op !== 'd';
      const seen = state?.seen ?? new Map<string, number>();
      if (!seen.has(`${op}:${version}`)) seen.set(`${op}:${version}`, n);
      tableStates.set(key, { live, row: live ? after : null, version, line: n, lastOp: op, awaitingTombstone: op === 'd', seen });
    };
    const repeatOf = state?.seen.get(`${op}:${version}`);
    const repeat = (): void => report('duplicate', table, key, [repeatOf!, n], `line ${n}: '${op}' version ${version} repeats line ${repeatOf}`);
    const checkBefore = (): void => {
      if (state?.row && !opts.columnsChange && !isDeepStrictEqual(before, state.row)) {
        report('mismatch', table, key, [state.line, n], `line ${n}: before differs from the after of line ${state.line} (${rowDiff(before!, state.row)})`);
      }
    };

    switch (op) {
      case 'r':
        if (state && !opts.allowReread?.has(table)) {
          if (repeatOf !== undefined) return repeat();
          report('order', table, key, [state.line, n], `line ${n}: second snapshot read (after ${prior})`);
        } else if (state?.live && version < state.version) {
          report('order', table, key, [state.line, n], `line ${n}: re-read at version ${version} is older than version ${state.version} (${prior})`);
        }
        return adopt();

      case 'c': {
        if (state?.live) {
          if (repeatOf !== undefined) return repeat();
          report('order', table, key, [state.line, n], `line ${n}: create of a live key (after ${prior})`);
          return adopt();
        }
        if (version !== 1) {
          const candidates = moves.get(transactionOf(value.source)) ?? [];
          const move = candidates.find((m) => !m.used && m.table === table && m.version === version - 1);
          if (move) move.used = true;
          else if (!opts.allowUnpairedMoves) {
            report(
              'gap',
              table,
              key,
              [n],
              `line ${n}: create at version ${version}, neither 1 nor a key change (no delete at version ${version - 1} in transaction ${transactionOf(value.source)})`,
            );
          }
        }
        return adopt();
      }

      case 'u':
        if (!state) report('gap', table, key, [n], `line ${n}: update to version ${version} of a key never read or created`);
        else if (!state.live) {
          if (repeatOf !== undefined) return repeat();
          report('order', table, key, [state.line, n], `line ${n}: update of a deleted key (${prior})`);
        } else if (version === state.version + 1) checkBefore();
        else if (repeatOf !== undefined) return repeat();
        else if (version > state.version + 1)
          report('gap', table, key, [state.line, n], `line ${n}: version jumps from ${state.version} (${prior}) to ${version}`);
        else report('order', table, key, [state.line, n], `line ${n}: version goes back from ${state.version} (${prior}) to ${version}`);
        return adopt();

      case 'd': {
        if (!state) report('gap', table, key, [n], `line ${n}: delete at version ${version} of a key never read or created`);
        else if (!state.live) {
          if (repeatOf !== undefined) return repeat();
          report('order', table, key, [state.line, n], `line ${n}: delete of a deleted key (${prior})`);
        } else if (version === state.version) checkBefore();
        else if (version > state.version)
          report('gap', table, key, [state.line, n], `line ${n}: delete at version ${version} but the key is at version ${state.version} (${prior})`);
        else report('order', table, key, [state.line, n], `line ${n}: delete at version ${version}, older than version ${state.version} (${prior})`);
        const txn = transactionOf(value.source);
        const pending = moves.get(txn) ?? [];
        if (pending.length === 0) moves.set(txn, pending);
        pending.push({ table, version, line: n, used: false });
        return adopt();
      }
    }
  });

  let keys = 0;
  let liveKeys = 0;
  let sourceRows = 0;
  for (const table of new Set([...source.keys(), ...states.keys()])) {
    const tableStates = states.get(table) ?? new Map<string, KeyState>();
    keys += tableStates.size;
    const rows = source.get(table);
    if (!rows) {
      report('extra', table, undefined, [], `in the output but not in the source map`);
      continue;
    }
    sourceRows += rows.length;
    const columns = columnsOf(table);
    if (!columns) continue;
    const expected = new Map(rows.map((row) => [keyText(columns, row), row]));
    for (const [key, state] of tableStates) {
      if (!state.live) continue;
      liveKeys++;
      const row = expected.get(key);
      if (!row) report('extra', table, key, [state.line], `live in the output (last event '${state.lastOp}' at line ${state.line}) but not in the source`);
      else if (!isDeepStrictEqual(state.row, row))
        report('mismatch', table, key, [state.line], `output (line ${state.line}) differs from the source: ${rowDiff(state.row!, row)}`);
    }
    for (const key of expected.keys()) {
      const state = tableStates.get(key);
      if (state?.live) continue;
      report(
        'missing',
        table,
        key,
        state ? [state.line] : [],
        state ? `in the source but deleted in the output ('${state.lastOp}' at line ${state.line})` : 'in the source but never in the output',
      );
    }
  }

  return { ok: problemCount === 0, problems, problemCount, counts: { lines: lines.length, events, tombstones, keys, liveKeys, sourceRows } };
}

/** The report as text, for an assertion message. */
export function formatReport(report: ConsistencyReport): string {
  if (report.ok) return `consistent: ${JSON.stringify(report.counts)}`;
  const more = report.problemCount - report.problems.length;
  return [
    `${report.problemCount} problem(s):`,
    ...report.problems.map((p) => `  [${p.kind}] ${p.message}`),
    ...(more > 0 ? [`  … and ${more} more`] : []),
  ].join('\n');
}

const INTEGER_TYPES = new Set(['TINY', 'SHORT', 'LONG', 'INT24', 'LONGLONG', 'YEAR']);
const TEXT_TYPES = new Set(['NEWDECIMAL', 'DECIMAL', 'VARCHAR', 'VAR_STRING', 'STRING']);
const STRING_COLUMN_TYPES = new Set<number | undefined>([0x0f, 0xfd, 0xfe]);
const BINARY_CHARSET = 63;

/**
 * `SELECT *` of a table in key order, canonicalised as §5 says tidemark emits it, independently of tidemark's
 * encoder and of the connection's number options: integers as numbers (as strings beyond 2^53), DECIMAL as its
 * exact string, strings as strings, NULL as null. Other column types are an error, not a silent mismatch.
 */
export async function selectAllCanonical(conn: mysql.Connection, db: string, table: string, keyColumns: string[]): Promise<Row[]> {
  const ident = (name: string): string => `\`${name.replace(/`/g, '``')}\``;
  const unsupported = new Set<string>();
  const [rows, fields] = await conn.query({
    sql: `SELECT * FROM ${ident(db)}.${ident(table)} ORDER BY ${keyColumns.map(ident).join(', ')}`,
    typeCast: (field, next) => {
      if (INTEGER_TYPES.has(field.type)) {
        const text = field.string();
        if (text === null) return null;
        const n = Number(text);
        return Number.isSafeInteger(n) ? n : text;
      }
      if (TEXT_TYPES.has(field.type)) return field.string();
      unsupported.add(`${field.name} (${field.type})`);
      return next();
    },
  });
  // VARBINARY arrives as VAR_STRING too; tidemark emits it as base64, which field.string() is not.
  for (const f of fields) if (f.characterSet === BINARY_CHARSET && STRING_COLUMN_TYPES.has(f.columnType)) unsupported.add(`${f.name} (binary)`);
  if (unsupported.size > 0) throw new Error(`selectAllCanonical ${db}.${table}: no canonical form for column(s) ${[...unsupported].join(', ')}`);
  return rows as Row[];
}
