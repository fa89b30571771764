import type { ChangeEvent, DeadLetter, EventSource, RowEvent, SchemaChange } from '../events/event.js';

/** The changes of one table between two barriers: each key's last change only, since the commit is one transaction. */
export interface TableChanges {
  db: string;
  table: string;
  /** One per key: the create, update or snapshot read that leaves the row as it is in the source. */
  upserts: RowEvent[];
  /** One per key: rows to delete. */
  deletes: RowEvent[];
  /** Every upsert is a snapshot read: the rows may be new to the target (the bulk path may try a plain COPY). */
  onlyReads: boolean;
}

/** One step of a commit, applied in order; a truncate or a schema change is a barrier between row steps. */
export type Step =
  | { kind: 'rows'; tables: Map<string, TableChanges> }
  | { kind: 'truncate'; db: string; table: string }
  | { kind: 'schema'; change: SchemaChange };

export interface SqlPlan {
  steps: Step[];
  deadLetters: DeadLetter[];
  /** Row events in the batch (what the commit counts). */
  changes: number;
  /** The source position of the last event: shown by `tidemark status` as the target's position. */
  last: EventSource | null;
}

/**
 * Folds a batch of events into steps. Within a step each key keeps only its last change: a key change arrives as a
 * delete of the old key and a create of the new one, so per-key order is all that matters and each statement
 * kind can be sent in bulk. Deletes go before upserts in a step, so a row's unique values are free before another
 * row takes them.
 */
export function planEvents(events: ChangeEvent[]): SqlPlan {
  const read = oneChunkRead(events);
  if (read) return read;
  const steps: Step[] = [];
  const deadLetters: DeadLetter[] = [];
  let rows: Map<string, TableChanges> | null = null;
  const folds: { changes: TableChanges; upserts: Map<string, RowEvent>; deletes: Map<string, RowEvent> }[] = [];
  let fold: Map<string, (typeof folds)[number]> | null = null;
  let changes = 0;
  let last: EventSource | null = null;
  for (const e of events) {
    last = e.source;
    if (e.op === 'dead') {
      deadLetters.push(e);
      continue;
    }
    if (e.op === 'schema' || e.op === 't') {
      rows = null;
      steps.push(e.op === 'schema' ? { kind: 'schema', change: e } : { kind: 'truncate', db: e.db, table: e.table });
      continue;
    }
    changes++;
    if (rows === null) {
      rows = new Map();
      fold = new Map();
      steps.push({ kind: 'rows', tables: rows });
    }
    const id = `${e.db}.${e.table}`;
    let t = fold!.get(id);
    if (!t) {
      t = { changes: { db: e.db, table: e.table, upserts: [], deletes: [], onlyReads: true }, upserts: new Map(), deletes: new Map() };
      rows.set(id, t.changes);
      fold!.set(id, t);
      folds.push(t);
    }
    if (e.op === 'd') {
      t.upserts.delete(e.key);
      t.deletes.set(e.key, e);
    } else {
      t.deletes.delete(e.key);
      t.upserts.set(e.key, e);
      if (e.op !== 'r') t.changes.onlyReads = false;
    }
  }
  for (const t of folds) {
    t.changes.upserts = [...t.upserts.values()];
    t.changes.deletes = [...t.deletes.values()];
  }
  return { steps, deadLetters, changes, last };
}

/**
 * The plan of a batch that is one chunk read (snapshot reads that share their source block, which each chunk read
 * makes once), with no folding: a chunk holds each key once, since it is read by a unique key.
 */
function oneChunkRead(events: ChangeEvent[]): SqlPlan | undefined {
  const first = events[0];
  if (first === undefined || first.op !== 'r') return undefined;
  for (const e of events) if (e.op !== 'r' || e.source !== first.source || e.table !== first.table || e.db !== first.db) return undefined;
  const upserts = events as RowEvent[];
  const tables = new Map([[`${first.db}.${first.table}`, { db: first.db, table: first.table, upserts, deletes: [], onlyReads: true }]]);
  return { steps: [{ kind: 'rows', tables }], deadLetters: [], changes: events.length, last: upserts[upserts.length - 1]!.source };
}
