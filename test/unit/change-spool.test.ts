import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChangeSpool, clearSpoolDir } from '../../src/source/change-spool.js';

const row = (i: number) => ({ id: i, big: 2n ** 63n - BigInt(i), bytes: Buffer.from([i & 0xff, 0, 0xff]), at: new Date(i), text: `é${i}`, none: null });

describe('ChangeSpool', () => {
  it('gives back its parts in order with the values as they were (Buffers, BigInts, Dates), in a private file it removes', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'tidemark-spool-')), 'spool');
    const spool = ChangeSpool.create<{ kind: string; after: ReturnType<typeof row>; columns: { name: string }[] }>(dir);
    const columns = [{ name: 'id' }];
    const parts = [0, 1, 2].map((p) => Array.from({ length: 1000 }, (_, i) => ({ kind: 'insert', after: row(p * 1000 + i), columns })));
    for (const part of parts) spool.append(part);
    expect(spool.count).toBe(3000);
    expect(statSync(spool.path).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);

    const back = [...spool.parts()];
    expect(back).toEqual(parts);
    expect(Buffer.isBuffer(back[2]![999]!.after.bytes)).toBe(true);
    // One serialization per part: the column list its rows share stays shared.
    expect(back[1]![0]!.columns).toBe(back[1]![1]!.columns);
    // Read twice, the same.
    expect([...spool.parts()]).toEqual(parts);

    spool.remove();
    expect(existsSync(spool.path)).toBe(false);
    clearSpoolDir(dir);
    expect(existsSync(dir)).toBe(false);
  });
});
