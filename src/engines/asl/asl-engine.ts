import type { JsonValue } from '../../core/ports/kv-table.ts';
import type { ExecutionEvent } from '../../core/ports/workflow-runner.ts';
import type { AslDefinition } from '../../core/workflow.ts';
import { ensurePromiseWithResolvers } from './promise-with-resolvers.ts';

/**
 * Runs Amazon States Language state machines in-process with `aws-local-stepfunctions`
 * (https://github.com/nibble-4bits/aws-local-stepfunctions): Task, Retry (interval, max attempts,
 * backoff rate, jitter), Catch, Choice, Wait, Map (inline), Parallel, Pass, Fail, Succeed and the
 * intrinsic functions, with JSONPath. Not supported by the library (so not by sluice's local
 * runner): JSONata, `Assign` variables, Distributed Map. Retry/Catch match a thrown error's `name`
 * against `ErrorEquals`, as Step Functions matches a Lambda error's type.
 *
 * The library declares Node >= 22 only for `Promise.withResolvers`; it is polyfilled here
 * ({@link ensurePromiseWithResolvers}).
 */

/** A local implementation of a Task state: gets the state's effective input, returns its result. */
export type TaskImplementation = (input: JsonValue) => Promise<JsonValue>;

/** Options of {@link runStateMachine}. */
export interface RunStateMachineOptions {
  readonly definition: AslDefinition;
  readonly input: JsonValue;
  /** Implementation of every Task state, by state name (names are unique across branches here). */
  readonly tasks: Readonly<Record<string, TaskImplementation>>;
  /** Milliseconds to wait before each retry instead of the Retry fields' intervals (tests: 0). */
  readonly retryIntervalMs?: number;
  /** Milliseconds each Wait state waits instead of its own duration (tests: 0). */
  readonly waitMs?: number;
  /** Called with each history event, in order. */
  readonly onEvent: (event: Omit<ExecutionEvent, 'seq'>) => void;
}

/** Outcome of {@link runStateMachine}. */
export type StateMachineOutcome =
  | { readonly status: 'SUCCEEDED'; readonly output: JsonValue }
  | {
      readonly status: 'FAILED' | 'TIMED_OUT' | 'ABORTED';
      readonly error: string;
      readonly cause: string;
      readonly failedState?: string;
    };

/**
 * Constructed state machines by definition object: construction validates the whole definition
 * against the ASL schema, which costs far more than running a short execution.
 */
const machines = new WeakMap<AslDefinition, unknown>();

async function machineFor(
  definition: AslDefinition,
): Promise<{ run: (input: never, options: never) => LibraryExecution }> {
  ensurePromiseWithResolvers();
  let machine = machines.get(definition);
  if (!machine) {
    const { StateMachine } = await import('aws-local-stepfunctions');
    machine = new StateMachine(definition as never);
    machines.set(definition, machine);
  }
  return machine as { run: (input: never, options: never) => LibraryExecution };
}

interface LibraryExecution {
  abort(): void;
  result: Promise<unknown>;
  eventLogs: AsyncGenerator<unknown>;
}

/**
 * Checks a definition as Step Functions would at `CreateStateMachine`.
 * @throws {Error} listing every problem found.
 */
export async function validateDefinition(definition: AslDefinition): Promise<void> {
  await machineFor(definition);
}

/**
 * Runs one execution. Resolves with the outcome (never rejects for a failed execution); `abort()`
 * ends it with `ABORTED`.
 * @throws {Error} when the definition is invalid or a Task state has no implementation.
 */
export async function runStateMachine(
  options: RunStateMachineOptions,
): Promise<{ outcome: Promise<StateMachineOutcome>; abort: () => void }> {
  const machine = await machineFor(options.definition);
  const { ExecutionAbortedError, ExecutionTimeoutError } = await import('aws-local-stepfunctions');
  const retryIntervalOverrides: Record<string, number> = {};
  const waitTimeOverrides: Record<string, number> = {};
  const states = allStates(options.definition);
  for (const [name, type] of states) {
    if (options.retryIntervalMs !== undefined) retryIntervalOverrides[name] = options.retryIntervalMs;
    if (type === 'Wait' && options.waitMs !== undefined) waitTimeOverrides[name] = options.waitMs;
    if (type === 'Task' && !options.tasks[name]) {
      throw new Error(`Task state "${name}" has no implementation (its Resource names no known function)`);
    }
  }
  // The library stops an aborted execution, and the branches of a Parallel (or the iterations of
  // a Map) that failed, between states; but a Task running at that moment that then fails is still
  // retried, calling its function again for an execution or branch that is gone (Step Functions
  // does not). Such a failure is made final (neither retried nor caught), and no call starts once
  // the execution is over.
  const nested = nestedTasks(options.definition);
  const inFlight = new Map<string, Set<{ orphan: boolean }>>();
  let over = false;
  const tasks: Record<string, TaskImplementation> = {};
  for (const [name, task] of Object.entries(options.tasks)) {
    tasks[name] = async (input) => {
      if (over) {
        throw finalError(new Error(`Task state "${name}" not run: its execution has ended`));
      }
      const call = { orphan: false };
      const calls = inFlight.get(name) ?? new Set();
      inFlight.set(name, calls);
      calls.add(call);
      try {
        return await task(input);
      } catch (error) {
        throw over || call.orphan ? finalError(error) : error;
      } finally {
        calls.delete(call);
      }
    };
  }
  const execution = machine.run(
    options.input as never,
    {
      overrides: {
        taskResourceLocalHandlers: tasks,
        retryIntervalOverrides,
        waitTimeOverrides,
      },
    } as never,
  );
  let failedState: string | undefined;
  const events = (async () => {
    for await (const event of execution.eventLogs as AsyncGenerator<LibraryEvent>) {
      const mapped = mapEvent(event);
      if (mapped.type === 'StateFailed' && mapped.state) failedState = mapped.state;
      // A Parallel or Map caught: the calls still running in its branches belong to no branch now.
      if (mapped.type === 'StateCaught' && mapped.state) {
        for (const task of nested.get(mapped.state) ?? []) {
          for (const call of inFlight.get(task) ?? []) call.orphan = true;
        }
      }
      options.onEvent(mapped);
    }
  })();
  const outcome = (async (): Promise<StateMachineOutcome> => {
    try {
      const output = (await execution.result) as JsonValue;
      over = true;
      await events;
      return { status: 'SUCCEEDED', output };
    } catch (error) {
      over = true;
      await events.catch(() => {});
      if (error instanceof ExecutionAbortedError) {
        return {
          status: 'ABORTED',
          error: 'ExecutionAborted',
          cause: 'the execution was aborted',
          ...(failedState ? { failedState } : {}),
        };
      }
      if (error instanceof ExecutionTimeoutError) {
        return {
          status: 'TIMED_OUT',
          error: 'States.Timeout',
          cause: 'the execution ran past its TimeoutSeconds',
        };
      }
      const inner = (error as Error).cause as { name?: string; message?: string } | undefined;
      return {
        status: 'FAILED',
        error: inner?.name ?? (error as Error).name,
        cause: inner?.message ?? (error as Error).message,
        ...(failedState ? { failedState } : {}),
      };
    }
  })();
  return {
    outcome,
    abort: () => {
      over = true;
      execution.abort();
    },
  };
}

/** `error` (same name and message) as one the library neither retries nor catches. */
function finalError(error: unknown): Error {
  const final = new Error(error instanceof Error ? error.message : String(error));
  final.name = error instanceof Error ? error.name : 'Error';
  return Object.assign(final, { isRetryable: false, isCatchable: false });
}

/** Task states inside each Parallel and Map state (in their branches or item processor, at any depth). */
function nestedTasks(definition: AslDefinition): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const tasksOf = (machine: AslDefinition): string[] =>
    Object.entries(machine.States).flatMap(([name, state]) => {
      const processor = state.ItemProcessor ?? state.Iterator;
      const inner = [...(state.Branches ?? []), ...(processor ? [processor] : [])].flatMap(tasksOf);
      if (inner.length > 0) found.set(name, inner);
      return state.Type === 'Task' ? [name, ...inner] : inner;
    });
  tasksOf(definition);
  return found;
}

/** Every state of a definition with its type, including nested branches and Map processors. */
function allStates(definition: AslDefinition): [string, string][] {
  const found: [string, string][] = [];
  const visit = (machine: AslDefinition) => {
    for (const [name, state] of Object.entries(machine.States)) {
      found.push([name, state.Type]);
      for (const branch of state.Branches ?? []) visit(branch);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (processor) visit(processor);
    }
  };
  visit(definition);
  return found;
}

interface LibraryEvent {
  type: string;
  timestamp: number;
  input?: JsonValue;
  output?: JsonValue;
  Error?: string;
  Cause?: unknown;
  state?: { name: string; type: string; input?: JsonValue; output?: JsonValue };
  parentState?: { name: string };
  index?: number;
  retry?: { retrier: { ErrorEquals?: string[] }; attempt: number };
}

/** The library's event as sluice's {@link ExecutionEvent} (without `seq`). */
function mapEvent(event: LibraryEvent): Omit<ExecutionEvent, 'seq'> {
  const cause =
    event.Cause === undefined
      ? undefined
      : typeof event.Cause === 'string'
        ? event.Cause
        : JSON.stringify(event.Cause);
  return {
    type: event.type,
    timestamp: new Date(event.timestamp).toISOString(),
    ...(event.state ? { state: event.state.name, stateType: event.state.type } : {}),
    ...(event.state?.input !== undefined
      ? { input: event.state.input }
      : event.input !== undefined
        ? { input: event.input }
        : {}),
    ...(event.state?.output !== undefined
      ? { output: event.state.output }
      : event.output !== undefined
        ? { output: event.output }
        : {}),
    ...(event.Error !== undefined ? { error: event.Error } : {}),
    ...(cause !== undefined ? { cause } : {}),
    ...(event.retry
      ? { retry: { errorEquals: event.retry.retrier.ErrorEquals ?? [], attempt: event.retry.attempt } }
      : {}),
    ...(event.parentState
      ? {
          parent: {
            state: event.parentState.name,
            ...(event.index !== undefined ? { index: event.index } : {}),
          },
        }
      : {}),
  };
}
