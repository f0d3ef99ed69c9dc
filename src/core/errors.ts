/**
 * sluice's error hierarchy.
 *
 * Every error sluice throws on purpose is a {@link SluiceError}: it has a stable `code`
 * (what went wrong, machine-readable), a `retryable` flag (transient vs terminal, as dlt
 * separates them) and the standard ES2022 `cause`. The `name` of an error is the string that
 * an Amazon States Language `Retry`/`Catch` clause matches (`ErrorEquals`), so a task that
 * throws `SourceUnavailableError` is retried locally exactly as Step Functions would retry it.
 *
 * The CLI maps errors to exit codes (see docs/cli.md) through {@link SluiceError.exitCode}.
 */
export class SluiceError extends Error {
  /** Machine-readable code, e.g. `source_unavailable`. */
  readonly code: string;
  /** True when retrying the same operation later may succeed (network, throttling, lock held). */
  readonly retryable: boolean;
  /** Process exit code the CLI uses when this error ends a command. */
  readonly exitCode: number;

  constructor(
    message: string,
    options: { code?: string; retryable?: boolean; exitCode?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? 'sluice_error';
    this.retryable = options.retryable ?? false;
    this.exitCode = options.exitCode ?? 1;
  }
}

/** Exit codes of the `sluice` CLI; documented in docs/cli.md. */
export const ExitCode = {
  ok: 0,
  /** Unexpected failure (a bug, or an environment problem sluice did not anticipate). */
  internal: 1,
  /** Bad command line, configuration or input named by the user. */
  usage: 2,
  /** The run finished but some source data was damaged beyond the quarantined records (e.g. truncated gzip). */
  dataLoss: 3,
  /** A source or service stayed unavailable after the retries; nothing was committed for the failing unit. */
  unavailable: 4,
  /** Another run holds the pipeline's lease. */
  busy: 5,
  /** A SQL statement failed (syntax, unknown table or column). */
  query: 6,
  /** A data-quality check with severity `block` failed: nothing of the unit was published. */
  qualityBlocked: 7,
} as const;

/** The user asked for something malformed: a flag, a date, a pipeline name. Terminal. */
export class UsageError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'usage', exitCode: ExitCode.usage, ...options });
  }
}

/** A referenced object, table or record does not exist. */
export class NotFoundError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'not_found', exitCode: ExitCode.usage, ...options });
  }
}

/**
 * A conditional write was refused because the stored item did not match the condition
 * (DynamoDB's `ConditionalCheckFailedException`). Used for optimistic concurrency on bookmarks
 * and leases.
 */
export class ConditionFailedError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'condition_failed', retryable: true, ...options });
  }
}

/** A network source failed after all retries (5xx, timeout, connection reset). Retryable later. */
export class SourceUnavailableError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, {
      code: 'source_unavailable',
      retryable: true,
      exitCode: ExitCode.unavailable,
      ...options,
    });
  }
}

/** Source data is damaged as a whole (e.g. a truncated gzip): records after the damage are unreadable. */
export class DataLossError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'data_loss', exitCode: ExitCode.dataLoss, ...options });
  }
}

/** Another holder owns the lease on a pipeline; the caller should wait or give up. */
export class LeaseHeldError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'lease_held', retryable: true, exitCode: ExitCode.busy, ...options });
  }
}

/** A SQL statement failed in the query engine. */
export class QueryError extends SluiceError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, { code: 'query_failed', exitCode: ExitCode.query, ...options });
  }
}

/**
 * A step of a pipeline failed. Wraps the cause with the pipeline, step, run and unit
 * (for gharchive, the hour file) so the message says where it happened and what happens
 * to pending work. Its `name` is the cause's (`SourceUnavailableError`), so an ASL `Retry` or
 * `Catch` on the cause's name still matches the wrapped error.
 */
export class StepError extends SluiceError {
  readonly pipeline: string;
  readonly step: string;
  readonly runId: string;
  readonly unit: string | undefined;

  constructor(
    context: { pipeline: string; step: string; runId: string; unit?: string | undefined },
    cause: unknown,
    pending?: string,
  ) {
    const inner = cause instanceof Error ? cause.message : String(cause);
    const where = `${context.pipeline}/${context.step}${context.unit ? ` (${context.unit})` : ''} in run ${context.runId}`;
    super(`${where} failed: ${inner}${pending ? `. ${pending}` : ''}`, {
      code: cause instanceof SluiceError ? cause.code : 'step_failed',
      retryable: cause instanceof SluiceError ? cause.retryable : false,
      exitCode: cause instanceof SluiceError ? cause.exitCode : ExitCode.internal,
      cause,
    });
    if (cause instanceof Error && cause.name !== 'Error') this.name = cause.name;
    this.pipeline = context.pipeline;
    this.step = context.step;
    this.runId = context.runId;
    this.unit = context.unit;
  }
}

/** Message of any thrown value, including the chain of `cause`s. */
export function describeError(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    if (!parts.some((p) => p.includes(message))) parts.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': caused by: ');
}
