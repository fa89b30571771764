/** What a running sync reports as it goes; metrics and progress bars listen to it. */
export interface SyncObserver {
  tablesPlanned?(tables: { name: string; rowsEstimate: number | null; rowsDone: number; chunksDone: number; chunksTotal: number | null }[]): void;
  chunkDone?(table: string, rows: number, chunksDone: number, chunksTotal: number | null): void;
  snapshotFinished?(): void;
  streaming?(): void;
  streamed?(op: string, count: number): void;
  committed?(sourceTsMs: number | undefined, bytesBehind?: number): void;
  /** A source connection was lost: not ready until `reconnected`. */
  disconnected?(): void;
  reconnected?(): void;
  deadLettered?(table: string, reason: string): void;
  failed?(err: Error): void;
}

/** Calls every observer that implements the hook. */
export function fanOut(observers: SyncObserver[]): Required<SyncObserver> {
  const call =
    <K extends keyof SyncObserver>(k: K) =>
    (...args: Parameters<Required<SyncObserver>[K]>) => {
      for (const o of observers) (o[k] as ((...a: unknown[]) => void) | undefined)?.(...args);
    };
  return {
    tablesPlanned: call('tablesPlanned'),
    chunkDone: call('chunkDone'),
    snapshotFinished: call('snapshotFinished'),
    streaming: call('streaming'),
    streamed: call('streamed'),
    committed: call('committed'),
    disconnected: call('disconnected'),
    reconnected: call('reconnected'),
    deadLettered: call('deadLettered'),
    failed: call('failed'),
  };
}
