// The bench's own kafkajs clients, and the topics it creates and deletes.

import { Kafka, logLevel } from 'kafkajs';

/** @import { Bench } from './bench.mjs' */

/**
 * @param {Bench} bench
 * @param {string} clientId
 */
export function kafkaClient(bench, clientId) {
  if (!bench.brokers) throw new Error('no Kafka broker: none of the chosen sections needs one');
  return new Kafka({ brokers: bench.brokers, clientId, logLevel: logLevel.NOTHING });
}

/**
 * A one-partition topic, like the ones tidemark's sink creates.
 * @param {Bench} bench
 * @param {string} topic
 */
export async function createTopic(bench, topic) {
  const admin = kafkaClient(bench, 'bench-admin').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  await admin.disconnect();
}

/**
 * Every topic of this run (bench-<runId>*), whoever made it.
 * @param {Bench} bench
 */
export async function deleteBenchTopics(bench) {
  const admin = kafkaClient(bench, 'bench-admin').admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`bench-${bench.runId}`));
  if (topics.length) await admin.deleteTopics({ topics });
  await admin.disconnect();
}
