import { describe, expect, it } from 'vitest';
import { FLAVOURS } from '../../support/db.js';
import { partitionedPerTest, sleep, sourceBack, sourceLost } from '../partitioned.js';

describe.each(FLAVOURS)('network faults between tidemark and %s (network namespace, nftables)', (flavour) => {
  const id = (n: number) => n + (flavour === 'mysql' ? 0 : 50);
  const create = partitionedPerTest();

  it('a 5 s partition while streaming, inside the heartbeat timeout: TCP carries the stream on, no reconnect', async () => {
    const p = await create(flavour, { sink: 'jsonl', serverId: id(9100) });
    const writer = p.writer(51);
    const sync = p.run();
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(1000);
    p.ns.partition(p.sourcePort);
    await sleep(5000);
    p.ns.heal();
    await sleep(8000);
    await writer.stop();
    expect(sync.logs.filter(sourceLost), sync.stderr.slice(-2000)).toEqual([]);
    await p.stopAndCheck(sync);
  });

  it('a partition while streaming, three times the heartbeat timeout: the silent connection is given up, a new one made after it heals', async () => {
    const p = await create(flavour, { sink: 'jsonl', serverId: id(9110), heartbeatTimeoutMs: 3000 });
    const writer = p.writer(52);
    const sync = p.run();
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(1000);
    p.ns.partition(p.sourcePort);
    // Reconnecting into the black hole is tried and times out meanwhile: SYNs are dropped, nothing is refused.
    await sync.waitForLog(sourceLost, 20_000);
    await sleep(9000);
    p.ns.heal();
    await sync.waitForLog(sourceBack, 60_000);
    await sleep(2000);
    await writer.stop();
    await p.stopAndCheck(sync);
  });

  it('stopped while cut off from the source: exits at once, and the next run delivers everything', async () => {
    const p = await create(flavour, { sink: 'jsonl', serverId: id(9170), heartbeatTimeoutMs: 3000 });
    const writer = p.writer(59);
    const sync = p.run();
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(1000);
    p.ns.partition(p.sourcePort);
    await sync.waitForLog(sourceLost, 20_000);
    const stopAt = Date.now();
    const exit = await Promise.race([sync.kill('SIGTERM'), sleep(15_000).then(() => 'still running')]);
    expect(exit, sync.stderr.slice(-3000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - stopAt).toBeLessThan(10_000);
    p.ns.heal();
    await writer.stop();
    await p.catchUpAndCheck();
  });

  it('a 10 s partition during the snapshot: chunk reads wait it out and the snapshot goes on', async () => {
    const p = await create(flavour, { sink: 'jsonl', serverId: id(9120), heartbeatTimeoutMs: 3000 });
    const writer = p.writer(53);
    const sync = p.run({ TIDEMARK_TEST_CHUNK_DELAY_MS: '60' });
    await sync.waitForLog(() => sync.count('chunk done') >= 3);
    p.ns.partition(p.sourcePort);
    await sleep(10_000);
    const chunksDuring = sync.count('chunk done');
    p.ns.heal();
    await sync.waitForLog((l) => l.msg === 'streaming', 120_000);
    expect(sync.count('chunk done')).toBeGreaterThan(chunksDuring);
    await sleep(2000);
    await writer.stop();
    await p.stopAndCheck(sync);
  });

  it('30 % packet loss to the source for 15 s across the snapshot and the stream', async () => {
    const p = await create(flavour, { sink: 'jsonl', serverId: id(9130), heartbeatTimeoutMs: 6000 });
    const writer = p.writer(54);
    const sync = p.run({ TIDEMARK_TEST_CHUNK_DELAY_MS: '20' });
    await sync.waitForLog(() => sync.count('chunk done') >= 2);
    p.ns.loss(p.sourcePort, 30);
    await sleep(15_000);
    p.ns.heal();
    await sync.waitForLog((l) => l.msg === 'streaming', 120_000);
    await sleep(3000);
    await writer.stop();
    await p.stopAndCheck(sync);
  });
});

describe('network faults between tidemark and Kafka (network namespace, nftables)', () => {
  const create = partitionedPerTest();

  it('a 5 s partition while streaming: commits wait and go on, every change once', async () => {
    const p = await create('mysql', { sink: 'kafka', serverId: 9140 });
    const writer = p.writer(55, 300);
    const sync = p.run();
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(1000);
    p.ns.partition(p.kafkaPort);
    await sleep(5000);
    p.ns.heal();
    await sleep(8000);
    await writer.stop();
    await p.stopAndCheck(sync);
  });

  it('a 45 s partition while streaming, longer than the 30 s request timeout of kafkajs: the run goes on and delivers every change once', async () => {
    const p = await create('mysql', { sink: 'kafka', serverId: 9150 });
    const writer = p.writer(56, 300);
    const sync = p.run();
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(1000);
    p.ns.partition(p.kafkaPort);
    await sleep(45_000);
    expect(sync.child.exitCode, sync.stderr.slice(-3000)).toBeNull();
    p.ns.heal();
    await sleep(15_000);
    await writer.stop();
    expect(sync.child.exitCode, sync.stderr.slice(-3000)).toBeNull();
    await p.stopAndCheck(sync);
  });

  it('20 % packet loss to Kafka for 15 s under a writer', async () => {
    const p = await create('mariadb', { sink: 'kafka', serverId: 9160 });
    const writer = p.writer(57, 300);
    const sync = p.run();
    await sync.waitForLog((l) => l.msg === 'streaming');
    p.ns.loss(p.kafkaPort, 20);
    await sleep(15_000);
    p.ns.heal();
    await sleep(5000);
    await writer.stop();
    await p.stopAndCheck(sync);
  });
});
