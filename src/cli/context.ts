import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createLocalBackend } from '../backends/local/local-backend.ts';
import { systemClock } from '../core/clock.ts';
import type { EngineSettings, PipelineContext } from '../core/context.ts';
import type { Logger } from '../core/logger.ts';
import type { Backend } from '../core/ports/backend.ts';
import { createProgress } from './progress.ts';

/**
 * The sluice home: `--home`, else `$SLUICE_HOME`, else `./.sluice`, resolved to an absolute path.
 */
export function resolveHome(flag: string | undefined): string {
  return path.resolve(flag ?? process.env.SLUICE_HOME ?? '.sluice');
}

/** Engine settings from the environment: `SLUICE_DUCKDB_THREADS`, `SLUICE_DUCKDB_MEMORY_LIMIT`. */
export function engineSettings(): EngineSettings {
  const threads = Number(process.env.SLUICE_DUCKDB_THREADS);
  return {
    ...(Number.isInteger(threads) && threads > 0 ? { threads } : {}),
    ...(process.env.SLUICE_DUCKDB_MEMORY_LIMIT
      ? { memoryLimit: process.env.SLUICE_DUCKDB_MEMORY_LIMIT }
      : {}),
  };
}

/**
 * The composition root of CLI commands: the local backend under `home`, a pino logger writing
 * JSON lines to `<home>/logs/sluice.log` (level `$SLUICE_LOG_LEVEL`, default `info`), progress
 * bars on a TTY, and `<home>/tmp` as the working directory.
 */
export async function openContext(options: { home: string; progress: boolean }): Promise<{
  ctx: PipelineContext;
  backend: Backend & { home: string };
  close(): Promise<void>;
}> {
  const logDir = path.join(path.resolve(options.home), 'logs');
  mkdirSync(logDir, { recursive: true });
  const { pino } = await import('pino');
  const logger = pino(
    { level: process.env.SLUICE_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    pino.destination({ dest: path.join(logDir, 'sluice.log'), sync: true, mkdir: true }),
  ) as unknown as Logger;
  // The backend logs what starting the home's warehouse server changes on the machine.
  const backend = createLocalBackend(options.home, { logger });
  const ctx: PipelineContext = {
    backend,
    clock: systemClock,
    logger,
    progress: await createProgress({ enabled: options.progress }),
    workDir: path.join(backend.home, 'tmp'),
    engine: engineSettings(),
  };
  return { ctx, backend, close: () => backend.close() };
}
