import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OutputRecord } from '../../src/events/event.js';
import { encodeLines, JsonlSink } from '../../src/sink/jsonl.js';

let dir: string;
let path: string;
const sinks: JsonlSink[] = [];

function sink(p = path): JsonlSink {
  const s = new JsonlSink(p);
  sinks.push(s);
  return s;
}

const rec = (id: number, extra: Record<string, unknown> = {}): OutputRecord => ({
  topic: 'tm.db.t',
  key: JSON.stringify({ id }),
  value: JSON.stringify({ after: { id, ...extra }, op: 'c' }),
});
/** A jsonl line is the JSON of { topic, key, value } with the record's key and value as objects. */
const line = (r: OutputRecord) => `${JSON.stringify({ topic: r.topic, key: JSON.parse(r.key), value: r.value === null ? null : JSON.parse(r.value) })}\n`;

/** The byte lengths a state records, without the output file's identity. */
const lengths = (state: string) => state.split('@')[0];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tidemark-jsonl-'));
  path = join(dir, 'out', 'changes.jsonl');
});

afterEach(async () => {
  for (const s of sinks.splice(0)) await s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('encodeLines', () => {
  it('writes one JSON object per line, tombstones included', () => {
    const tomb: OutputRecord = { topic: 't', key: '{"id":1}', value: null };
    expect(encodeLines([rec(1), tomb]).toString()).toBe(`${line(rec(1))}{"topic":"t","key":{"id":1},"value":null}\n`);
    expect(encodeLines([]).length).toBe(0);
  });

  it('counts bytes, not characters', () => {
    const r = rec(1, { name: 'żółw 🐢' });
    expect(encodeLines([r]).length).toBe(Buffer.byteLength(line(r)));
    expect(encodeLines([r]).length).toBeGreaterThan(line(r).length);
  });
});

describe('JsonlSink', () => {
  it('is exactly-once', () => {
    expect(sink().guarantee).toBe('exactly-once');
  });

  it('appends each committed batch and reports the new byte length as its state', async () => {
    const s = sink();
    await s.open(undefined);
    const first = s.prepare([rec(1), rec(2, { note: 'ünï' })]);
    const firstBytes = Buffer.byteLength(line(rec(1)) + line(rec(2, { note: 'ünï' })));
    expect(lengths(first.state)).toBe(String(firstBytes));
    // Preparing writes nothing.
    expect(statSync(path).size).toBe(0);
    await s.commit(first);
    expect(statSync(path).size).toBe(firstBytes);

    const second = s.prepare([rec(3)]);
    expect(lengths(second.state)).toBe(String(firstBytes + Buffer.byteLength(line(rec(3)))));
    await s.commit(second);
    expect(readFileSync(path, 'utf8')).toBe(line(rec(1)) + line(rec(2, { note: 'ünï' })) + line(rec(3)));
    expect(String(statSync(path).size)).toBe(lengths(second.state));
  });

  it('an empty batch keeps the state', async () => {
    const s = sink();
    await s.open(undefined);
    await s.commit(s.prepare([rec(1)]));
    const empty = s.prepare([]);
    expect(lengths(empty.state)).toBe(String(Buffer.byteLength(line(rec(1)))));
    await s.commit(empty);
    expect(readFileSync(path, 'utf8')).toBe(line(rec(1)));
  });

  it('refuses to commit before open', async () => {
    const s = sink();
    await expect(s.commit(s.prepare([rec(1)]))).rejects.toThrow('jsonl sink is not open');
  });

  it('on open cuts the file back to the committed length and appends after it (the crash case)', async () => {
    const s1 = sink();
    await s1.open(undefined);
    const committed = s1.prepare([rec(1), rec(2)]);
    await s1.commit(committed);
    await s1.close();
    // An uncommitted batch that reached the file, the last line torn.
    appendFileSync(path, `${line(rec(3))}{"topic":"tm.db.t","ke`);

    const s2 = sink();
    await s2.open(committed.state);
    expect(readFileSync(path, 'utf8')).toBe(line(rec(1)) + line(rec(2)));
    const next = s2.prepare([rec(4)]);
    expect(lengths(next.state)).toBe(String(Number(lengths(committed.state)) + Buffer.byteLength(line(rec(4)))));
    await s2.commit(next);
    expect(readFileSync(path, 'utf8')).toBe(line(rec(1)) + line(rec(2)) + line(rec(4)));
  });

  it('with nothing committed, empties a file that holds only the output of the commit it did not finish', async () => {
    const s1 = sink();
    await s1.open(undefined);
    const attempted = s1.prepare([rec(1)]);
    await s1.commit(attempted);
    await s1.close();
    const s2 = sink();
    await s2.open(undefined, attempted.state);
    expect(statSync(path).size).toBe(0);
  });

  it('refuses, touching nothing, a non-empty file a new checkpoint did not write, unless overwrite says so', async () => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, 'somebody else\n');
    await expect(sink().open(undefined)).rejects.toThrow(/holds 14 bytes this checkpoint did not write.*sink\.overwrite: true/);
    expect(readFileSync(path, 'utf8')).toBe('somebody else\n');
    const s = new JsonlSink(path, true);
    sinks.push(s);
    await s.open(undefined);
    expect(statSync(path).size).toBe(0);
  });

  it("refuses, touching nothing, a file that is not the checkpoint's output any more", async () => {
    const s1 = sink();
    await s1.open(undefined);
    const committed = s1.prepare([rec(1)]);
    await s1.commit(committed);
    await s1.close();
    // Replaced by another file of the same length (made before the old one goes, so it cannot reuse its inode): only its identity tells.
    const text = readFileSync(path);
    writeFileSync(`${path}.copy`, text);
    renameSync(`${path}.copy`, path);
    await expect(sink().open(committed.state)).rejects.toThrow(/is not the file this checkpoint wrote/);
    expect(readFileSync(path)).toEqual(text);
  });

  it('creates the output readable by its owner only, in a directory only the owner enters', async () => {
    await sink().open(undefined);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(path)).mode & 0o777).toBe(0o700);
  });

  it('on open refuses a file shorter than the committed length', async () => {
    const s1 = sink();
    await s1.open(undefined);
    await s1.commit(s1.prepare([rec(1)]));
    await s1.close();
    const size = statSync(path).size;
    const s2 = sink();
    await expect(s2.open(String(size + 10))).rejects.toThrow(
      `${path} is ${size} bytes but the checkpoint says ${size + 10} were committed: the file was truncated or replaced. Restore it, or run tidemark reset to start over.`,
    );
    // The file is left as it was.
    expect(statSync(path).size).toBe(size);
  });

  it('holds(state) answers by the file size', async () => {
    const s = sink();
    expect(await s.holds('0')).toBe(false); // no file yet
    await s.open(undefined);
    expect(await s.holds('0')).toBe(true);
    await s.commit(s.prepare([rec(1)]));
    const size = statSync(path).size;
    expect(await s.holds(String(size - 1))).toBe(true);
    expect(await s.holds(String(size))).toBe(true);
    expect(await s.holds(String(size + 1))).toBe(false);
  });

  it('writes dead letters to <path without .jsonl>.dead.jsonl, in the same commit, and cuts both files back after a crash', async () => {
    const deadPath = join(dir, 'out', 'changes.dead.jsonl');
    const dead = (id: number): OutputRecord => ({
      topic: 'tm.tidemark.dead',
      key: JSON.stringify({ id }),
      value: JSON.stringify({ reason: 'decode' }),
      dead: true,
    });
    const s1 = sink();
    await s1.open(undefined);
    const first = s1.prepare([rec(1)]);
    expect(lengths(first.state)).toBe(String(line(rec(1)).length));
    await s1.commit(first);
    const second = s1.prepare([rec(2), dead(3), rec(4)]);
    expect(lengths(second.state)).toBe(`${line(rec(1)).length + line(rec(2)).length + line(rec(4)).length}+${line(dead(3)).length}`);
    await s1.commit(second);
    expect(readFileSync(path, 'utf8')).toBe(line(rec(1)) + line(rec(2)) + line(rec(4)));
    expect(readFileSync(deadPath, 'utf8')).toBe(line(dead(3)));
    expect(await s1.holds(second.state)).toBe(true);
    // A third batch reaches both files, then the process dies before its checkpoint commits.
    await s1.commit(s1.prepare([rec(5), dead(6)]));
    await s1.close();
    expect(await sink().holds(`${statSync(path).size}+${statSync(deadPath).size + 1}`)).toBe(false);
    const s2 = sink();
    await s2.open(second.state);
    expect(readFileSync(path, 'utf8')).toBe(line(rec(1)) + line(rec(2)) + line(rec(4)));
    expect(readFileSync(deadPath, 'utf8')).toBe(line(dead(3)));
  });

  it('cuts a dead-letter file back to empty when the committed state has none', async () => {
    const deadPath = join(dir, 'out', 'changes.dead.jsonl');
    const s1 = sink();
    await s1.open(undefined);
    await s1.commit(s1.prepare([{ topic: 'tm.tidemark.dead', key: '{}', value: '{}', dead: true }]));
    await s1.close();
    await sink().open(undefined);
    expect(statSync(deadPath).size).toBe(0);
  });
});
