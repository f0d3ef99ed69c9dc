import { UsageError } from '../core/errors.ts';

/**
 * `--port`: `fallback` when the flag is absent, else an integer 0..65535 (0: the system picks a
 * free port).
 * @throws {UsageError} naming the flag's value and what was expected.
 */
export function parsePort(flag: string | undefined, fallback: number): number {
  if (flag === undefined) return fallback;
  const port = Number(flag);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port ${flag}: expected a port number 0..65535`);
  }
  return port;
}

/** Resolves on the first SIGINT (Ctrl-C) or SIGTERM, then stops listening for both. */
export function untilInterrupted(): Promise<void> {
  return new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
