/**
 * Structured logging, as a subset of pino's API so the CLI can hand in a pino logger and tests a
 * silent one. Log objects never contain secrets (tokens, credentials).
 */
export interface Logger {
  debug(fields: Record<string, unknown>, message?: string): void;
  info(fields: Record<string, unknown>, message?: string): void;
  warn(fields: Record<string, unknown>, message?: string): void;
  error(fields: Record<string, unknown>, message?: string): void;
  /** A logger that adds `fields` to every entry. */
  child(fields: Record<string, unknown>): Logger;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

/**
 * Progress of long work (downloads in bytes, transforms in records), shown as a bar on a TTY
 * and ignored elsewhere.
 */
export interface Progress {
  /** Starts a task; `total` in the task's unit when known. */
  start(label: string, total?: number, unit?: 'bytes' | 'records' | 'items'): ProgressTask;
}

/** One task of a {@link Progress}. */
export interface ProgressTask {
  /** Sets the amount done so far, and the total when it becomes known (e.g. a download's Content-Length). */
  update(done: number, total?: number): void;
  /** Ends the task (removes or completes its bar). */
  stop(): void;
}

/** Progress that shows nothing. */
export const noProgress: Progress = {
  start: () => ({ update: () => {}, stop: () => {} }),
};
