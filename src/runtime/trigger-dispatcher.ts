import { randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.ts';
import { ConditionFailedError, describeError, NotFoundError } from '../core/errors.ts';
import type { S3Event, S3EventRecord } from '../core/events.ts';
import { type Logger, silentLogger } from '../core/logger.ts';
import {
  allPages,
  type Condition,
  type Item,
  type KeySchema,
  type KvStore,
  type KvTable,
} from '../core/ports/kv-table.ts';
import { eventObjectKey, matchesTrigger, type TriggerDefinition } from '../core/trigger.ts';

/** Name of the key-value table holding one delivery record per (trigger, object version). */
export const DELIVERIES_TABLE = 'sluice_trigger_deliveries';

/**
 * Key schema of {@link DELIVERIES_TABLE}: hash key `trigger` (the trigger's name), range key
 * `object` (`<key>#<eTag>`, see {@link deliveryObjectId}).
 */
export const DELIVERIES_KEY_SCHEMA: KeySchema = {
  hashKey: { name: 'trigger', type: 'S' },
  rangeKey: { name: 'object', type: 'S' },
};

/**
 * Range key of the marker item recording that a trigger has been through a catch-up (its
 * existing objects were baselined or delivered). No object id starts with `#` (keys are non-empty).
 */
const CONFIGURED_MARKER = '#configured';

/** Default {@link TriggerDispatcherOptions.maxAttempts}: a delivery left `started` is restarted once. */
export const DEFAULT_MAX_ATTEMPTS = 2;

/**
 * State of a delivery:
 * - `baseline`: the object existed when the trigger was first configured; nothing was started
 *   (S3 notifies only objects created after the notification configuration);
 * - `started`: the workflow was started (or is being started) and has not reported an outcome;
 * - `succeeded` / `failed`: the outcome, from {@link TriggerDispatcher.complete}, or `failed`
 *   when starting the workflow failed (`error` says why; the event is kept for a redelivery).
 */
export type DeliveryStatus = 'baseline' | 'started' | 'succeeded' | 'failed';

/** One item of {@link DELIVERIES_TABLE}: the delivery of one object version to one trigger. */
export interface DeliveryRecord {
  /** The trigger's name (hash key). */
  readonly trigger: string;
  /** `<key>#<eTag>` (range key). */
  readonly object: string;
  readonly status: DeliveryStatus;
  /** Id returned by the `start` function (e.g. an execution ARN), once known; `null` before. */
  readonly execution_id: string | null;
  /** The decoded object key. */
  readonly key: string;
  readonly etag: string;
  /** The event's sequencer. */
  readonly sequencer: string;
  /** ISO-8601 UTC time of the (latest) delivery attempt. */
  readonly delivered_at: string;
  /** How many times the workflow was started for this delivery (0 for `baseline`). */
  readonly attempts: number;
  /** Id of the {@link TriggerDispatcher} instance that made the latest attempt. */
  readonly dispatcher: string;
  /** The event delivered, kept so a delivery can be started again without the source. */
  readonly event: S3EventRecord;
  /** Why starting or running the workflow failed (status `failed`). */
  readonly error?: string;
  /** ISO-8601 UTC time the outcome was recorded. */
  readonly completed_at?: string;
}

/**
 * What happened to one event for one matching trigger:
 * - `started`: first delivery, the workflow was started;
 * - `restarted`: a recorded delivery was started again ({@link TriggerDispatcher.redeliver},
 *   or a catch-up after a crash);
 * - `duplicate`: already delivered (same trigger, key and eTag), nothing started;
 * - `baseline`: recorded as pre-existing during a baseline catch-up, nothing started;
 * - `failed`: the workflow could not be started (recorded as `failed`), or the delivery could
 *   not be recorded (nothing started; a later catch-up delivers it);
 * - `abandoned`: left `started` by crashes `maxAttempts` times; recorded as `failed`, not restarted.
 */
export type DeliveryOutcome = 'started' | 'restarted' | 'duplicate' | 'baseline' | 'failed' | 'abandoned';

/** Result of handling one event for one trigger; also passed to {@link TriggerDispatcherOptions.onDelivery}. */
export interface Delivery {
  readonly trigger: string;
  /** The decoded object key. */
  readonly key: string;
  readonly etag: string;
  readonly outcome: DeliveryOutcome;
  /** The id the `start` function returned, when it returned one. */
  readonly executionId?: string;
  /** Why the delivery failed (`failed`, `abandoned`). */
  readonly error?: string;
  /** When the dispatcher received the event (its clock). */
  readonly receivedAt: Date;
  /**
   * `receivedAt` minus the event's `eventTime`, in ms: for the lake watcher the time from the
   * file's last change to its dispatch (includes the watcher's `stabilityMs`); for the object
   * store's events about 0; for catch-up records, the object's age.
   */
  readonly latencyMs: number;
}

/** Counts of a {@link TriggerDispatcher.catchUp}, by outcome. */
export interface CatchUpSummary {
  /** Records read from the scan. */
  objects: number;
  /** Triggers baselined by this catch-up (all with `baseline: true`, else the never-configured ones). */
  baselinedTriggers: string[];
  /** Deliveries per {@link DeliveryOutcome} (one per matching trigger of each object, plus restarts). */
  baseline: number;
  started: number;
  restarted: number;
  duplicate: number;
  failed: number;
  abandoned: number;
}

/** Anything that emits object-created events: the object store, the lake watcher. */
export interface ObjectEventSource {
  onObjectCreated(listener: (record: S3EventRecord) => void): () => void;
}

/** Options of {@link TriggerDispatcher}. */
export interface TriggerDispatcherOptions {
  /** Holds {@link DELIVERIES_TABLE} (local: SQLite; AWS: DynamoDB). */
  kv: KvStore;
  /** The triggers to match events against; names must be unique. */
  triggers: TriggerDefinition[];
  /**
   * Starts the trigger's workflow with the S3 event (`{ Records: [record] }`); resolves with an
   * execution id when there is one. A rejection is recorded as a `failed` delivery.
   */
  start: (trigger: TriggerDefinition, event: S3Event) => Promise<string | undefined>;
  /** Stamps `delivered_at`, `completed_at` and {@link Delivery.receivedAt}. */
  clock: Clock;
  /** Receives failures (start errors, table errors, abandoned deliveries). Default: silent. */
  logger?: Logger;
  /**
   * How many times in all a delivery is started when each attempt is left `started` by a crash
   * (default 2: restarted once); then it is recorded as `failed`, so an object that crashes
   * sluice does not crash it at every start.
   */
  maxAttempts?: number;
  /**
   * Called with every {@link Delivery} (e.g. by a benchmark, for {@link Delivery.latencyMs}),
   * except for the objects a catch-up finds already delivered (only counted). Exceptions are logged.
   */
  onDelivery?: (delivery: Delivery) => void;
}

/** The range key of a delivery: `<decoded key>#<eTag>` (an eTag holds no `#`). */
export function deliveryObjectId(key: string, etag: string): string {
  return `${key}#${etag}`;
}

/**
 * Starts workflows for object-created events, as S3 event notifications to Step Functions do,
 * exactly once per (trigger, object key, eTag), across event sources and restarts.
 *
 * Events come from any number of sources ({@link attach}: the object store's own events and the
 * lake watcher, which report the same writes; or {@link dispatch} directly). Like S3 they are
 * delivered at least once, so each one is deduplicated: for each trigger it matches
 * ({@link matchesTrigger}: layer = bucket, key prefix and suffix), a delivery record is written to
 * {@link DELIVERIES_TABLE} with a `not_exists` condition BEFORE the workflow is started; only the
 * writer that creates the record starts it. Two sources racing on the same object, a second
 * process on the same database, or a restart all find the record and start nothing.
 *
 * A crash between recording and finishing leaves the delivery `started`: {@link catchUp} starts it
 * again once (at least once; {@link TriggerDispatcherOptions.maxAttempts}). A failing start is
 * recorded as `failed` with its error and the event, so it is not lost ({@link redeliver}).
 *
 * Mirrors S3: objects that exist when a trigger is configured are not notified; {@link catchUp}
 * records them as `baseline` instead.
 */
export class TriggerDispatcher {
  /** Id of this instance, recorded in the deliveries it makes (`dispatcher`). */
  readonly id = randomUUID();
  private readonly kv: KvStore;
  private readonly triggers: readonly TriggerDefinition[];
  private readonly byName: Map<string, TriggerDefinition>;
  private readonly startWorkflow: TriggerDispatcherOptions['start'];
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly maxAttempts: number;
  private readonly onDelivery: ((delivery: Delivery) => void) | undefined;
  private readonly pending = new Set<Promise<unknown>>();
  private tablePromise: Promise<KvTable> | undefined;

  /** @throws {Error} on duplicate trigger names or a `maxAttempts` that is not a positive integer. */
  constructor(options: TriggerDispatcherOptions) {
    this.kv = options.kv;
    this.triggers = [...options.triggers];
    this.byName = new Map();
    for (const trigger of this.triggers) {
      if (this.byName.has(trigger.name)) throw new Error(`duplicate trigger name "${trigger.name}"`);
      this.byName.set(trigger.name, trigger);
    }
    this.startWorkflow = options.start;
    this.clock = options.clock;
    this.logger = (options.logger ?? silentLogger).child({ component: 'trigger-dispatcher' });
    this.maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) {
      throw new Error(`trigger dispatcher: maxAttempts must be a positive integer, got ${this.maxAttempts}`);
    }
    this.onDelivery = options.onDelivery;
  }

  /**
   * Dispatches every event `source` emits (in the background; see {@link idle}); returns the
   * function that detaches it. Never throws into the source.
   */
  attach(source: ObjectEventSource): () => void {
    return source.onObjectCreated((record) => {
      const work = this.dispatch(record).catch((error: unknown) => {
        this.logger.error({ error: describeError(error) }, 'dispatching an object-created event failed');
      });
      this.pending.add(work);
      void work.finally(() => this.pending.delete(work));
    });
  }

  /** Resolves when every event received through {@link attach} so far has been handled. */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /**
   * Handles one event: for each matching trigger, records the delivery (conditional on none
   * existing) and starts the workflow, or reports a `duplicate`. Never rejects: failures are
   * logged and reported as `failed` deliveries.
   * @returns one {@link Delivery} per matching trigger (none when no trigger matches).
   */
  async dispatch(record: S3EventRecord): Promise<Delivery[]> {
    const receivedAt = this.clock.now();
    const matching = this.triggers.filter((trigger) => matchesTrigger(trigger, record));
    return Promise.all(matching.map((trigger) => this.deliver(trigger, record, receivedAt)));
  }

  /**
   * Records the outcome of a delivery's workflow execution (status `succeeded` or `failed`,
   * the execution id when given, `error` when given, `completed_at`).
   * @param key the decoded object key.
   * @throws {NotFoundError} when no delivery of that object version to that trigger is recorded.
   * @throws {Error} when the table fails.
   */
  async complete(
    trigger: string | TriggerDefinition,
    key: string,
    etag: string,
    status: 'succeeded' | 'failed',
    executionId: string | undefined,
    error?: string,
  ): Promise<void> {
    const name = typeof trigger === 'string' ? trigger : trigger.name;
    const table = await this.table();
    for (let attempt = 1; ; attempt++) {
      const current = await this.read(name, key, etag);
      if (!current) {
        throw new NotFoundError(`no delivery of ${key} (eTag ${etag}) to trigger "${name}" is recorded`);
      }
      const { error: _previousError, ...rest } = current;
      const next: DeliveryRecord = {
        ...rest,
        status,
        execution_id: executionId ?? current.execution_id,
        completed_at: this.clock.now().toISOString(),
        ...(error === undefined ? {} : { error }),
      };
      try {
        await table.put(toItem(next), { condition: unchanged(current) });
        return;
      } catch (failure) {
        // Changed between read and write (an execution id recorded, a redelivery): read again.
        if (!(failure instanceof ConditionFailedError) || attempt >= 5) throw failure;
      }
    }
  }

  /**
   * Starts a recorded delivery's workflow again with its stored event, whatever its status
   * (e.g. after a `failed` start), counting one more attempt.
   * @param key the decoded object key.
   * @returns the delivery (`restarted`, `failed`, or `duplicate` when another dispatcher
   *   redelivered it at the same time).
   * @throws {NotFoundError} when no such delivery is recorded; {@link Error} when the trigger is
   *   not one of this dispatcher's.
   */
  async redeliver(trigger: string, key: string, etag: string): Promise<Delivery> {
    const current = await this.read(trigger, key, etag);
    if (!current) {
      throw new NotFoundError(`no delivery of ${key} (eTag ${etag}) to trigger "${trigger}" is recorded`);
    }
    return this.restart(current);
  }

  /**
   * Deliveries left `started` by another dispatcher instance (a crashed or stopped process)
   * that {@link catchUp} will start again: fewer than `maxAttempts` attempts so far. Reads every
   * delivery of every trigger (one query per trigger).
   */
  async redeliverable(): Promise<DeliveryRecord[]> {
    return (await this.leftStarted()).filter((d) => d.attempts < this.maxAttempts);
  }

  /**
   * Catch-up at start, for the objects created while nothing was listening. `scan` must list the
   * existing objects of every trigger's layer and prefix (e.g. `LocalObjectWatcher.scan`).
   *
   * - For triggers being baselined (all when `baseline` is true, meant for the first start of a
   *   fresh home; otherwise those that never went through a catch-up, i.e. newly declared):
   *   every existing matching object is recorded as `baseline` and nothing is started (S3
   *   notifies only objects created after the notification configuration).
   * - For the others: every matching object without a delivery record is delivered (started).
   * - Then, unless `baseline`, deliveries left `started` by another instance (a crash: their
   *   execution never finished) are started once more with their stored event
   *   ({@link redeliverable}); those that already had `maxAttempts` attempts are recorded as
   *   `failed` (`abandoned`) instead.
   *
   * Call it while no other dispatcher serves the same triggers (at start, holding the lease):
   * another live instance's `started` deliveries look crashed. Watching may already run: events
   * and the scan deduplicate against each other.
   * @throws {Error} when the scan or the table fails (what was recorded stays recorded; calling
   *   again resumes).
   */
  async catchUp(scan: AsyncIterable<S3EventRecord>, options: { baseline: boolean }): Promise<CatchUpSummary> {
    const table = await this.table();
    const baselined = new Set<string>();
    for (const trigger of this.triggers) {
      if (options.baseline || !(await table.get({ trigger: trigger.name, object: CONFIGURED_MARKER }))) {
        baselined.add(trigger.name);
      }
    }
    const summary: CatchUpSummary = {
      objects: 0,
      baselinedTriggers: [...baselined],
      baseline: 0,
      started: 0,
      restarted: 0,
      duplicate: 0,
      failed: 0,
      abandoned: 0,
    };
    for await (const record of scan) {
      summary.objects++;
      const receivedAt = this.clock.now();
      for (const trigger of this.triggers) {
        if (!matchesTrigger(trigger, record)) continue;
        // Most objects are known at a restart: a read is cheaper than a refused conditional write.
        if (await this.read(trigger.name, eventObjectKey(record), record.s3.object.eTag)) {
          summary.duplicate++;
          continue;
        }
        const delivery = baselined.has(trigger.name)
          ? await this.recordBaseline(trigger, record, receivedAt)
          : await this.deliver(trigger, record, receivedAt);
        summary[delivery.outcome]++;
      }
    }
    for (const name of baselined) {
      await table.put({
        trigger: name,
        object: CONFIGURED_MARKER,
        configured_at: this.clock.now().toISOString(),
      });
    }
    if (!options.baseline) {
      for (const left of await this.leftStarted()) {
        const delivery =
          left.attempts >= this.maxAttempts ? await this.abandon(left) : await this.restart(left);
        summary[delivery.outcome]++;
      }
    }
    if (baselined.size > 0) {
      this.logger.info(
        { triggers: summary.baselinedTriggers, objects: summary.baseline },
        'recorded existing objects as baseline; they start nothing',
      );
    }
    return summary;
  }

  private table(): Promise<KvTable> {
    this.tablePromise ??= this.kv.table(DELIVERIES_TABLE, DELIVERIES_KEY_SCHEMA);
    return this.tablePromise;
  }

  private async read(trigger: string, key: string, etag: string): Promise<DeliveryRecord | undefined> {
    const item = await (await this.table()).get({ trigger, object: deliveryObjectId(key, etag) });
    return item && fromItem(item);
  }

  /** Every delivery of the current triggers left `started` by another instance. */
  private async leftStarted(): Promise<DeliveryRecord[]> {
    const table = await this.table();
    const found: DeliveryRecord[] = [];
    for (const trigger of this.triggers) {
      for await (const item of allPages((cursor) =>
        table.query(trigger.name, cursor === undefined ? {} : { cursor }),
      )) {
        if (item.object === CONFIGURED_MARKER || item.status !== 'started') continue;
        const delivery = fromItem(item);
        if (delivery.dispatcher !== this.id) found.push(delivery);
      }
    }
    return found;
  }

  /** A new delivery record of `record` to `trigger`: `started` counts its first attempt, `baseline` none. */
  private newDelivery(
    trigger: TriggerDefinition,
    record: S3EventRecord,
    receivedAt: Date,
    status: 'started' | 'baseline',
  ): DeliveryRecord {
    const key = eventObjectKey(record);
    const etag = record.s3.object.eTag;
    return {
      trigger: trigger.name,
      object: deliveryObjectId(key, etag),
      status,
      execution_id: null,
      key,
      etag,
      sequencer: record.s3.object.sequencer,
      delivered_at: receivedAt.toISOString(),
      attempts: status === 'started' ? 1 : 0,
      dispatcher: this.id,
      event: record,
    };
  }

  /** First delivery of `record` to `trigger`: record it (if new), then start the workflow. */
  private async deliver(
    trigger: TriggerDefinition,
    record: S3EventRecord,
    receivedAt: Date,
  ): Promise<Delivery> {
    const delivery = this.newDelivery(trigger, record, receivedAt, 'started');
    const { key, etag } = delivery;
    try {
      await (await this.table()).put(toItem(delivery), { condition: { op: 'not_exists' } });
    } catch (error) {
      if (error instanceof ConditionFailedError) return this.report(delivery, receivedAt, 'duplicate');
      const message = describeError(error);
      this.logger.error(
        { trigger: trigger.name, key, etag, error: message },
        'could not record a trigger delivery; nothing started (a later catch-up delivers it)',
      );
      return this.report(delivery, receivedAt, 'failed', { error: message });
    }
    return this.run(trigger, delivery, receivedAt, 'started');
  }

  /** Records `record` as pre-existing for `trigger` (unless a delivery exists); starts nothing. */
  private async recordBaseline(
    trigger: TriggerDefinition,
    record: S3EventRecord,
    receivedAt: Date,
  ): Promise<Delivery> {
    const delivery = this.newDelivery(trigger, record, receivedAt, 'baseline');
    try {
      await (await this.table()).put(toItem(delivery), { condition: { op: 'not_exists' } });
    } catch (error) {
      if (error instanceof ConditionFailedError) return this.report(delivery, receivedAt, 'duplicate');
      throw error;
    }
    return this.report(delivery, receivedAt, 'baseline');
  }

  /** Takes over a recorded delivery (one more attempt, conditional on it being unchanged) and starts it. */
  private async restart(current: DeliveryRecord): Promise<Delivery> {
    const receivedAt = this.clock.now();
    const trigger = this.byName.get(current.trigger);
    if (!trigger) throw new Error(`trigger "${current.trigger}" is not one of this dispatcher's triggers`);
    const { error: _error, completed_at: _completedAt, ...rest } = current;
    const next: DeliveryRecord = {
      ...rest,
      status: 'started',
      execution_id: null,
      delivered_at: receivedAt.toISOString(),
      attempts: current.attempts + 1,
      dispatcher: this.id,
    };
    try {
      await (await this.table()).put(toItem(next), { condition: unchanged(current) });
    } catch (error) {
      if (error instanceof ConditionFailedError) return this.report(current, receivedAt, 'duplicate');
      throw error;
    }
    this.logger.warn(
      { trigger: current.trigger, key: current.key, etag: current.etag, attempt: next.attempts },
      'starting a trigger delivery again',
    );
    return this.run(trigger, next, receivedAt, 'restarted');
  }

  /** Records a delivery that crashed `maxAttempts` times as `failed`, without starting it. */
  private async abandon(current: DeliveryRecord): Promise<Delivery> {
    const receivedAt = this.clock.now();
    const error = `the execution did not finish in ${current.attempts} attempts (sluice stopped during each); not restarted`;
    const next: DeliveryRecord = {
      ...current,
      status: 'failed',
      error,
      completed_at: receivedAt.toISOString(),
    };
    try {
      await (await this.table()).put(toItem(next), { condition: unchanged(current) });
    } catch (failure) {
      if (failure instanceof ConditionFailedError) return this.report(current, receivedAt, 'duplicate');
      throw failure;
    }
    this.logger.error(
      { trigger: current.trigger, key: current.key, etag: current.etag, attempts: current.attempts },
      'abandoned a trigger delivery',
    );
    return this.report(next, receivedAt, 'abandoned', { error });
  }

  /**
   * Starts the workflow of a delivery recorded as `started` by this instance, then records the
   * execution id, or `failed` with the error when the start rejects.
   */
  private async run(
    trigger: TriggerDefinition,
    delivery: DeliveryRecord,
    receivedAt: Date,
    outcome: 'started' | 'restarted',
  ): Promise<Delivery> {
    let executionId: string | undefined;
    try {
      executionId = await this.startWorkflow(trigger, { Records: [structuredClone(delivery.event)] });
    } catch (error) {
      const message = describeError(error);
      this.logger.error(
        {
          trigger: trigger.name,
          key: delivery.key,
          etag: delivery.etag,
          attempt: delivery.attempts,
          error: message,
        },
        'could not start the workflow of an object-created trigger; recorded as failed',
      );
      await this.update(delivery, {
        ...delivery,
        status: 'failed',
        error: message,
        completed_at: this.clock.now().toISOString(),
      });
      return this.report(delivery, receivedAt, 'failed', { error: message });
    }
    if (executionId !== undefined) await this.update(delivery, { ...delivery, execution_id: executionId });
    return this.report(delivery, receivedAt, outcome, executionId === undefined ? {} : { executionId });
  }

  /**
   * Replaces this instance's `started` delivery `current` with `next`, unless it changed meanwhile
   * (an outcome recorded by {@link complete}, a takeover). A table failure is logged, not thrown:
   * the delivery stays `started` and a later catch-up starts it again.
   */
  private async update(current: DeliveryRecord, next: DeliveryRecord): Promise<void> {
    try {
      await (await this.table()).put(toItem(next), { condition: unchanged(current) });
    } catch (error) {
      if (error instanceof ConditionFailedError) return;
      this.logger.error(
        { trigger: current.trigger, key: current.key, etag: current.etag, error: describeError(error) },
        'could not update a trigger delivery',
      );
    }
  }

  private report(
    delivery: DeliveryRecord,
    receivedAt: Date,
    outcome: DeliveryOutcome,
    extra: { executionId?: string; error?: string } = {},
  ): Delivery {
    const result: Delivery = {
      trigger: delivery.trigger,
      key: delivery.key,
      etag: delivery.etag,
      outcome,
      ...extra,
      receivedAt,
      latencyMs: receivedAt.getTime() - Date.parse(delivery.event.eventTime),
    };
    if (this.onDelivery) {
      try {
        this.onDelivery(result);
      } catch (error) {
        this.logger.warn({ error: describeError(error) }, 'onDelivery callback failed');
      }
    }
    return result;
  }
}

/** A condition that holds when the stored delivery is still `current` (status, attempts, execution, instance). */
function unchanged(current: DeliveryRecord): Condition {
  return {
    op: 'and',
    conditions: [
      { op: 'eq', attribute: 'status', value: current.status },
      { op: 'eq', attribute: 'attempts', value: current.attempts },
      { op: 'eq', attribute: 'execution_id', value: current.execution_id },
      { op: 'eq', attribute: 'dispatcher', value: current.dispatcher },
    ],
  };
}

function toItem(delivery: DeliveryRecord): Item {
  return delivery as unknown as Item;
}

/** @throws {Error} when a stored item is not a delivery (a foreign or corrupted table). */
function fromItem(item: Item): DeliveryRecord {
  const ok =
    typeof item.trigger === 'string' &&
    typeof item.object === 'string' &&
    typeof item.status === 'string' &&
    typeof item.key === 'string' &&
    typeof item.etag === 'string' &&
    typeof item.attempts === 'number' &&
    typeof item.event === 'object' &&
    item.event !== null;
  if (!ok) throw new Error(`malformed item in ${DELIVERIES_TABLE}: ${JSON.stringify(item).slice(0, 200)}`);
  return item as unknown as DeliveryRecord;
}
