import { randomBytes, randomUUID } from 'node:crypto';
import type { Clock } from '../../core/clock.ts';
import { describeError, NotFoundError, SluiceError } from '../../core/errors.ts';
import type { FunctionDefinition, FunctionHandler } from '../../core/function.ts';
import type { Logger } from '../../core/logger.ts';
import { silentLogger } from '../../core/logger.ts';
import type { Item, JsonValue, KvStore, KvTable } from '../../core/ports/kv-table.ts';
import { allPages } from '../../core/ports/kv-table.ts';
import type { Notifier } from '../../core/ports/notifier.ts';
import type {
  ExecutionEvent,
  ExecutionFilter,
  ExecutionHandle,
  ExecutionRecord,
  ExecutionSource,
  WorkflowRunner,
} from '../../core/ports/workflow-runner.ts';
import { taskStates, type WorkflowDefinition } from '../../core/workflow.ts';
import {
  runStateMachine,
  type TaskImplementation,
  validateDefinition,
} from '../../engines/asl/asl-engine.ts';

/** A function the local runner can call: its definition and its handler. */
export interface LocalFunction {
  readonly definition: FunctionDefinition;
  readonly handler: FunctionHandler;
}

/** Options of {@link LocalWorkflowRunner.open}. */
export interface LocalWorkflowRunnerOptions {
  readonly kv: KvStore;
  readonly clock: Clock;
  readonly workflows: readonly WorkflowDefinition[];
  /** Functions by name; every Task `Resource` of every workflow must name one. */
  readonly functions: Readonly<Record<string, LocalFunction>>;
  /** Receives an alert for every execution that fails, times out or is aborted. */
  readonly notifier?: Notifier;
  readonly logger?: Logger;
  /** Overrides every Retry interval, in ms (tests: 0). Default: the definition's intervals. */
  readonly retryIntervalMs?: number;
  /** Overrides every Wait state's duration, in ms (tests: 0). */
  readonly waitMs?: number;
  /** Called when an execution ends, after its record is stored. */
  readonly onFinished?: (record: ExecutionRecord) => void;
}

/** Key-value table of execution records (hash key `execution_id`). */
export const EXECUTIONS_TABLE = 'sluice_executions';
/** Key-value table of execution history events (hash key `execution_id`, range key `seq`). */
export const EXECUTION_EVENTS_TABLE = 'sluice_execution_events';

/**
 * Execution records and their history in the key-value port: what `sluice executions` and
 * `sluice execution <id>` read, from any process, while executions run.
 */
export class ExecutionStore {
  private constructor(
    private readonly executions: KvTable,
    private readonly events: KvTable,
  ) {}

  /** Opens (locally: creates) the two tables. */
  static async open(kv: KvStore): Promise<ExecutionStore> {
    const executions = await kv.table(EXECUTIONS_TABLE, { hashKey: { name: 'execution_id', type: 'S' } });
    const events = await kv.table(EXECUTION_EVENTS_TABLE, {
      hashKey: { name: 'execution_id', type: 'S' },
      rangeKey: { name: 'seq', type: 'N' },
    });
    return new ExecutionStore(executions, events);
  }

  /** Stores (creates or replaces) an execution record. */
  async put(record: ExecutionRecord): Promise<void> {
    await this.executions.put(toItem(record));
  }

  /** Appends one history event. */
  async append(executionId: string, seq: number, event: Omit<ExecutionEvent, 'seq'>): Promise<void> {
    await this.events.put(eventItem(executionId, seq, event));
  }

  /** The execution, or `undefined`. */
  async describe(executionId: string): Promise<ExecutionRecord | undefined> {
    const item = await this.executions.get({ execution_id: executionId });
    return item ? fromItem(item) : undefined;
  }

  /** The execution's events in order. */
  async history(executionId: string): Promise<ExecutionEvent[]> {
    const events: ExecutionEvent[] = [];
    for await (const item of allPages((cursor) => this.events.query(executionId, cursor ? { cursor } : {}))) {
      events.push(JSON.parse(String(item.event)) as ExecutionEvent);
    }
    return events;
  }

  /** Executions matching the filter, newest first. */
  async list(filter: ExecutionFilter = {}): Promise<ExecutionRecord[]> {
    const records: ExecutionRecord[] = [];
    for await (const item of allPages((cursor) => this.executions.scan(cursor ? { cursor } : {}))) {
      const record = fromItem(item);
      if (filter.pipeline !== undefined && record.pipeline !== filter.pipeline) continue;
      if (filter.workflow !== undefined && record.workflow !== filter.workflow) continue;
      if (filter.status !== undefined && record.status !== filter.status) continue;
      records.push(record);
    }
    records.sort((a, b) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0));
    return records.slice(0, filter.limit ?? 100);
  }
}

interface Running {
  readonly record: ExecutionRecord;
  abort(): void;
  readonly done: Promise<ExecutionRecord>;
}

/**
 * The local {@link WorkflowRunner}: runs ASL workflows with aws-local-stepfunctions
 * (src/engines/asl/asl-engine.ts), each Task calling the sluice function its `Resource` names with
 * the Lambda signature `(event, context)`. Executions and every history event are stored in
 * key-value tables as they happen ({@link ExecutionStore}), so `sluice executions` in another
 * process sees them live, and a crash leaves the history up to the last event.
 *
 * `maxConcurrency` queues further starts of a workflow, first come first served. A failed,
 * timed-out or aborted execution raises an alert naming pipeline, workflow, execution, failing
 * state, error and cause.
 */
export class LocalWorkflowRunner implements WorkflowRunner {
  private readonly running = new Map<string, Running>();
  private readonly slots = new Map<string, { active: number; waiting: (() => void)[] }>();
  private stopping = false;
  private readonly workflows: Map<string, WorkflowDefinition>;
  private readonly logger: Logger;

  private constructor(
    private readonly options: LocalWorkflowRunnerOptions,
    readonly store: ExecutionStore,
  ) {
    this.workflows = new Map(options.workflows.map((w) => [w.name, w]));
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * Validates every workflow (ASL schema, every Task bound to a known function, state names unique
   * across branches) and opens the history tables.
   * @throws {Error} naming the workflow and the problem.
   */
  static async open(options: LocalWorkflowRunnerOptions): Promise<LocalWorkflowRunner> {
    for (const workflow of options.workflows) {
      try {
        await validateDefinition(workflow.definition);
      } catch (error) {
        throw new Error(`workflow ${workflow.name} is not valid ASL: ${(error as Error).message}`);
      }
      const seen = new Set<string>();
      for (const task of taskStates(workflow.definition)) {
        if (seen.has(task.stateName)) {
          throw new Error(`workflow ${workflow.name}: Task state name "${task.stateName}" is used twice`);
        }
        seen.add(task.stateName);
        if (!task.functionName || !options.functions[task.functionName]) {
          throw new Error(
            `workflow ${workflow.name}: Task "${task.stateName}" has Resource ${task.resource}, which names no sluice function (known: ${Object.keys(options.functions).join(', ') || 'none'})`,
          );
        }
      }
    }
    return new LocalWorkflowRunner(options, await ExecutionStore.open(options.kv));
  }

  /** The workflows this runner knows. */
  get definitions(): readonly WorkflowDefinition[] {
    return [...this.workflows.values()];
  }

  async start(
    workflowName: string,
    input: JsonValue,
    options: { source?: ExecutionSource } = {},
  ): Promise<ExecutionHandle> {
    const workflow = this.workflows.get(workflowName);
    if (!workflow) {
      throw new NotFoundError(
        `unknown workflow "${workflowName}" (known: ${[...this.workflows.keys()].join(', ')})`,
      );
    }
    if (this.stopping)
      throw new SluiceError('the workflow runner is shutting down', { code: 'shutting_down' });
    await this.acquireSlot(workflow);
    if (this.stopping) {
      this.releaseSlot(workflow);
      throw new SluiceError('the workflow runner is shutting down', { code: 'shutting_down' });
    }
    const { clock } = this.options;
    const executionId = `${workflow.name}:${clock
      .now()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')}-${randomBytes(4).toString('hex')}`;
    const record: ExecutionRecord = {
      executionId,
      workflow: workflow.name,
      pipeline: workflow.pipeline,
      status: 'RUNNING',
      input,
      ...(options.source ? { source: options.source } : {}),
      startedAt: clock.now().toISOString(),
    };
    await this.store.put(record);

    // History events are written in order, one after another, as the execution produces them.
    let seq = 0;
    let writes: Promise<void> = Promise.resolve();
    const append = (event: Omit<ExecutionEvent, 'seq'>) => {
      const n = ++seq;
      writes = writes
        .then(() => this.store.append(executionId, n, event))
        .catch((error: unknown) => {
          this.logger.error({ executionId, err: describeError(error) }, 'could not store an execution event');
        });
    };

    const tasks: Record<string, TaskImplementation> = {};
    for (const task of taskStates(workflow.definition)) {
      const fn = this.options.functions[task.functionName ?? ''];
      if (fn) tasks[task.stateName] = (event) => this.invoke(fn, event, executionId);
    }
    let run: Awaited<ReturnType<typeof runStateMachine>>;
    try {
      run = await runStateMachine({
        definition: workflow.definition,
        input,
        tasks,
        onEvent: append,
        ...(this.options.retryIntervalMs !== undefined
          ? { retryIntervalMs: this.options.retryIntervalMs }
          : {}),
        ...(this.options.waitMs !== undefined ? { waitMs: this.options.waitMs } : {}),
      });
    } catch (error) {
      this.releaseSlot(workflow);
      const failed: ExecutionRecord = {
        ...record,
        status: 'FAILED',
        error: 'States.Runtime',
        cause: describeError(error),
        stoppedAt: clock.now().toISOString(),
      };
      await this.store.put(failed);
      await this.alert(failed);
      return { executionId, done: Promise.resolve(failed) };
    }

    const done = (async (): Promise<ExecutionRecord> => {
      const outcome = await run.outcome;
      if (outcome.status === 'ABORTED')
        append({ type: 'ExecutionAborted', timestamp: clock.now().toISOString() });
      await writes;
      const final: ExecutionRecord =
        outcome.status === 'SUCCEEDED'
          ? { ...record, status: 'SUCCEEDED', output: outcome.output, stoppedAt: clock.now().toISOString() }
          : {
              ...record,
              status: outcome.status,
              error: outcome.error,
              cause: outcome.cause,
              ...(outcome.failedState ? { failedState: outcome.failedState } : {}),
              stoppedAt: clock.now().toISOString(),
            };
      await this.store.put(final);
      this.running.delete(executionId);
      this.releaseSlot(workflow);
      if (final.status !== 'SUCCEEDED') await this.alert(final);
      this.logger.info({ executionId, status: final.status }, 'execution finished');
      this.options.onFinished?.(final);
      return final;
    })();
    this.running.set(executionId, { record, abort: run.abort, done });
    return { executionId, done };
  }

  describe(executionId: string): Promise<ExecutionRecord | undefined> {
    return this.store.describe(executionId);
  }

  history(executionId: string): Promise<ExecutionEvent[]> {
    return this.store.history(executionId);
  }

  list(filter: ExecutionFilter = {}): Promise<ExecutionRecord[]> {
    return this.store.list(filter);
  }

  async shutdown(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const slot of this.slots.values()) {
      for (const wake of slot.waiting.splice(0)) wake();
    }
    const pending = [...this.running.values()];
    if (pending.length === 0) return;
    const all = Promise.all(pending.map((r) => r.done));
    const timedOut = await Promise.race([
      all.then(() => false),
      this.options.clock.sleep(graceMs).then(() => true),
    ]);
    if (timedOut) {
      for (const r of this.running.values()) r.abort();
      await all;
    }
  }

  /** Marks executions left RUNNING by a process that died as ABORTED; returns them. */
  async abortOrphans(): Promise<ExecutionRecord[]> {
    const orphans: ExecutionRecord[] = [];
    for (const record of await this.list({ status: 'RUNNING', limit: Number.MAX_SAFE_INTEGER })) {
      if (this.running.has(record.executionId)) continue;
      const aborted: ExecutionRecord = {
        ...record,
        status: 'ABORTED',
        error: 'ExecutionAborted',
        cause: 'the process running this execution stopped before it finished',
        stoppedAt: this.options.clock.now().toISOString(),
      };
      await this.store.put(aborted);
      orphans.push(aborted);
    }
    return orphans;
  }

  /** Calls a function as Lambda would: `(event, context)`, with errors keeping their `name`. */
  private async invoke(fn: LocalFunction, event: JsonValue, executionId: string): Promise<JsonValue> {
    const started = this.options.clock.now().getTime();
    const timeoutMs = fn.definition.timeoutSeconds * 1000;
    try {
      return await fn.handler(event, {
        functionName: fn.definition.name,
        awsRequestId: randomUUID(),
        executionId,
        getRemainingTimeInMillis: () => Math.max(0, started + timeoutMs - this.options.clock.now().getTime()),
      });
    } catch (error) {
      // The error name is what ASL Retry/Catch match; the cause carries the whole chain of messages.
      const failure = new Error(describeError(error));
      failure.name = error instanceof Error ? error.name : 'Error';
      throw failure;
    }
  }

  private async alert(record: ExecutionRecord): Promise<void> {
    if (!this.options.notifier) return;
    await this.options.notifier.notify({
      severity: record.status === 'ABORTED' ? 'warning' : 'error',
      title: `${record.workflow} ${record.status === 'ABORTED' ? 'was aborted' : record.status === 'TIMED_OUT' ? 'timed out' : 'failed'}${record.failedState ? ` in state ${record.failedState}` : ''}`,
      pipeline: record.pipeline,
      workflow: record.workflow,
      executionId: record.executionId,
      ...(record.failedState ? { state: record.failedState } : {}),
      ...(record.error ? { error: record.error } : {}),
      ...(record.cause ? { cause: record.cause } : {}),
      at: record.stoppedAt ?? this.options.clock.now().toISOString(),
      details: { history: `sluice execution ${record.executionId}` },
    });
  }

  private async acquireSlot(workflow: WorkflowDefinition): Promise<void> {
    const slot = this.slots.get(workflow.name) ?? { active: 0, waiting: [] };
    this.slots.set(workflow.name, slot);
    const limit = workflow.maxConcurrency ?? Number.POSITIVE_INFINITY;
    while (slot.active >= limit && !this.stopping) {
      await new Promise<void>((resolve) => slot.waiting.push(resolve));
    }
    slot.active++;
  }

  private releaseSlot(workflow: WorkflowDefinition): void {
    const slot = this.slots.get(workflow.name);
    if (!slot) return;
    slot.active--;
    slot.waiting.shift()?.();
  }
}

function eventItem(executionId: string, seq: number, event: Omit<ExecutionEvent, 'seq'>): Item {
  // Stored as JSON text: history events hold arbitrary state input/output.
  return { execution_id: executionId, seq, event: JSON.stringify({ seq, ...event }) };
}

function toItem(record: ExecutionRecord): Item {
  return {
    execution_id: record.executionId,
    record: JSON.stringify(record),
    started_at: record.startedAt,
    status: record.status,
  };
}

function fromItem(item: Item): ExecutionRecord {
  return JSON.parse(String(item.record)) as ExecutionRecord;
}
