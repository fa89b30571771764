import type { ChangeEvent, DeadLetter, EventSource, RowEvent, SchemaChange } from '../events/event.js';

/** The changes of one table between two barriers: each key's last change only, since the commit is one transaction. */
export interface TableChanges {
  db: string;
  table: string;
  /** By canonical key text: the create, update or snapshot read that leaves the row as it is in the source. */
  upserts: Map<string, RowEvent>;
  /** By canonical key text: rows to delete. */
  deletes: Map<string, RowEvent>;
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
  const steps: Step[] = [];
  const deadLetters: DeadLetter[] = [];
  let rows: Map<string, TableChanges> | null = null;
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
      steps.push({ kind: 'rows', tables: rows });
    }
    const id = `${e.db}.${e.table}`;
    let t = rows.get(id);
    if (!t) {
      t = { db: e.db, table: e.table, upserts: new Map(), deletes: new Map(), onlyReads: true };
      rows.set(id, t);
    }
    if (e.op === 'd') {
      t.upserts.delete(e.key);
      t.deletes.set(e.key, e);
    } else {
      t.deletes.delete(e.key);
      t.upserts.set(e.key, e);
      if (e.op !== 'r') t.onlyReads = false;
    }
  }
  return { steps, deadLetters, changes, last };
}
