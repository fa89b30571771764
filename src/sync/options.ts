import type { Connection } from 'mysql2/promise';
import type { CheckpointStore } from '../checkpoint/store.js';
import type { Config } from '../config/load.js';
import type { Log } from '../ops/logger.js';
import type { SyncObserver } from '../ops/observer.js';
import type { ServerInfo } from '../source/server.js';
import type { Committer } from './committer.js';
import type { TableRegistry } from './table-registry.js';

/** How a sync run is driven from outside: the CLI, the demo and the tests set these. */
export interface SyncOptions {
  untilCaughtUp?: boolean;
  signal?: AbortSignal;
  log?: Log;
  observer?: SyncObserver;
}

/** The collaborators of one run, shared by its parts: plain references, no behaviour and no way back to a caller. */
export interface RunParts {
  config: Config;
  store: CheckpointStore;
  info: ServerInfo;
  /** Control queries (positions, schemas, sort weights): a pool, so a lost connection is replaced. */
  conn: Connection;
  registry: TableRegistry;
  committer: Committer;
  log: Log;
  observer: SyncObserver | undefined;
  signal: AbortSignal | undefined;
}
