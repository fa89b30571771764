/**
 * Settles as `promise` does, or rejects once `ms` have passed, whichever comes first. Only the wait ends: the
 * operation behind `promise` runs on. The timer does not keep the process alive (AbortSignal.timeout's never does).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  return new Promise<T>((resolve, reject) => {
    signal.addEventListener('abort', () => reject(new Error(`${what} timed out after ${ms} ms`)), { once: true });
    promise.then(resolve, reject);
  });
}
