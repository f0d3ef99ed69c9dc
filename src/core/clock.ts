/**
 * Time, injected. Everything in sluice that reads the time or waits takes a {@link Clock}, so
 * tests drive time explicitly and never sleep for real.
 */
export interface Clock {
  /** The current instant (UTC). */
  now(): Date;
  /**
   * Resolves after `ms` milliseconds of this clock's time; rejects with the signal's reason
   * when `signal` aborts first.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The machine's clock. */
export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};
