import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readJsonl } from '../support/consistency.js';
import { FLAVOURS, freshDatabase, urlOf } from '../support/db.js';
import { runTidemark, sourceFromUrl, tempDir, tidemark, writeConfig } from '../support/tidemark.js';

async function setup(flavour: 'mysql' | 'mariadb', serverId: number, name = 'one') {
  const { db, conn } = await freshDatabase(urlOf(flavour), 'one');
  await conn.query('CREATE TABLE t (id INT PRIMARY KEY, version INT NOT NULL)');
  await conn.query('INSERT INTO t VALUES (1, 1), (2, 1)');
  const dir = tempDir();
  const config = (file: string, extra: Record<string, unknown> = {}) =>
    writeConfig(
      dir,
      {
        name,
        source: { ...sourceFromUrl(urlOf(flavour)), serverId, tables: [`${db}.t`] },
        checkpoint: { path: join(dir, 'checkpoint.sqlite') },
        sink: { type: 'jsonl', path: join(dir, 'out.jsonl') },
        ...extra,
      },
      file,
    );
  return { db, conn, dir, config };
}

describe.each(FLAVOURS)('one sync per checkpoint on %s', (flavour) => {
  const ids = (base: number) => base + (flavour === 'mysql' ? 0 : 50);

  it('a second sync exits 1 at once naming the running one; status works beside it; a killed one leaves no lock behind', async () => {
    const s = await setup(flavour, ids(8000));
    const config = s.config('tidemark.yaml');
    const first = tidemark(['sync', '-c', config]);
    await first.waitForLog((l) => l.msg === 'streaming');
    const second = await runTidemark(['sync', '-c', config], undefined, 20_000);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`another tidemark \\(pid ${first.child.pid}, since [^)]+\\) is running on the checkpoint`));
    const status = await runTidemark(['status', '-c', config, '--json']);
    expect(status.code, status.stderr).toBe(0);
    // The first one went on unharmed: its binlog connection was never taken by the second.
    await s.conn.query('UPDATE t SET version = 2 WHERE id = 1');
    for (let waited = 0; !readJsonl(join(s.dir, 'out.jsonl')).some((l) => l.value?.op === 'u'); waited += 50) {
      if (waited > 20_000) throw new Error(`the first sync stopped streaming; stderr:\n${first.stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await first.kill('SIGKILL')).signal).toBe('SIGKILL');
    const after = await runTidemark(['sync', '-c', config, '--until-caught-up']);
    expect(after.code, after.stderr.slice(-2000)).toBe(0);
    await s.conn.end();
  });

  it('keeps its checkpoint and output to their owner (0600, directories 0700)', async () => {
    const s = await setup(flavour, ids(8010));
    const run = await runTidemark(['sync', '-c', s.config('tidemark.yaml'), '--until-caught-up']);
    expect(run.code, run.stderr.slice(-2000)).toBe(0);
    for (const f of ['checkpoint.sqlite', 'out.jsonl']) expect(statSync(join(s.dir, f)).mode & 0o777, f).toBe(0o600);
    await s.conn.end();
  });

  it("refuses an output that is not the checkpoint's, and a new checkpoint's non-empty output, touching nothing", async () => {
    const s = await setup(flavour, ids(8020));
    const config = s.config('tidemark.yaml');
    expect((await runTidemark(['sync', '-c', config, '--until-caught-up'])).code).toBe(0);
    // sink.path now names another file.
    writeFileSync(join(s.dir, 'other.jsonl'), '');
    const elsewhere = s.config('elsewhere.yaml', { sink: { type: 'jsonl', path: join(s.dir, 'other.jsonl') } });
    const moved = await runTidemark(['sync', '-c', elsewhere, '--until-caught-up']);
    expect(moved.code).toBe(1);
    expect(moved.stderr).toMatch(/other\.jsonl is not the file this checkpoint wrote/);
    // A new checkpoint meeting the old output.
    const fresh = s.config('fresh.yaml', { checkpoint: { path: join(s.dir, 'fresh.sqlite') } });
    const before = statSync(join(s.dir, 'out.jsonl')).size;
    const taken = await runTidemark(['sync', '-c', fresh, '--until-caught-up']);
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/out\.jsonl holds \d+ bytes this checkpoint did not write.*sink\.overwrite: true/);
    expect(statSync(join(s.dir, 'out.jsonl')).size).toBe(before);
    const overwrite = s.config('overwrite.yaml', {
      checkpoint: { path: join(s.dir, 'fresh.sqlite') },
      sink: { type: 'jsonl', path: join(s.dir, 'out.jsonl'), overwrite: true },
    });
    expect((await runTidemark(['sync', '-c', overwrite, '--until-caught-up'])).code).toBe(0);
    expect(readJsonl(join(s.dir, 'out.jsonl')).filter((l) => l.value?.op === 'r')).toHaveLength(2);
    await s.conn.end();
  });
});

describe('two connectors with one replica server id (MySQL)', () => {
  it('the one the server drops stops with the cause and the fix, not a purged binlog', async () => {
    const a = await setup('mysql', 8040, 'one-a');
    const b = await setup('mysql', 8040, 'one-b');
    const first = tidemark(['sync', '-c', a.config('tidemark.yaml')]);
    await first.waitForLog((l) => l.msg === 'streaming');
    const second = tidemark(['sync', '-c', b.config('tidemark.yaml')]);
    await second.waitForLog((l) => l.msg === 'streaming');
    await a.conn.query('UPDATE t SET version = 2 WHERE id = 1');
    const exit = await Promise.race([first.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
    expect(exit, first.stderr.slice(-2000)).toEqual({ code: 1, signal: null });
    expect(first.stderr).toMatch(/same replica server id \(8040\).*source\.serverId/);
    expect(first.stderr).not.toMatch(/purged/);
    await second.kill('SIGTERM');
    await a.conn.end();
    await b.conn.end();
  });
});
