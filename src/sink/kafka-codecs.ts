import kafkajs, { CompressionTypes } from 'kafkajs';
import { SinkError } from '../errors.js';

/** The values of `sink.compression`, by the kafkajs compression type each one sends. */
export const KAFKA_COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
} as const;

export type KafkaCompression = keyof typeof KAFKA_COMPRESSION;

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

type Packaged = Exclude<KafkaCompression, 'none' | 'gzip'>;

// Node's ESM loader finds no named export CompressionCodecs in kafkajs's CommonJS exports.
const table = kafkajs.CompressionCodecs as unknown as Record<number, () => Codec>;

/**
 * kafkajs builds in gzip only; the other codecs come from codec packages. lz4 and zstd are native modules
 * (lz4-napi's binary comes as an npm package per platform, zstd-napi's is built by its install script), so
 * each package is loaded when its codec is first used: a sink without compression, or not Kafka at all, runs
 * where one of them could not be installed.
 */
const PACKAGES: Record<Packaged, { name: string; load: () => Promise<() => Codec> }> = {
  snappy: { name: 'kafkajs-snappy', load: async () => (await import('kafkajs-snappy')).default },
  lz4: {
    name: '@2l/kafkajs-lz4',
    load: async () => {
      // Its types declare an ES default export, but the module replaces module.exports with the class itself.
      const LZ4Codec = (await import('@2l/kafkajs-lz4')).default as unknown as typeof import('@2l/kafkajs-lz4').default;
      return new LZ4Codec().codec;
    },
  },
  zstd: {
    name: '@sensejs/kafkajs-zstd-support',
    // It exports nothing: importing it puts its codec into the table of the kafkajs it resolves, which is this
    // one. The entry that stood there (the loader below) is put back, and the package's codec kept here.
    load: async () => {
      const before = table[CompressionTypes.ZSTD];
      await import('@sensejs/kafkajs-zstd-support');
      const codec = table[CompressionTypes.ZSTD];
      if (before) table[CompressionTypes.ZSTD] = before;
      if (!codec || codec === before) throw new Error('it registered no zstd codec with the kafkajs tidemark uses');
      return codec;
    },
  },
};

const loading = new Map<Packaged, Promise<() => Codec>>();

/** The codec factory of `name`, its package loaded once; a package that fails to load is named with the fix. */
export function loadKafkaCodec(name: Packaged): Promise<() => Codec> {
  let codec = loading.get(name);
  if (!codec) {
    codec = PACKAGES[name].load().catch((err: unknown) => {
      throw new SinkError(
        `the Kafka ${name} codec (the npm package ${PACKAGES[name].name}) cannot be loaded: ${err instanceof Error ? err.message : String(err)}. ` +
          (name === 'zstd' ? "Its native part is built by zstd-napi's install script: reinstall with that script allowed. " : 'Reinstall tidemark. ') +
          'Other values of sink.compression work without it.',
        { cause: err },
      );
    });
    loading.set(name, codec);
  }
  return codec;
}

// Registered for every client in the process (kafkajs's table is module state), consumers included: the sink
// reads its offsets topic back, which another client or the broker may have compressed with any codec.
// kafkajs asks for a codec synchronously but awaits its compress and decompress, so those load the package.
for (const name of Object.keys(PACKAGES) as Packaged[]) {
  table[KAFKA_COMPRESSION[name]] = () => ({
    compress: async (encoder) => (await loadKafkaCodec(name))().compress(encoder),
    decompress: async (buffer) => (await loadKafkaCodec(name))().decompress(buffer),
  });
}

/** Loads the codec `sink.compression` names, so that a missing one stops the start rather than the first commit. */
export async function checkKafkaCompression(name: KafkaCompression): Promise<void> {
  if (name !== 'none' && name !== 'gzip') await loadKafkaCodec(name);
}
