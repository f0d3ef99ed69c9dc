import type { JsonValue } from './kv-table.ts';

/** Step Functions execution statuses. */
export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

/** What started an execution. */
export interface ExecutionSource {
  readonly kind: 'schedule' | 'object-created' | 'manual';
  /** Schedule or trigger name, or the command. */
  readonly name: string;
  /** E.g. the scheduled time or the object key. */
  readonly detail?: string;
}

/** One execution of a workflow (Step Functions `DescribeExecution`). Times are ISO-8601 UTC. */
export interface ExecutionRecord {
  readonly executionId: string;
  readonly workflow: string;
  readonly pipeline: string;
  readonly status: ExecutionStatus;
  readonly input: JsonValue;
  readonly output?: JsonValue;
  /** ASL error name and cause of a failed execution. */
  readonly error?: string;
  readonly cause?: string;
  /** The state whose failure ended the execution. */
  readonly failedState?: string;
  readonly source?: ExecutionSource;
  readonly startedAt: string;
  readonly stoppedAt?: string;
}

/**
 * One event of an execution's history (Step Functions `GetExecutionHistory`), with the ASL event
 * names: `ExecutionStarted`, `StateEntered`, `StateExited`, `StateFailed`, `StateRetried`,
 * `StateCaught`, `MapIterationStarted`, ..., `ExecutionSucceeded`, `ExecutionFailed`,
 * `ExecutionAborted`.
 */
export interface ExecutionEvent {
  /** 1-based position in the history. */
  readonly seq: number;
  readonly type: string;
  /** ISO-8601 UTC with milliseconds. */
  readonly timestamp: string;
  readonly state?: string;
  readonly stateType?: string;
  readonly input?: JsonValue;
  readonly output?: JsonValue;
  readonly error?: string;
  readonly cause?: string;
  /** `StateRetried`: the matching retrier's `ErrorEquals` and the attempt number (1 = first retry). */
  readonly retry?: { readonly errorEquals: readonly string[]; readonly attempt: number };
  /** Map iteration index or Parallel branch of the event, with the parent state. */
  readonly parent?: { readonly state: string; readonly index?: number };
}

/** A started execution. */
export interface ExecutionHandle {
  readonly executionId: string;
  /** Resolves with the final record (also when the execution failed); never rejects. */
  readonly done: Promise<ExecutionRecord>;
}

/** Filters of {@link WorkflowRunner.list}. */
export interface ExecutionFilter {
  readonly pipeline?: string;
  readonly workflow?: string;
  readonly status?: ExecutionStatus;
  /** Newest first; default 100. */
  readonly limit?: number;
}

/**
 * Workflow runner port: runs a pipeline's ASL workflows and keeps their history.
 * Local backend: aws-local-stepfunctions, Task resources resolved to sluice functions in-process.
 * AWS backend: Step Functions with the same ASL JSON.
 */
export interface WorkflowRunner {
  /**
   * Starts an execution of `workflow` with `input`. When the workflow is at its `maxConcurrency`,
   * resolves only once a running execution ends and this one has started (first come, first served).
   * @throws {NotFoundError} for an unknown workflow; {@link SluiceError} `shutting_down` after shutdown.
   */
  start(workflow: string, input: JsonValue, options?: { source?: ExecutionSource }): Promise<ExecutionHandle>;
  /** The execution, or `undefined`. */
  describe(executionId: string): Promise<ExecutionRecord | undefined>;
  /** The execution's events in order. */
  history(executionId: string): Promise<ExecutionEvent[]>;
  /** Executions, newest first. */
  list(filter?: ExecutionFilter): Promise<ExecutionRecord[]>;
  /**
   * Stops accepting starts and waits up to `graceMs` for running executions; those still running
   * are aborted and recorded `ABORTED`. Starts still waiting for a slot reject at once.
   */
  shutdown(graceMs: number): Promise<void>;
}
