import type { Progress, ProgressTask } from '../core/logger.ts';
import { noProgress } from '../core/logger.ts';
import { formatBytes } from './output.ts';

/**
 * Progress bars on stderr with `cli-progress` when stderr is a TTY (and `--json` is off);
 * nothing otherwise, so logs and pipes stay clean.
 */
export async function createProgress(options: { enabled: boolean }): Promise<Progress> {
  if (!options.enabled || !process.stderr.isTTY) return noProgress;
  const { default: cliProgress } = await import('cli-progress');
  return {
    start(label: string, initialTotal?: number, unit: 'bytes' | 'records' | 'items' = 'items'): ProgressTask {
      const show = (n: number) => (unit === 'bytes' ? formatBytes(n) : String(n));
      let total = initialTotal;
      const bar = new cliProgress.SingleBar(
        {
          stream: process.stderr,
          clearOnComplete: true,
          hideCursor: true,
          format: `${label} [{bar}] {percentage}% {done}/{all}`,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total ?? 0, 0, { done: show(0), all: total ? show(total) : '?' });
      return {
        update(done: number, newTotal?: number) {
          if (newTotal !== undefined && newTotal !== total) {
            total = newTotal;
            bar.setTotal(newTotal);
          }
          if (!total) bar.setTotal(done);
          bar.update(done, { done: show(done), all: total ? show(total) : '?' });
        },
        stop() {
          bar.stop();
        },
      };
    },
  };
}
