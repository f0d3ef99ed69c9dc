import type { Clock } from '../../src/core/clock.ts';

/**
 * A clock that moves only when the test says so: `sleep` waits until `advance`/`set` passes its
 * deadline. Sleepers wake in deadline order, each after the previous one's continuation ran.
 */
export class ManualClock implements Clock {
  private current: number;
  private sleepers: { until: number; resolve: () => void; reject: (reason: unknown) => void }[] = [];

  constructor(start: Date) {
    this.current = start.getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      if (ms <= 0) {
        resolve();
        return;
      }
      const onAbort = () => {
        this.sleepers = this.sleepers.filter((s) => s !== sleeper);
        reject(signal?.reason);
      };
      // A woken sleeper lets go of the signal (a loop sleeping on one signal adds a listener per sleep).
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const sleeper = { until: this.current + ms, resolve: wake, reject };
      this.sleepers.push(sleeper);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Number of pending sleepers (to wait until a loop has gone to sleep). */
  get waiting(): number {
    return this.sleepers.length;
  }

  /** Moves time forward, waking due sleepers one by one with real turns of the event loop between. */
  async advance(ms: number): Promise<void> {
    await this.set(new Date(this.current + ms));
  }

  async set(date: Date): Promise<void> {
    const target = date.getTime();
    for (;;) {
      const due = this.sleepers.filter((s) => s.until <= target).sort((a, b) => a.until - b.until)[0];
      if (!due) break;
      this.sleepers = this.sleepers.filter((s) => s !== due);
      this.current = Math.max(this.current, due.until);
      due.resolve();
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    this.current = Math.max(this.current, target);
  }
}
