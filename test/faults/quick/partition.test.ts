import { describe, expect, it } from 'vitest';
import { partitionedPerTest, sleep, sourceBack, sourceLost } from '../partitioned.js';

describe('network partitions in a network namespace (quick case; the rest run in `npm run faults`)', () => {
  const create = partitionedPerTest();

  it('cut from MySQL past the heartbeat timeout, then from Kafka: reconnects, commits go on, every change once', async () => {
    const p = await create('mysql', { sink: 'kafka', serverId: 9190, heartbeatTimeoutMs: 2000 });
    const writer = p.writer(58, 200);
    const sync = p.run({ TIDEMARK_LOG_LEVEL: 'debug' });
    await sync.waitForLog((l) => l.msg === 'streaming');
    await sleep(500);
    p.ns.partition(p.sourcePort);
    await sync.waitForLog(sourceLost, 15_000);
    await sleep(2000);
    p.ns.heal();
    await sync.waitForLog(sourceBack, 60_000);
    p.ns.partition(p.kafkaPort);
    await sleep(5000);
    p.ns.heal();
    await sleep(5000);
    await writer.stop();
    expect(sync.child.exitCode, sync.stderr.slice(-3000)).toBeNull();
    await p.stopAndCheck(sync);
  });
});
