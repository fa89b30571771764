import type { Config } from '../config/load.js';
import { JsonlSink } from './jsonl.js';
import { KafkaSink } from './kafka.js';
import { NullSink } from './null.js';
import type { Sink } from './sink.js';
import { StdoutSink } from './stdout.js';

/** The sink `sink.type` names. */
export function createSink(config: Config): Sink {
  switch (config.sink.type) {
    case 'jsonl':
      return new JsonlSink(config.sink.path, config.sink.overwrite);
    case 'stdout':
      return new StdoutSink();
    case 'discard':
      return new NullSink();
    case 'kafka':
      return new KafkaSink(config.name, config.sink, config.errors.mode);
  }
}
