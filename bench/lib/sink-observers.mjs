// Observers of what a sink delivers, for the latency section: each calls onIds(ids, atMs) with the ids of the
// rows that just became visible and the wall-clock time (ms, sub-ms precision) at which they did.

import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { kafkaClient } from './kafka-client.mjs';

/** @import { Bench } from './bench.mjs' */

/**
 * @typedef {(ids: number[], atMs: number) => void} OnIds
 * @typedef {{ stop: () => Promise<void> }} SinkObserver
 */

/**
 * Follows a jsonl file by polling every 2 ms; calls onIds for the complete lines that appeared.
 * @param {string} path
 * @param {OnIds} onIds
 * @returns {SinkObserver}
 */
export function tailJsonl(path, onIds) {
  /** @type {number | null} */
  let fd = null;
  let offset = 0;
  let rest = '';
  let stopped = false;
  const buf = Buffer.alloc(4 << 20);
  const re = /"key":\{"id":(\d+)\}/;
  const loop = (async () => {
    while (!stopped) {
      if (fd === null && existsSync(path)) fd = openSync(path, 'r');
      if (fd !== null) {
        for (;;) {
          const n = readSync(fd, buf, 0, buf.length, offset);
          if (n === 0) break;
          const at = performance.timeOrigin + performance.now();
          offset += n;
          const lines = (rest + buf.toString('utf8', 0, n)).split('\n');
          rest = lines.pop() ?? '';
          const ids = [];
          for (const l of lines) {
            const m = re.exec(l);
            if (m) ids.push(Number(m[1]));
          }
          onIds(ids, at);
        }
      }
      await sleep(2);
    }
    if (fd !== null) closeSync(fd);
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

/**
 * A read_committed consumer of `topic` from its start, joined before this returns; onIds(ids, atMs) per
 * fetched batch, with the id of each record's key and the time of the fetch.
 * @param {Bench} bench
 * @param {string} topic
 * @param {OnIds} onIds
 * @returns {Promise<SinkObserver>}
 */
export async function consumeKafka(bench, topic, onIds) {
  const consumer = kafkaClient(bench, 'bench-lat-consumer').consumer({
    groupId: `bench-${bench.runId}-${topic}`,
    readUncommitted: false,
    maxWaitTimeInMs: 100,
    minBytes: 1,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const joined = new Promise((resolve) => consumer.on(consumer.events.GROUP_JOIN, resolve));
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const at = performance.timeOrigin + performance.now();
      onIds(
        batch.messages.map((m) => JSON.parse(String(m.key)).id),
        at,
      );
    },
  });
  await joined;
  return { stop: () => consumer.disconnect() };
}
