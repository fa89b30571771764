import pRetry from 'p-retry';
import { type ErrorMode, SinkError } from '../errors.js';
import type { DeadLetterValue } from '../events/dead-letter.js';
import type { ChangeEvent, DeadLetter, EventSource, OutputRecord, RowEvent, SchemaChange } from '../events/event.js';
import { crashPoint } from '../faults.js';
import { createLogger } from '../ops/logger.js';
import type { ColumnInfo, TableSchema } from '../source/schema.js';
import { hasColumns, rowHeads } from './json-rows.js';
import type { DeadLetterCount, PreparedBatch, Sink } from './sink.js';
import { planEvents, type SqlPlan, type TableChanges } from './sql-plan.js';
import { MAX_IDENTIFIER, type Row, type SourceSchemas, type SqlTarget, type TargetTable, targetTableName } from './sql-target.js';

// A commit is retried as a whole, on a new connection, with backoff, for up to this long after its first failure.
const RETRY_WINDOW_MS = 60_000;
const BACKOFF = { minTimeout: 500, maxTimeout: 10_000, factor: 2 };

export interface SqlSinkOptions {
  /** The connector name: its row in tidemark_offsets and tidemark_tables. */
  name: string;
  tableName: string;
  errors: ErrorMode;
  /** `db.table` → the key columns of a table captured on snapshot.chunkKey. */
  chunkKeys: Record<string, string[]>;
}

/** A source table's target table as the sink knows it within one commit attempt, or after the last commit. */
interface TableState {
  source: string;
  target: string;
  key: string[];
  /** The source version the target table holds. */
  aligned: TableSchema;
  /** The target table's columns. */
  columns: Set<string>;
  /** `aligned` changed in this attempt: tidemark_tables is written with the commit. */
  alignedChanged: boolean;
  dropped: boolean;
}

/** Upserts of one column list: the rows' JSON text, which the target reads as it needs. */
interface RowGroup {
  names: string[];
  heads: string[];
  rows: string[];
  events: RowEvent[];
}

/** One table's changes of a step, parsed once per batch. */
interface ParsedChanges {
  upserts: RowGroup[];
  deletes: { key: Row; event: RowEvent }[];
  columns: Set<string>;
}

interface SqlBatch extends PreparedBatch {
  plan: SqlPlan;
  parsed: Map<TableChanges, ParsedChanges>;
  seq: number;
  /** The commit number this batch becomes; 0 for a batch with nothing to write. */
  commit: number;
  /** Dead letters the commit writes: the batch's own and the records the target refused. */
  letters: DeadLetterValue[];
}

/** A row statement the target refused for good: the commit is tried again row by row to find the rows. */
class RowsRefused extends Error {}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Rows into database tables, exactly once (ARCHITECTURE §5, Database sinks): each commit is one target transaction
 * holding the upserts, deletes and truncates of the batch, the DDL that follows the source's added columns (where
 * the database's DDL is transactional) and the connector's row in `tidemark_offsets`, whose commit number is how
 * the sink answers "do you hold commit N" after a crash. The rows are written before the checkpoint records the
 * commit as pending (prepareEvents), and made final by COMMIT (commit), so the records the target refuses are known
 * to the checkpoint as dead letters.
 */
export class SqlSink implements Sink {
  readonly guarantee = 'exactly-once';
  private readonly logger = createLogger();
  private readonly tables = new Map<string, TableState>();
  private draft = new Map<string, TableState>();
  private committed = 0;
  private started: Promise<void> | null = null;
  private failure: Error | null = null;
  private readonly targetNames = new Map<string, string>();

  constructor(
    readonly target: SqlTarget,
    private readonly schemas: SourceSchemas,
    private readonly opts: SqlSinkOptions,
  ) {}

  async holds(state: string): Promise<boolean> {
    await this.start();
    return ((await this.target.readOffsets(this.opts.name))?.commit ?? 0) >= Number(state);
  }

  async open(committedState: string | undefined): Promise<void> {
    await this.start();
    this.committed = (await this.target.readOffsets(this.opts.name))?.commit ?? 0;
    const inCheckpoint = Number(committedState || 0);
    if (this.committed < inCheckpoint) {
      throw new SinkError(
        `${this.target.where} holds commits up to ${this.committed} for connector ${this.opts.name} in tidemark_offsets, but the checkpoint says ${inCheckpoint} were committed: ` +
          'the target was restored or replaced, or the sink points at another database. Restore it, or run tidemark reset (or use a new checkpoint.path) to start over.',
      );
    }
    await this.checkExistingTables();
  }

  prepare(_records: OutputRecord[]): PreparedBatch {
    throw new Error('the database sinks take events (prepareEvents), not records');
  }

  async prepareEvents(events: ChangeEvent[], seq: number): Promise<SqlBatch> {
    if (this.failure) throw this.failure;
    const plan = planEvents(events);
    const nothing = plan.steps.length === 0 && plan.deadLetters.length === 0;
    const batch: SqlBatch = {
      state: String(nothing ? this.committed : this.committed + 1),
      plan,
      parsed: parse(plan),
      seq,
      commit: nothing ? 0 : this.committed + 1,
      letters: [],
    };
    if (!nothing) await this.write(batch);
    return batch;
  }

  async commit(prepared: PreparedBatch): Promise<void> {
    const batch = prepared as SqlBatch;
    if (this.failure) throw this.failure;
    if (batch.commit === 0) return;
    // The two moments a crash leaves the checkpoint's commit pending: the target has the rows uncommitted, or committed.
    crashPoint('sink-commit');
    try {
      await this.target.commit();
    } catch (err) {
      // A lost connection leaves the outcome unknown; the offsets row says which it was.
      this.logger.warn({ error: messageOf(err) }, `${this.target.kind}: COMMIT failed; checking whether it took effect`);
      await this.target.reset();
      this.draftDiscarded();
      try {
        await this.retrying(async () => {
          await this.target.connect();
          if (((await this.target.readOffsets(this.opts.name))?.commit ?? 0) >= batch.commit) return;
          await this.attempt(batch);
          await this.target.commit();
        });
      } catch (again) {
        this.failure = this.explain(again);
        throw this.failure;
      }
    }
    crashPoint('sink-committed');
    this.committed = batch.commit;
    for (const [id, st] of this.draft) {
      if (st.dropped) this.tables.delete(id);
      else this.tables.set(id, { ...st, alignedChanged: false });
    }
    this.draft = new Map();
  }

  async close(): Promise<void> {
    await this.target.close();
  }

  /** Connects and creates tidemark's own tables, once. */
  private start(): Promise<void> {
    this.started ??= (async () => {
      try {
        await this.target.connect();
        await this.target.ensureMetaTables();
      } catch (err) {
        this.started = null;
        throw new SinkError(`cannot use ${this.target.where}: ${messageOf(err)}`, { cause: err });
      }
    })();
    return this.started;
  }

  /**
   * Before anything is written: a captured table whose target table exists but was never used by this connector
   * must have its columns and a unique key on the source key, or the run stops here naming what is missing.
   */
  private async checkExistingTables(): Promise<void> {
    for (const schema of this.schemas.tables()) {
      const id = `${schema.db}.${schema.table}`;
      const target = this.targetName(schema.db, schema.table);
      if (await this.target.readAligned(this.opts.name, id)) continue;
      const described = await this.target.describe(target);
      if (described) this.verify(id, target, schema, this.keyOf(id, schema), described);
    }
  }

  /** Writes the batch in an open transaction, trying again while the failures are transient. */
  private async write(batch: SqlBatch): Promise<void> {
    try {
      await this.retrying(() => this.attempt(batch));
    } catch (err) {
      // Nothing more is written: a restart settles where the target is.
      this.failure = this.explain(err);
      throw this.failure;
    }
  }

  private async retrying(fn: () => Promise<void>): Promise<void> {
    await pRetry(fn, {
      ...BACKOFF,
      forever: true,
      maxRetryTime: RETRY_WINDOW_MS,
      shouldRetry: (err) => this.target.isTransient(err),
      onFailedAttempt: (err) => {
        if (this.target.isTransient(err)) {
          this.logger.warn({ attempt: err.attemptNumber, error: err.message }, `${this.target.kind}: commit failed; retrying on a new connection`);
        }
      },
    });
  }

  /** One try at writing the batch; a row statement refused for good sends it again row by row. Leaves the transaction open. */
  private async attempt(batch: SqlBatch): Promise<void> {
    try {
      await this.writeBatch(batch, false);
    } catch (err) {
      await this.abandon();
      if (!(err instanceof RowsRefused)) throw err;
      try {
        await this.writeBatch(batch, true);
      } catch (again) {
        await this.abandon();
        throw again;
      }
    }
  }

  private async abandon(): Promise<void> {
    await this.target.rollback().catch(() => this.target.reset());
    this.draftDiscarded();
  }

  /** What an attempt learnt about the tables is kept only once its commit is done: a rollback undoes its DDL. */
  private draftDiscarded(): void {
    this.draft = new Map();
  }

  private async writeBatch(batch: SqlBatch, isolate: boolean): Promise<void> {
    const t = this.target;
    batch.letters = batch.plan.deadLetters.map((d) => this.deadLetterValue(d));
    await t.connect();
    if (t.transactionalDdl) await t.begin();
    await this.alignTables(batch);
    if (!t.transactionalDdl) await t.begin();
    for (const step of batch.plan.steps) {
      if (step.kind === 'truncate') await t.truncate(this.state(`${step.db}.${step.table}`).target);
      else if (step.kind === 'rows') for (const changes of step.tables.values()) await this.writeRows(changes, batch.parsed.get(changes)!, isolate, batch);
    }
    for (const st of this.draft.values()) {
      if (st.alignedChanged) await t.writeAligned(this.opts.name, st.source, st.target, st.dropped ? null : st.aligned);
    }
    if (batch.letters.length > 0) await t.writeDeadLetters(batch.letters);
    const at = batch.plan.last;
    await t.writeOffsets(this.opts.name, {
      commit: batch.commit,
      seq: batch.seq,
      file: at?.file ?? null,
      pos: at?.pos ?? null,
      gtid: at?.gtid ?? null,
      committedAt: new Date().toISOString(),
    });
    const refused = batch.letters.filter((l) => l.reason === 'refused');
    batch.deadLetters = refused.length > 0 ? refused.map((l): DeadLetterCount => ({ table: `${l.db}.${l.table}`, reason: 'refused' })) : undefined;
  }

  /** Creates, adopts and alters the target tables the batch needs, in its order. */
  private async alignTables(batch: SqlBatch): Promise<void> {
    for (const step of batch.plan.steps) {
      if (step.kind === 'schema') await this.followSchemaChange(step.change, batch);
      else if (step.kind === 'truncate') await this.ensure(step.db, step.table);
      else {
        for (const changes of step.tables.values()) {
          const st = await this.ensure(changes.db, changes.table);
          await this.addColumns(st, batch.parsed.get(changes)!.columns);
        }
      }
    }
  }

  private state(id: string): TableState {
    const st = this.draft.get(id);
    if (!st) throw new Error(`no target table prepared for ${id}`);
    return st;
  }

  /** The table's state for this attempt: known, or found in the target (created from `schema` when missing). */
  private async ensure(db: string, table: string, schema?: TableSchema): Promise<TableState> {
    const id = `${db}.${table}`;
    const drafted = this.draft.get(id);
    if (drafted && !drafted.dropped) return drafted;
    const known = drafted ? undefined : this.tables.get(id);
    if (known) {
      const st = { ...known, columns: new Set(known.columns) };
      this.draft.set(id, st);
      return st;
    }
    const target = this.targetName(db, table);
    const aligned = drafted ? undefined : await this.target.readAligned(this.opts.name, id);
    const described = await this.target.describe(target);
    const version = schema ?? aligned ?? (await this.schemas.current(db, table));
    if (!version) throw new SinkError(`tidemark knows no columns for ${id}, so it cannot create its target table ${target}`);
    let st: TableState;
    if (!described) {
      const key = this.keyOf(id, version);
      await this.target.createTable(target, version, key);
      st = this.newState(
        id,
        target,
        key,
        version,
        version.columns.map((c) => c.name),
        true,
      );
    } else if (!aligned) {
      const key = this.keyOf(id, version);
      this.verify(id, target, version, key, described);
      st = this.newState(id, target, key, version, [...described.columns.keys()], true);
    } else {
      st = this.newState(id, target, this.keyOf(id, aligned), aligned, [...described.columns.keys()], false);
    }
    this.draft.set(id, st);
    return st;
  }

  private newState(source: string, target: string, key: string[], aligned: TableSchema, columns: string[], alignedChanged: boolean): TableState {
    return { source, target, key, aligned, columns: new Set(columns), alignedChanged, dropped: false };
  }

  /** Columns the rows have and the target table lacks: added, as the source added them (a chunk read after an ALTER). */
  private async addColumns(st: TableState, names: Iterable<string>): Promise<void> {
    for (const name of names) {
      if (st.columns.has(name)) continue;
      let column = st.aligned.columns.find((c) => c.name === name);
      if (!column) {
        const [db, table] = [st.aligned.db, st.aligned.table];
        column = (await this.schemas.current(db, table))?.columns.find((c) => c.name === name);
        if (!column) throw new SinkError(`rows of ${st.source} have a column ${name} whose type tidemark does not know`);
        st.aligned = { ...st.aligned, columns: [...st.aligned.columns, column] };
        st.alignedChanged = true;
      }
      await this.target.addColumn(st.target, column);
      st.columns.add(name);
    }
  }

  /**
   * A DDL statement on a captured table. Added columns reach the target table in this commit; a dropped table keeps
   * its target table; any other change (a column dropped, renamed or retyped, a new key) stops the run, or is a dead
   * letter with errors.mode: dead-letter (the target table then keeps its columns).
   */
  private async followSchemaChange(change: SchemaChange, batch: SqlBatch): Promise<void> {
    const id = `${change.db}.${change.table}`;
    if (change.kind === 'drop' || change.schema === null) {
      const known = this.draft.get(id) ?? this.tables.get(id);
      const aligned = known ? known.aligned : await this.target.readAligned(this.opts.name, id);
      if (aligned) {
        const st = known ?? this.newState(id, this.targetName(change.db, change.table), [], aligned, [], true);
        this.draft.set(id, { ...st, columns: new Set(st.columns), dropped: true, alignedChanged: true });
      }
      return;
    }
    const next = change.schema;
    const st = await this.ensure(change.db, change.table, next);
    if (st.aligned === next) return;
    const problems = this.ddlProblems(id, st, next);
    if (problems.length > 0) {
      const error = `${change.ddl.slice(0, 500)} ${problems.join('; ')}: the target table ${st.target} follows added columns only`;
      if (this.opts.errors === 'fail') {
        throw new SinkError(
          `${error}. Set errors.mode: dead-letter to record the statement as a dead letter and go on with the columns ${st.target} has ` +
            '(and change the table by hand as the new columns need), or leave the table out of source.tables.',
        );
      }
      batch.letters.push({
        connector: this.opts.name,
        db: change.db,
        table: change.table,
        key: null,
        position: position(change.source, change.row),
        reason: 'refused',
        error,
        row: null,
        tsMs: Date.now(),
      });
    } else {
      // Set first, so the added columns' types are found in it.
      st.aligned = next;
      await this.addColumns(
        st,
        next.columns.map((c) => c.name),
      );
    }
    st.aligned = next;
    st.alignedChanged = true;
  }

  /** How a new version changes what the target table holds, beyond added columns. */
  private ddlProblems(id: string, st: TableState, next: TableSchema): string[] {
    const prev = st.aligned;
    const problems: string[] = [];
    for (const c of prev.columns) {
      const n = next.columns.find((x) => x.name === c.name);
      if (!n) {
        if (st.columns.has(c.name)) problems.push(`drops or renames column ${c.name}`);
      } else if (this.target.columnType(c) !== this.target.columnType(n)) {
        problems.push(`changes column ${c.name} from ${this.target.columnType(c)} to ${this.target.columnType(n)}`);
      }
    }
    const [before, after] = [this.keyOf(id, prev), this.keyOf(id, next)];
    if (before.join('\0') !== after.join('\0')) problems.push(`changes the key from (${before.join(', ')}) to (${after.join(', ')})`);
    return problems;
  }

  private async writeRows(changes: TableChanges, parsed: ParsedChanges, isolate: boolean, batch: SqlBatch): Promise<void> {
    const st = this.state(`${changes.db}.${changes.table}`);
    const byName = new Map(st.aligned.columns.map((c) => [c.name, c]));
    const columnsOf = (names: string[]): ColumnInfo[] => names.map((n) => byName.get(n)!);
    const keyColumns = columnsOf(st.key);
    const t = this.target;
    if (parsed.deletes.length > 0) {
      if (!isolate)
        await this.refusable(() =>
          t.deleteRows(
            st.target,
            keyColumns,
            parsed.deletes.map((d) => d.key),
          ),
        );
      else for (const d of parsed.deletes) await this.isolated(st, d.event, batch, () => t.deleteRows(st.target, keyColumns, [d.key]));
    }
    for (const group of parsed.upserts) {
      const columns = columnsOf(group.names);
      if (!isolate) await this.refusable(() => t.upsertRows(st.target, columns, st.key, group.rows, changes.onlyReads));
      else
        for (let i = 0; i < group.rows.length; i++) {
          await this.isolated(st, group.events[i]!, batch, () => t.upsertRows(st.target, columns, st.key, [group.rows[i]!], false));
        }
    }
  }

  private async refusable(write: () => Promise<void>): Promise<void> {
    try {
      await write();
    } catch (err) {
      if (this.target.isTransient(err)) throw err;
      throw new RowsRefused(messageOf(err), { cause: err });
    }
  }

  /** One row in a savepoint of its own: refused, it stops the run naming it, or becomes a dead letter. */
  private async isolated(st: TableState, event: RowEvent, batch: SqlBatch, write: () => Promise<void>): Promise<void> {
    const t = this.target;
    await t.savepoint('tidemark_row');
    try {
      await write();
      await t.release('tidemark_row');
    } catch (err) {
      if (t.isTransient(err)) throw err;
      await t.rollbackTo('tidemark_row');
      const error = `${st.target} refused the row: ${messageOf(err)}`;
      if (this.opts.errors === 'fail') {
        throw new SinkError(
          `${this.target.where}: ${error} (${st.source} with key ${event.key} at ${event.source.file}:${event.source.pos}). ` +
            'Nothing of the commit was written. Change the target table so that it takes the row, or set errors.mode: dead-letter to record such rows as dead letters and go on.',
          { cause: err },
        );
      }
      batch.letters.push({
        connector: this.opts.name,
        db: event.db,
        table: event.table,
        key: event.key,
        position: position(event.source, event.row),
        reason: 'refused',
        error,
        row: event.after ?? event.before,
        tsMs: Date.now(),
      });
    }
  }

  private deadLetterValue(d: DeadLetter): DeadLetterValue {
    return {
      connector: this.opts.name,
      db: d.db,
      table: d.table,
      key: d.key,
      position: position(d.source, d.row),
      reason: d.reason,
      error: d.error,
      row: d.raw,
      tsMs: Date.now(),
    };
  }

  /** The key the target table is upserted on: the source's primary key, or its snapshot.chunkKey. */
  private keyOf(id: string, schema: TableSchema): string[] {
    const key = this.opts.chunkKeys[id] ?? schema.primaryKey;
    if (key.length === 0) throw new SinkError(`${id} has no primary key: set snapshot.chunkKey for it, so its rows can be upserted by a unique key`);
    return key;
  }

  /** The target table of a source table; refuses names the target would cut, and two tables that would share one. */
  private targetName(db: string, table: string): string {
    const id = `${db}.${table}`;
    const cached = this.targetNames.get(id);
    if (cached) return cached;
    const name = targetTableName(this.opts.tableName, db, table);
    const max = MAX_IDENTIFIER[this.target.kind];
    if (Buffer.byteLength(name) > max) {
      throw new SinkError(`the target table name ${name} for ${id} is longer than ${this.target.kind} allows (${max} bytes): choose a shorter sink.tableName`);
    }
    for (const [other, used] of this.targetNames) {
      if (used === name) throw new SinkError(`${other} and ${id} would both be written to ${name}: put <db> and <table> into sink.tableName`);
    }
    this.targetNames.set(id, name);
    return name;
  }

  /** An existing target table taken over: it needs the source's columns and a unique key on the source key. */
  private verify(id: string, target: string, schema: TableSchema, key: string[], described: TargetTable): void {
    const fix = `Change the table, or drop it to let tidemark create it, or point sink.tableName at another name.`;
    for (const c of schema.columns) {
      if (!described.columns.has(c.name))
        throw new SinkError(`the target table ${target} (${this.target.where}) has no column ${c.name}, which ${id} has. ${fix}`);
    }
    const wanted = [...key].sort().join('\0');
    if (!described.uniqueKeys.some((k) => [...k].sort().join('\0') === wanted)) {
      throw new SinkError(
        `the target table ${target} (${this.target.where}) has no primary key or unique index on (${key.join(', ')}), the key of ${id}, which upserts need. ${fix}`,
      );
    }
    for (const c of described.columns.values()) {
      if (!c.nullable && !c.hasDefault && !schema.columns.some((s) => s.name === c.name)) {
        throw new SinkError(`the target table ${target} (${this.target.where}) has a column ${c.name} that ${id} lacks, NOT NULL without a default. ${fix}`);
      }
    }
  }

  private explain(err: unknown): Error {
    if (err instanceof SinkError) return err;
    if (this.target.isTransient(err)) {
      return new SinkError(
        `${this.target.where} is unavailable: ${messageOf(err)} (gave up after ${RETRY_WINDOW_MS / 1000} s). Nothing was committed twice; once it is reachable, restart tidemark and it resumes after the last committed transaction.`,
        { cause: err },
      );
    }
    return new SinkError(`${this.target.where}: ${messageOf(err)}`, { cause: err });
  }
}

function position(source: EventSource, row: number): DeadLetterValue['position'] {
  return { file: source.file, pos: source.pos, gtid: source.gtid, row, snapshot: source.snapshot };
}

/** Each table's upserts grouped by column list, its deletes as keys of canonical values, and the columns the upserts use. */
function parse(plan: SqlPlan): Map<TableChanges, ParsedChanges> {
  const out = new Map<TableChanges, ParsedChanges>();
  for (const step of plan.steps) {
    if (step.kind !== 'rows') continue;
    for (const changes of step.tables.values()) {
      const columns = new Set<string>();
      const groups = new Map<string, RowGroup>();
      let group: RowGroup | undefined;
      for (const event of changes.upserts) {
        const json = event.after!;
        // Rows of one version share their column list: a row is parsed only when it has another one than the last.
        if (group === undefined || !hasColumns(json, group.heads)) {
          const names = Object.keys(JSON.parse(json) as Row);
          const signature = names.join('\0');
          group = groups.get(signature);
          if (group === undefined) {
            group = { names, heads: rowHeads(names), rows: [], events: [] };
            groups.set(signature, group);
            for (const n of names) columns.add(n);
          }
        }
        group.rows.push(json);
        group.events.push(event);
      }
      const upserts = [...groups.values()];
      const deletes = changes.deletes.map((event) => ({ key: JSON.parse(event.key) as Row, event }));
      out.set(changes, { upserts, deletes, columns });
    }
  }
  return out;
}
