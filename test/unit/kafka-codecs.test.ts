import kafkajs, { CompressionTypes } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { checkKafkaCompression, KAFKA_COMPRESSION } from '../../src/sink/kafka-codecs.js';

type Codec = { compress(encoder: { buffer: Buffer }): Promise<Buffer>; decompress(buffer: Buffer): Promise<Buffer> };
const table = kafkajs.CompressionCodecs as unknown as Record<number, () => Codec>;

describe('Kafka codecs', () => {
  // Change events are JSON with repeated field names: the shape codecs see from the sink.
  const input = Buffer.from(
    Array.from({ length: 500 }, (_, i) => JSON.stringify({ before: null, after: { id: i, name: `name ${i}`, note: 'ü€😀' }, op: 'c' })).join(''),
  );

  it.each(['gzip', 'snappy', 'lz4', 'zstd'] as const)('%s compresses through kafkajs and reads its own output back', async (name) => {
    await checkKafkaCompression(name);
    const codec = table[KAFKA_COMPRESSION[name]]!();
    const compressed = await codec.compress({ buffer: input });
    expect(compressed.length).toBeLessThan(input.length / 2);
    expect(Buffer.compare(await codec.decompress(compressed), input)).toBe(0);
  });

  it('keeps its loaders in kafkajs table once a package is loaded', async () => {
    const entry = table[CompressionTypes.ZSTD];
    await checkKafkaCompression('zstd');
    expect(table[CompressionTypes.ZSTD]).toBe(entry);
  });
});
