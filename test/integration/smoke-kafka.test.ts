import { randomBytes } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { expect, inject, it } from 'vitest';

it('a read_committed consumer sees committed transactional messages and not aborted ones', async () => {
  const kafka = new Kafka({ clientId: 'smoke', brokers: inject('kafkaBrokers').split(','), logLevel: logLevel.NOTHING });
  const topic = `smoke-${randomBytes(4).toString('hex')}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  await admin.disconnect();

  const producer = kafka.producer({ transactionalId: `smoke-${topic}`, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  for (const [value, commit] of [
    ['first', true],
    ['aborted', false],
    ['last', true],
  ] as const) {
    const tx = await producer.transaction();
    await tx.send({ topic, messages: [{ key: value, value }] });
    await (commit ? tx.commit() : tx.abort());
  }
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `smoke-${topic}`, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out; saw ${JSON.stringify(seen)}`)), 30_000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value!.toString());
        if (seen.includes('last')) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  expect(seen).toEqual(['first', 'last']);
});
