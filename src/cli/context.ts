import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AWS_ENV, type AwsBackendConfig, awsConfigFromEnv } from '../backends/aws/config.ts';
import { createLocalBackend } from '../backends/local/local-backend.ts';
import { systemClock } from '../core/clock.ts';
import type { EngineSettings, PipelineContext } from '../core/context.ts';
import { UsageError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Backend } from '../core/ports/backend.ts';
import { createProgress } from './progress.ts';

/** The backends the CLI can open: `local` (embedded engines under the home) or `aws` (a deployed stack). */
export type BackendKind = 'local' | 'aws';

/** The global `--backend` option, set by the program's pre-action hook ({@link selectBackend}). */
let backendFlag: BackendKind | undefined;

/** Parses a backend name. @throws {UsageError} naming `source` when it is not `local` or `aws`. */
function parseBackendKind(value: string, source: string): BackendKind {
  if (value === 'local' || value === 'aws') return value;
  throw new UsageError(`${source} "${value}": expected local or aws`);
}

/**
 * Records the global `--backend local|aws` option for {@link backendKind} (`undefined`: not given).
 * @throws {UsageError} for another value.
 */
export function selectBackend(flag: string | undefined): void {
  backendFlag = flag === undefined ? undefined : parseBackendKind(flag, '--backend');
}

/**
 * The backend CLI commands open: `--backend`, else `$SLUICE_BACKEND` (the variable the stack sets
 * on its functions), else `local`.
 * @throws {UsageError} when `$SLUICE_BACKEND` is set to something other than `local` or `aws`.
 */
export function backendKind(): BackendKind {
  if (backendFlag !== undefined) return backendFlag;
  const env = process.env[AWS_ENV.backend];
  return env === undefined || env === '' ? 'local' : parseBackendKind(env, `$${AWS_ENV.backend}`);
}

/**
 * Refuses a command that is local by nature on the aws backend.
 * @param command what refuses, e.g. `sluice up`.
 * @param instead why, and what to use on AWS instead (a sentence or two).
 * @throws {UsageError} (exit 2) on the aws backend.
 */
export function requireLocalBackend(command: string, instead: string): void {
  if (backendKind() === 'aws') {
    throw new UsageError(
      `${command} works on the local backend only (the backend is aws: --backend or $${AWS_ENV.backend}): ${instead}`,
    );
  }
}

/**
 * The sluice home: `--home`, else `$SLUICE_HOME`, else `./.sluice` on the local backend and
 * `<OS temp dir>/sluice-aws` on the aws backend (where only the log and scratch files go),
 * resolved to an absolute path.
 */
export function resolveHome(flag: string | undefined): string {
  const fallback = backendKind() === 'aws' ? path.join(os.tmpdir(), 'sluice-aws') : '.sluice';
  return path.resolve(flag ?? process.env.SLUICE_HOME ?? fallback);
}

/**
 * The aws backend's configuration from the environment ({@link awsConfigFromEnv}).
 * @throws {UsageError} naming the missing (or malformed) variables and where a deployed stack's
 *   values are (its `SluiceEnv` output, docs/deploy.md).
 */
export function cliAwsConfig(): AwsBackendConfig {
  try {
    return awsConfigFromEnv();
  } catch (error) {
    throw new UsageError(
      `${(error as Error).message}; a deployed stack prints them as its SluiceEnv output (docs/cli.md, "Against a deployed stack")`,
    );
  }
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
 * The composition root of CLI commands: the backend of {@link backendKind}, a pino logger writing
 * JSON lines to `<home>/logs/sluice.log` (level `$SLUICE_LOG_LEVEL`, default `info`), progress
 * bars on a TTY, and `<home>/tmp` as the working directory.
 *
 * Local: the embedded backend under `home`. AWS: `createAwsBackend` over the deployed stack's
 * resources named by the environment ({@link cliAwsConfig}; credentials from the SDK's default
 * chain), loaded with dynamic `import()` so the local path never loads the AWS SDK; it creates no
 * table (the stack did), so a missing one is an error naming it. `awsConfig` is set on aws only.
 * @throws {UsageError} on aws when the environment is incomplete (names the variables).
 */
export async function openContext(options: { home: string; progress: boolean }): Promise<{
  ctx: PipelineContext;
  backend: Backend;
  /** The resolved home (on aws: only logs and scratch files). */
  home: string;
  awsConfig?: AwsBackendConfig;
  close(): Promise<void>;
}> {
  const home = path.resolve(options.home);
  const awsConfig = backendKind() === 'aws' ? cliAwsConfig() : undefined;
  const logDir = path.join(home, 'logs');
  mkdirSync(logDir, { recursive: true });
  const { pino } = await import('pino');
  const logger = pino(
    { level: process.env.SLUICE_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    pino.destination({ dest: path.join(logDir, 'sluice.log'), sync: true, mkdir: true }),
  ) as unknown as Logger;
  let backend: Backend;
  if (awsConfig) {
    const { createAwsBackend } = await import('../backends/aws/aws-backend.ts');
    backend = await createAwsBackend(awsConfig, { logger });
  } else {
    // The backend logs what starting the home's warehouse server changes on the machine.
    backend = createLocalBackend(home, { logger });
  }
  const ctx: PipelineContext = {
    backend,
    clock: systemClock,
    logger,
    progress: await createProgress({ enabled: options.progress }),
    workDir: path.join(home, 'tmp'),
    engine: engineSettings(),
  };
  return { ctx, backend, home, ...(awsConfig ? { awsConfig } : {}), close: () => backend.close() };
}
