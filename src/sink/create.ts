import type { Config } from '../config/load.js';
import { JsonlSink } from './jsonl.js';
import { KafkaSink } from './kafka.js';
import { MysqlTarget } from './mysql.js';
import { NullSink } from './null.js';
import { PostgresTarget } from './postgres.js';
import type { Sink } from './sink.js';
import { SqlSink } from './sql-sink.js';
import type { SourceSchemas } from './sql-target.js';
import { StdoutSink } from './stdout.js';

/** The sink `sink.type` names. The database sinks need the source's columns (`schemas`) to create and alter tables. */
export function createSink(config: Config, schemas?: SourceSchemas): Sink {
  switch (config.sink.type) {
    case 'jsonl':
      return new JsonlSink(config.sink.path, config.sink.overwrite);
    case 'stdout':
      return new StdoutSink();
    case 'discard':
      return new NullSink();
    case 'kafka':
      return new KafkaSink(config.name, config.sink, config.errors.mode);
    case 'postgres':
    case 'mysql': {
      if (!schemas) throw new Error(`the ${config.sink.type} sink needs the source schemas`);
      const target = config.sink.type === 'postgres' ? new PostgresTarget(config.sink) : new MysqlTarget(config.sink);
      return new SqlSink(target, schemas, {
        name: config.name,
        tableName: config.sink.tableName,
        errors: config.errors.mode,
        chunkKeys: config.snapshot.chunkKey,
      });
    }
  }
}
