import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipelineModules } from '../../../pipelines/index.ts';
import { type AwsBackendConfig, awsConfigFromEnv } from '../../backends/aws/config.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { CONFIG_KEY_SCHEMA, CONFIG_TABLE } from '../../core/config.ts';
import type { EngineSettings, PipelineContext } from '../../core/context.ts';
import { UsageError } from '../../core/errors.ts';
import type { FunctionContext, FunctionHandler } from '../../core/function.ts';
import { type Logger, noProgress } from '../../core/logger.ts';
import type { ConfigReader, PipelineDefinition, PipelineModule } from '../../core/pipeline.ts';
import type { Backend } from '../../core/ports/backend.ts';
import { allPages, type JsonValue, type KvTable } from '../../core/ports/kv-table.ts';
import type { Notifier } from '../../core/ports/notifier.ts';
import type { WorkflowRunner } from '../../core/ports/workflow-runner.ts';

/** Environment variable naming the pipeline a deployed function belongs to (e.g. `tolls`). */
export const PIPELINE_ENV = 'SLUICE_PIPELINE';
/** Environment variable naming the sluice function a task or stream handler runs (e.g. `tolls-job`). */
export const FUNCTION_ENV = 'SLUICE_FUNCTION';

/**
 * The part of the Lambda Node.js context object the handlers use
 * (https://docs.aws.amazon.com/lambda/latest/dg/nodejs-context.html).
 */
export interface LambdaContext {
  /** The Lambda function's name (the deployed name, not necessarily the sluice function's). */
  readonly functionName: string;
  readonly awsRequestId: string;
  /** Milliseconds left before the invocation times out. */
  getRemainingTimeInMillis(): number;
}

/** What the environment of a deployed function says: see {@link readLambdaEnv}. */
export interface LambdaEnv {
  readonly pipeline: string;
  /** `SLUICE_FUNCTION`, when set. */
  readonly functionName?: string;
  readonly config: AwsBackendConfig;
}

/**
 * Reads `SLUICE_PIPELINE`, `SLUICE_FUNCTION` (required when `needsFunction`) and the backend's
 * variables ({@link awsConfigFromEnv}: region and the four layer buckets are required).
 * @throws {UsageError} naming every missing variable at once.
 */
export function readLambdaEnv(env: NodeJS.ProcessEnv, options: { needsFunction: boolean }): LambdaEnv {
  const missing: string[] = [];
  const pipeline = env[PIPELINE_ENV] ?? '';
  if (pipeline === '') missing.push(PIPELINE_ENV);
  const functionName = env[FUNCTION_ENV] ?? '';
  if (options.needsFunction && functionName === '') missing.push(FUNCTION_ENV);
  let config: AwsBackendConfig | undefined;
  const problems: string[] = [];
  try {
    config = awsConfigFromEnv(env);
  } catch (error) {
    problems.push((error as Error).message);
  }
  if (missing.length > 0) {
    problems.unshift(`the sluice Lambda handler needs these environment variables: ${missing.join(', ')}`);
  }
  if (problems.length > 0 || config === undefined) {
    throw new UsageError(`${problems.join('; ')} (the CDK stack sets them on every function it deploys)`);
  }
  return { pipeline, ...(functionName !== '' ? { functionName } : {}), config };
}

/**
 * Everything a Lambda entry point needs, built once per container by {@link awsRuntime} (or by
 * {@link createAwsRuntime} in tests, with injected backend and runner).
 */
export interface AwsRuntime {
  readonly pipeline: PipelineDefinition;
  /** `SLUICE_FUNCTION`, when set. */
  readonly functionName?: string;
  readonly ctx: PipelineContext;
  /**
   * Starts workflows (Step Functions on AWS), created on first use: only the S3 and schedule
   * handlers need it, so task and stream functions need no `SLUICE_STATE_MACHINE_ARN_PREFIX`.
   * @throws {Error} when `SLUICE_STATE_MACHINE_ARN_PREFIX` is not set.
   */
  runner(): Promise<WorkflowRunner>;
  readonly notifier: Notifier;
  readonly config: AwsBackendConfig;
  /**
   * The handler of the pipeline's function `name`, with the pipeline's configuration re-read from
   * the `config` table first (one DynamoDB Query), so `sluice config set` reaches the next
   * invocation without a redeploy: a Lambda container is frozen between invocations, so a
   * background follower of the change stream (as `sluice up` runs) would not keep it current.
   * @throws {UsageError} when the pipeline has no function `name`.
   */
  handler(name: string): Promise<FunctionHandler>;
}

/** Options of {@link createAwsRuntime}; all but `env` are test seams. */
export interface AwsRuntimeOptions {
  /** Default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** Whether `SLUICE_FUNCTION` is required (task and stream handlers). */
  readonly needsFunction: boolean;
  /** Default: the shipped pipelines (`pipelines/index.ts`). */
  readonly modules?: Readonly<Record<string, PipelineModule>>;
  /** Default: `createAwsBackend(config)`. */
  readonly backend?: Backend;
  /** Default: `createAwsWorkflowRunner(config, pipeline.workflows)` (Step Functions), created on first use, never polling. */
  readonly runner?: WorkflowRunner;
  /** Default: `createAwsNotifier(config)` (SNS, or the log when no topic is configured). */
  readonly notifier?: Notifier;
  readonly clock?: Clock;
  /** Default: pino writing JSON lines to stdout (CloudWatch Logs), level `$SLUICE_LOG_LEVEL` or `info`. */
  readonly logger?: Logger;
  /** Default: `<os.tmpdir()>/sluice` (Lambda's `/tmp`). */
  readonly workDir?: string;
}

/**
 * Builds the runtime of one deployed function: reads its environment ({@link readLambdaEnv}),
 * finds the pipeline, creates the aws backend and the notifier (their SDKs load here, lazily; the
 * Step Functions runner on first {@link AwsRuntime.runner}), and the pipeline's handlers over a
 * {@link ConfigReader} of the `config` table (over the definition's defaults), as `sluice up`
 * builds them locally (src/runtime/local/local-stack.ts).
 * @throws {UsageError} for a missing variable or an unknown pipeline.
 */
export async function createAwsRuntime(options: AwsRuntimeOptions): Promise<AwsRuntime> {
  const env = options.env ?? process.env;
  const lambdaEnv = readLambdaEnv(env, { needsFunction: options.needsFunction });
  const modules = options.modules ?? pipelineModules;
  const module = modules[lambdaEnv.pipeline];
  if (!module) {
    throw new UsageError(
      `${PIPELINE_ENV}=${lambdaEnv.pipeline} is not a pipeline of this bundle (known: ${Object.keys(modules).join(', ')})`,
    );
  }
  const definition = module.definition;
  if (lambdaEnv.functionName !== undefined && options.needsFunction) {
    checkFunction(definition, lambdaEnv.functionName);
  }
  const clock = options.clock ?? systemClock;
  const logger = (options.logger ?? (await stdoutLogger(env))).child({ pipeline: definition.name });
  const aws = await import('../../backends/aws/aws-backend.ts');
  const backend = options.backend ?? (await aws.createAwsBackend(lambdaEnv.config, { clock, logger }));
  let runner: Promise<WorkflowRunner> | undefined = options.runner
    ? Promise.resolve(options.runner)
    : undefined;
  const notifier = options.notifier ?? (await aws.createAwsNotifier(lambdaEnv.config, { logger }));
  const workDir = options.workDir ?? path.join(os.tmpdir(), 'sluice');
  mkdirSync(workDir, { recursive: true });
  const ctx: PipelineContext = {
    backend,
    clock,
    logger,
    progress: noProgress,
    workDir,
    engine: engineSettings(env),
  };

  // Configuration: the table's values over the definition's defaults, re-read per invocation.
  // The items are ConfigStore's (src/core/config.ts); the table is opened without `stream`, which
  // only ConfigStore.watch needs, so no DescribeTable check of the stream per container.
  let values = new Map<string, JsonValue>();
  let table: KvTable | undefined;
  const config: ConfigReader = {
    get: (key) => values.get(key) ?? definition.config?.[key]?.default,
  };
  const refreshConfig = async (): Promise<void> => {
    table ??= await backend.kv.table(CONFIG_TABLE, CONFIG_KEY_SCHEMA);
    const read = table;
    const next = new Map<string, JsonValue>();
    for await (const item of allPages((cursor) => read.query(definition.name, cursor ? { cursor } : {}))) {
      if (typeof item.key === 'string' && Object.hasOwn(item, 'value'))
        next.set(item.key, item.value as JsonValue);
    }
    values = next;
  };
  let handlers: Readonly<Record<string, FunctionHandler>> | undefined;

  return {
    pipeline: definition,
    ...(lambdaEnv.functionName !== undefined ? { functionName: lambdaEnv.functionName } : {}),
    ctx,
    runner() {
      if (!runner) {
        const created = aws.createAwsWorkflowRunner(lambdaEnv.config, definition.workflows ?? [], {
          clock: startOnly(clock),
        });
        runner = created;
        created.catch(() => {
          if (runner === created) runner = undefined;
        });
      }
      return runner;
    },
    notifier,
    config: lambdaEnv.config,
    async handler(name) {
      checkFunction(definition, name);
      await refreshConfig();
      handlers ??= module.handlers({ ctx, config, notifier });
      const handler = handlers[name];
      if (!handler) {
        throw new UsageError(
          `pipeline ${definition.name} declares function ${name} but has no handler for it`,
        );
      }
      return handler;
    },
  };
}

/**
 * The clock of the Lambda's workflow runner: its time is `clock`'s; a wait with an abort signal
 * fails at once, a wait without one sleeps for real. `StepFunctionsRunner` polls
 * `DescribeExecution` behind each started execution's `done` with signalled waits (its
 * `stopPolling` signal) and backs off from throttled requests with plain waits. A Lambda handler
 * never waits for an execution (Step Functions runs it), and polling loops left behind would run
 * on in the frozen container at every later invocation, so `done` resolves at once with the
 * `RUNNING` record and nothing is polled, while throttled starts are still retried. (A `poll: false`
 * option of `StepFunctionsRunner` would say this directly; lambda.test.ts checks both behaviours.)
 */
function startOnly(clock: Clock): Clock {
  return {
    now: () => clock.now(),
    sleep: (ms, signal) =>
      signal !== undefined
        ? Promise.reject(new Error('a Lambda handler does not wait for executions'))
        : systemClock.sleep(ms),
  };
}

/** @throws {UsageError} when `definition` declares no function `name`. */
function checkFunction(definition: PipelineDefinition, name: string): void {
  const names = (definition.functions ?? []).map((f) => f.name);
  if (!names.includes(name)) {
    throw new UsageError(
      `${FUNCTION_ENV}=${name} is not a function of pipeline ${definition.name} (its functions: ${names.join(', ') || 'none'})`,
    );
  }
}

/**
 * The {@link FunctionContext} a sluice function gets in Lambda: Lambda's own context, with the
 * sluice function's name (the deployed function's name may carry a stack prefix).
 */
export function functionContext(
  functionName: string,
  context: LambdaContext,
  executionId?: string,
): FunctionContext {
  return {
    functionName,
    awsRequestId: context.awsRequestId,
    ...(executionId !== undefined ? { executionId } : {}),
    getRemainingTimeInMillis: () => context.getRemainingTimeInMillis(),
  };
}

/**
 * Engine settings from `SLUICE_DUCKDB_THREADS` and `SLUICE_DUCKDB_MEMORY_LIMIT`, as the CLI reads
 * them (src/cli/context.ts `engineSettings`, not imported: it would bundle the local backend).
 */
function engineSettings(env: NodeJS.ProcessEnv): EngineSettings {
  const threads = Number(env.SLUICE_DUCKDB_THREADS);
  return {
    ...(Number.isInteger(threads) && threads > 0 ? { threads } : {}),
    ...(env.SLUICE_DUCKDB_MEMORY_LIMIT ? { memoryLimit: env.SLUICE_DUCKDB_MEMORY_LIMIT } : {}),
  };
}

/** JSON lines on stdout, which Lambda sends to CloudWatch Logs. */
async function stdoutLogger(env: NodeJS.ProcessEnv): Promise<Logger> {
  const { pino } = await import('pino');
  return pino({ level: env.SLUICE_LOG_LEVEL ?? 'info' }) as unknown as Logger;
}

const cached = new Map<boolean, Promise<AwsRuntime>>();

/**
 * The runtime of this container, built on first use and reused by every later invocation (a
 * Lambda container serves one function, so one entry point). A failed build is not cached: the
 * next invocation tries again (e.g. after a throttled DescribeTable).
 * @throws {UsageError} for a missing variable or an unknown pipeline/function.
 */
export function awsRuntime(options: { needsFunction: boolean }): Promise<AwsRuntime> {
  let promise = cached.get(options.needsFunction);
  if (!promise) {
    promise = createAwsRuntime({ needsFunction: options.needsFunction });
    cached.set(options.needsFunction, promise);
    promise.catch(() => cached.delete(options.needsFunction));
  }
  return promise;
}

/** Forgets the cached runtime (tests that change the environment between cases). */
export function resetAwsRuntime(): void {
  cached.clear();
}
