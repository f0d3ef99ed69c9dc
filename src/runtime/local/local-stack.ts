import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import os from 'node:os';
import type { LocalObjectStore } from '../../backends/local/local-object-store.ts';
import { LocalObjectWatcher } from '../../backends/local/local-object-watcher.ts';
import { type LocalFunction, LocalWorkflowRunner } from '../../backends/local/local-workflow-runner.ts';
import { ConfigStore } from '../../core/config.ts';
import type { PipelineContext } from '../../core/context.ts';
import { describeError } from '../../core/errors.ts';
import type { S3EventRecord } from '../../core/events.ts';
import type { Layer } from '../../core/layer.ts';
import { Lease } from '../../core/lease.ts';
import type { ConfigReader, PipelineModule } from '../../core/pipeline.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import type { Notifier } from '../../core/ports/notifier.ts';
import type { ExecutionRecord } from '../../core/ports/workflow-runner.ts';
import type { ScheduleDefinition } from '../../core/schedule.ts';
import { eventObjectKey, type TriggerDefinition } from '../../core/trigger.ts';
import { type Delivery, TriggerDispatcher } from '../trigger-dispatcher.ts';
import { LocalScheduler } from './local-scheduler.ts';

/** Lease held by the running `sluice up` of a home. */
export const STACK_LEASE = 'sluice-up';

/** Options of {@link LocalStack.start}. */
export interface LocalStackOptions {
  /** The local backend and its services. */
  readonly ctx: PipelineContext;
  /** The lake directory (`<home>/lake`), watched for files copied in by hand. */
  readonly lakeRoot: string;
  readonly modules: readonly PipelineModule[];
  readonly notifier: Notifier;
  /** File watching for objects that arrive outside sluice; `false` relies on sluice's own writes only. */
  readonly watch?: { readonly stabilityMs?: number; readonly pollMs?: number } | false;
  /** Test overrides: every ASL Retry interval and Wait duration, in ms. */
  readonly retryIntervalMs?: number;
  readonly waitMs?: number;
  /** How often running code polls the `config` change stream, in ms (default 1,000). */
  readonly configPollMs?: number;
  /** Observers, e.g. the CLI's live output or a benchmark. */
  readonly onExecutionStarted?: (executionId: string, workflow: string, source: string) => void;
  readonly onExecutionFinished?: (record: ExecutionRecord) => void;
  readonly onDelivery?: (delivery: Delivery) => void;
}

/**
 * The local equivalent of a deployed stack being live, as `sluice up` runs it: every pipeline's
 * functions and ASL workflows (LocalWorkflowRunner), its schedules (LocalScheduler: EventBridge
 * Scheduler), its object-created triggers (TriggerDispatcher fed by the object store's own events
 * and by a watcher of the lake for files copied in by hand: S3 event notifications), and live
 * configuration from the `config` table's change stream.
 *
 * Start-up marks executions a crashed process left RUNNING as ABORTED and catches up on objects
 * created while nothing ran (a trigger's first start records existing objects without starting
 * work, as S3 notifies only new objects). {@link stop} stops schedules and triggers, lets running
 * executions finish within the grace period and records the rest ABORTED: nothing is half-committed,
 * because every step commits by rename and moves bookmarks last.
 */
export class LocalStack {
  private constructor(
    readonly runner: LocalWorkflowRunner,
    readonly dispatcher: TriggerDispatcher,
    readonly scheduler: LocalScheduler,
    private readonly watcher: LocalObjectWatcher | undefined,
    private readonly controller: AbortController,
    private readonly background: Promise<unknown>[],
    private readonly unsubscribe: (() => void)[],
    private readonly lease: Lease,
  ) {}

  /**
   * Builds and starts everything.
   * @throws {LeaseHeldError} when another `sluice up` runs on this home.
   * @throws {Error} when a pipeline lacks a handler for one of its functions, a workflow is invalid,
   *   or a schedule expression is malformed (nothing is left running then).
   */
  static async start(options: LocalStackOptions): Promise<LocalStack> {
    const { ctx, modules } = options;
    const { kv } = ctx.backend;
    const controller = new AbortController();
    // One listener per pipeline's config follower, schedule and trigger: more than Node's default 10.
    setMaxListeners(100, controller.signal);
    const background: Promise<unknown>[] = [];
    let watcher: LocalObjectWatcher | undefined;
    // One stack per home: orphan detection and trigger catch-up assume nobody else runs workflows here.
    const lease = await Lease.acquire(
      kv,
      STACK_LEASE,
      { id: `up-${process.pid}-${randomBytes(3).toString('hex')}`, host: os.hostname(), pid: process.pid },
      { clock: ctx.clock, isAlive: ctx.backend.isAlive },
    );
    try {
      // Configuration: live per pipeline, over the definition's defaults.
      const configStore = await ConfigStore.open(kv, ctx.clock);
      const functions: Record<string, LocalFunction> = {};
      for (const module of modules) {
        const definition = module.definition;
        const live = await configStore.watch(definition.name, {
          signal: controller.signal,
          pollMs: options.configPollMs ?? 1000,
          onChange: (change) =>
            ctx.logger.info(
              { pipeline: definition.name, key: change.key, value: change.newValue },
              'configuration changed',
            ),
        });
        background.push(live.stopped);
        const config: ConfigReader = {
          get: (key: string): JsonValue | undefined => live.get(key) ?? definition.config?.[key]?.default,
        };
        const handlers = module.handlers({ ctx, config, notifier: options.notifier });
        for (const fn of definition.functions ?? []) {
          const handler = handlers[fn.name];
          if (!handler)
            throw new Error(
              `pipeline ${definition.name} declares function ${fn.name} but has no handler for it`,
            );
          functions[fn.name] = { definition: fn, handler };
        }
      }

      const workflows = modules.flatMap((m) => m.definition.workflows ?? []);
      const runner = await LocalWorkflowRunner.open({
        kv,
        clock: ctx.clock,
        workflows,
        functions,
        notifier: options.notifier,
        logger: ctx.logger,
        ...(options.retryIntervalMs !== undefined ? { retryIntervalMs: options.retryIntervalMs } : {}),
        ...(options.waitMs !== undefined ? { waitMs: options.waitMs } : {}),
        ...(options.onExecutionFinished ? { onFinished: options.onExecutionFinished } : {}),
      });
      const orphans = await runner.abortOrphans();
      for (const orphan of orphans) {
        ctx.logger.warn(
          { executionId: orphan.executionId },
          'marked an execution of a stopped process as aborted',
        );
      }

      // Triggers: S3-shaped events from sluice's writes and from the lake watcher, deduplicated.
      const triggers: TriggerDefinition[] = modules.flatMap((m) => [...(m.definition.triggers ?? [])]);
      const dispatcher = new TriggerDispatcher({
        kv,
        triggers,
        clock: ctx.clock,
        logger: ctx.logger,
        ...(options.onDelivery ? { onDelivery: options.onDelivery } : {}),
        start: async (trigger, event) => {
          const record = event.Records[0] as S3EventRecord;
          const key = eventObjectKey(record);
          const handle = await runner.start(trigger.workflow, event as unknown as JsonValue, {
            source: { kind: 'object-created', name: trigger.name, detail: key },
          });
          options.onExecutionStarted?.(handle.executionId, trigger.workflow, `${trigger.name} ${key}`);
          void handle.done.then((final) =>
            dispatcher
              .complete(
                trigger,
                key,
                record.s3.object.eTag,
                final.status === 'SUCCEEDED' ? 'succeeded' : 'failed',
                final.executionId,
                final.error ? `${final.error}: ${final.cause ?? ''}` : undefined,
              )
              .catch((error: unknown) =>
                ctx.logger.error({ err: describeError(error) }, 'could not record a delivery'),
              ),
          );
          return handle.executionId;
        },
      });
      const scheduler = new LocalScheduler({
        kv,
        clock: ctx.clock,
        schedules: modules.flatMap((m) => [...(m.definition.schedules ?? [])]),
        logger: ctx.logger,
        fire: async (schedule: ScheduleDefinition, time: Date, late: boolean) => {
          const handle = await runner.start(
            schedule.workflow,
            {
              ...(schedule.input as Record<string, JsonValue> | undefined),
              scheduledTime: time.toISOString(),
            },
            {
              source: {
                kind: 'schedule',
                name: schedule.name,
                detail: `${time.toISOString()}${late ? ' (missed)' : ''}`,
              },
            },
          );
          options.onExecutionStarted?.(
            handle.executionId,
            schedule.workflow,
            `${schedule.name} ${time.toISOString()}`,
          );
        },
      });
      const unsubscribe = [dispatcher.attach(ctx.backend.objectStore)];
      const layers = [...new Set(triggers.map((t) => t.layer))];
      if (options.watch !== false && layers.length > 0) {
        watcher = new LocalObjectWatcher({
          lakeRoot: options.lakeRoot,
          layers,
          logger: ctx.logger,
          ...(options.watch?.stabilityMs !== undefined ? { stabilityMs: options.watch.stabilityMs } : {}),
          ...(options.watch?.pollMs !== undefined ? { pollMs: options.watch.pollMs } : {}),
        });
        await watcher.start();
        unsubscribe.push(dispatcher.attach(watcher));
      }
      const stack = new LocalStack(
        runner,
        dispatcher,
        scheduler,
        watcher,
        controller,
        background,
        unsubscribe,
        lease,
      );

      // Objects created while nothing ran; a trigger seen for the first time baselines instead.
      const summary = await dispatcher.catchUp(
        existingObjects(ctx.backend.objectStore as LocalObjectStore, watcher, triggers),
        {
          baseline: false,
        },
      );
      ctx.logger.info({ ...summary }, 'trigger catch-up');

      background.push(stack.scheduler.run(controller.signal));
      return stack;
    } catch (error) {
      controller.abort();
      await watcher?.close();
      await lease.release();
      throw error;
    }
  }

  /**
   * Stops schedules, triggers and configuration watching; running executions get `graceMs` to
   * finish, then are aborted and recorded ABORTED.
   */
  async stop(graceMs: number): Promise<void> {
    this.controller.abort();
    for (const off of this.unsubscribe.splice(0)) off();
    await this.watcher?.close();
    await this.runner.shutdown(graceMs);
    await this.dispatcher.idle();
    await Promise.allSettled(this.background);
    await this.lease.release();
  }
}

/** S3-shaped records of the objects under every trigger's layer and prefix. */
async function* existingObjects(
  objectStore: LocalObjectStore,
  watcher: LocalObjectWatcher | undefined,
  triggers: readonly TriggerDefinition[],
): AsyncGenerator<S3EventRecord> {
  const seen = new Set<string>();
  for (const trigger of triggers) {
    const scope = `${trigger.layer}/${trigger.prefix}`;
    if (seen.has(scope)) continue;
    seen.add(scope);
    if (watcher) {
      yield* watcher.scan(trigger.layer as Layer, trigger.prefix);
    } else {
      const scanner = new LocalObjectWatcher({ lakeRoot: objectStore.root, layers: [trigger.layer] });
      yield* scanner.scan(trigger.layer, trigger.prefix);
    }
  }
}
