import type { Clock } from './clock.ts';
import type { Logger, Progress } from './logger.ts';
import type { Backend } from './ports/backend.ts';

/** Settings for the embedded SQL engine used by transforms. */
export interface EngineSettings {
  /** DuckDB worker threads (default: CPU cores). */
  readonly threads?: number;
  /**
   * DuckDB memory limit before spilling to disk, e.g. `'512MB'`. Bounds a transform's memory
   * whatever the input size (default `'512MB'`; env `SLUICE_DUCKDB_MEMORY_LIMIT`).
   */
  readonly memoryLimit?: string;
}

/**
 * Everything a pipeline step receives: the backend's ports, time, logging, progress and a
 * local working directory. Built once at the composition root (CLI, Lambda handler, tests).
 */
export interface PipelineContext {
  readonly backend: Backend;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly progress: Progress;
  /** Local directory for temporary files (decompressed input, engine spill); cleaned by each step. */
  readonly workDir: string;
  readonly engine: EngineSettings;
}
