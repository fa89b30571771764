/**
 * A committed binlog transaction becomes change events: its row changes on captured tables, each passed
 * through the hand-off filter (ARCHITECTURE §3), and its truncates. `resolveChanges` does the part that
 * needs the server (which tables, sort weights of keys the filter will look up); `transactionEvents` is pure.
 */

import type { ErrorMode } from '../../errors.js';
import { failedRow, keyOrNull } from '../../events/dead-letter.js';
import type { DeadLetter, EventSource, RowEvent } from '../../events/event.js';
import type { BinlogTransaction, RowChange } from '../../source/binlog.js';
import { keyOf, type SnapshotTable } from '../../source/snapshot.js';
import type { HandoffFilter } from '../handoff.js';
import type { ResolvedTable, TableRegistry } from '../table-registry.js';
import { checkRowImage } from './row-image-check.js';

export interface ResolvedChange {
  change: RowChange;
  table: ResolvedTable;
}

/** The transaction's changes on captured tables, each with its table; resolved once per run of changes to one table. */
export async function resolveChanges(tx: BinlogTransaction, registry: TableRegistry, filter: HandoffFilter): Promise<ResolvedChange[]> {
  const out: ResolvedChange[] = [];
  let last: ResolvedTable | undefined;
  for (const change of tx.changes) {
    const table =
      last && last.table.schema.db === change.db && last.table.schema.table === change.table ? last : await registry.resolve(`${change.db}.${change.table}`);
    if (!table) continue;
    last = table;
    if (change.columns && registry.followsRowImages(table.table, tx.end))
      checkRowImage(change.columns, table.codec.schema, `ending at ${tx.end.file}:${tx.end.pos}`);
    out.push({ change, table });
  }
  if (filter.active) await prepareFilterKeys(out, filter, tx);
  return out;
}

/** Fetches, in one round trip per table, the sort weights of every key the filter will compare. */
async function prepareFilterKeys(changes: ResolvedChange[], filter: HandoffFilter, tx: BinlogTransaction): Promise<void> {
  const keysByTable = new Map<string, unknown[][]>();
  for (const { change, table } of changes) {
    const { name } = table.table;
    if (!filter.needsLookup(name, tx.end)?.needsPrepare) continue;
    const keys = keysByTable.get(name) ?? [];
    for (const r of [change.before, change.after]) if (r) keys.push(keyOf(r, table.codec.keyColumns, 'binlog'));
    keysByTable.set(name, keys);
  }
  for (const [name, keys] of keysByTable) await filter.needsLookup(name, tx.end)?.prepare(keys);
}

/**
 * The events of one transaction (or one part of a large one), in order: truncates first, then each row change the filter passes. An
 * update that changes the key is a delete of the old key and a create of the new one, each judged on its
 * own chunk. Every event shares one source object.
 */
export function transactionEvents(
  tx: BinlogTransaction,
  changes: ResolvedChange[],
  filter: HandoffFilter,
  serverId: number,
  errors: ErrorMode,
  /** The number of the first event: a large transaction's parts continue where the part before ended. */
  firstRow = 0,
): (RowEvent | DeadLetter)[] {
  const events: (RowEvent | DeadLetter)[] = [];
  const source: EventSource = { file: tx.end.file, pos: tx.end.pos, gtid: tx.gtid, serverId, tsMs: tx.tsMs, snapshot: false };
  let row = firstRow;
  for (const t of tx.truncates) events.push({ op: 't', db: t.db, table: t.table, key: '{}', before: null, after: null, row: row++, source });
  const f = filter.active ? filter : null;
  for (const { change, table } of changes) {
    const { codec } = table;
    const name = table.table.name;
    const { db, table: tableName } = codec.schema;
    const { before, after } = change;
    const mark = events.length;
    const markRow = row;
    try {
      if (before && after) {
        const oldKey = codec.binlogKey(before);
        const newKey = codec.binlogKey(after);
        // Canonical key text is equal exactly when every key value is.
        if (oldKey === newKey) {
          if (passes(f, name, codec, after, tx)) {
            events.push({ op: 'u', db, table: tableName, key: newKey, before: codec.binlogRow(before), after: codec.binlogRow(after), row: row++, source });
          }
        } else {
          if (passes(f, name, codec, before, tx))
            events.push({ op: 'd', db, table: tableName, key: oldKey, before: codec.binlogRow(before), after: null, row: row++, source });
          if (passes(f, name, codec, after, tx))
            events.push({ op: 'c', db, table: tableName, key: newKey, before: null, after: codec.binlogRow(after), row: row++, source });
        }
      } else if (after) {
        if (passes(f, name, codec, after, tx))
          events.push({ op: 'c', db, table: tableName, key: codec.binlogKey(after), before: null, after: codec.binlogRow(after), row: row++, source });
      } else if (before) {
        if (passes(f, name, codec, before, tx))
          events.push({ op: 'd', db, table: tableName, key: codec.binlogKey(before), before: codec.binlogRow(before), after: null, row: row++, source });
      }
    } catch (error) {
      // The whole change goes to the dead letters (or stops the run), not the half of a key change that encoded.
      events.length = mark;
      row = markRow;
      const where = `in the binlog transaction ending at ${tx.end.file}:${tx.end.pos}${tx.gtid ? ` (GTID ${tx.gtid})` : ''}`;
      const key = keyOrNull(codec.binlogKey, (after ?? before)!);
      events.push(failedRow(errors, { db, table: tableName, key, raw: before && after ? { before, after } : (after ?? before), error, where }, source, row++));
    }
  }
  return events;
}

/** A function, not a closure per change: this runs once per changed row. */
function passes(filter: HandoffFilter | null, name: string, codec: SnapshotTable, raw: Record<string, unknown>, tx: BinlogTransaction): boolean {
  return filter === null || filter.passes(name, keyOf(raw, codec.keyColumns, 'binlog'), tx.end);
}
