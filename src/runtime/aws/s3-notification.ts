import type { S3Event as LambdaS3Event, S3EventRecord as LambdaS3EventRecord } from 'aws-lambda';
import { layerOfBucket } from '../../backends/aws/config.ts';
import type { S3EventRecord } from '../../core/events.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import { eventObjectKey } from '../../core/trigger.ts';
import {
  DELIVERIES_KEY_SCHEMA,
  DELIVERIES_TABLE,
  type Delivery,
  deliveryObjectId,
  TriggerDispatcher,
} from '../trigger-dispatcher.ts';
import type { AwsRuntime } from './runtime.ts';

/** What {@link handleS3Event} did with each record; also the Lambda's return value (logged by Lambda). */
export interface S3HandlerResult {
  /** One per (record, matching trigger); a record no trigger matches has none. */
  readonly deliveries: readonly Delivery[];
  /** Records of buckets that are none of the four layers' (a misconfigured notification). */
  readonly ignored: readonly { readonly bucket: string; readonly key: string }[];
}

/** Thrown when a workflow could not be started, so Lambda retries the asynchronous invocation. */
export class TriggerStartError extends Error {
  override readonly name = 'TriggerStartError';
}

const dispatchers = new WeakMap<
  AwsRuntime,
  { dispatcher: TriggerDispatcher; originals: Map<string, LambdaS3EventRecord> }
>();

/**
 * An S3 event notification delivered to Lambda
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html):
 * for each record, the bucket is mapped to its layer ({@link layerOfBucket}), the key decoded
 * (URL-encoded, `+` for spaces), and every trigger of the pipeline that matches (layer, prefix,
 * suffix: `matchesTrigger` of src/core/trigger.ts) starts its workflow through the runner (Step
 * Functions `StartExecution`) with `{ Records: [record] }`, the record exactly as S3 sent it
 * (real bucket name; pipelines read the key with `eventObjectKey` and know their layer).
 *
 * S3 delivers at least once, so this is the same {@link TriggerDispatcher} `sluice up` uses
 * (src/runtime/trigger-dispatcher.ts: backend-neutral, it only uses the key-value port): a
 * delivery record `(trigger, "<key>#<eTag>")` is written to the `sluice_trigger_deliveries` table
 * (DynamoDB, `<tablePrefix>sluice_trigger_deliveries`, hash `trigger` S, range `object` S) with an
 * `attribute_not_exists` condition before the workflow starts; a redelivered event finds it and
 * starts nothing (`duplicate`).
 *
 * A failed start is recorded `failed` and this handler then throws {@link TriggerStartError} after
 * handling every record, so Lambda retries the asynchronous invocation (twice by default,
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html); on that
 * retry a delivery recorded `failed` is started again (`restarted`), one recorded `started` or
 * later is not. Known gap: a container killed between recording and StartExecution leaves the
 * delivery `started` with no execution; `sluice`'s redelivery (`TriggerDispatcher.redeliver`)
 * starts it by hand.
 * @throws {TriggerStartError} when a workflow could not be started or its delivery not recorded.
 */
export async function handleS3Event(runtime: AwsRuntime, event: LambdaS3Event): Promise<S3HandlerResult> {
  const { dispatcher, originals } = dispatcherOf(runtime);
  const logger = runtime.ctx.logger.child({ handler: 's3' });
  const deliveries: Delivery[] = [];
  const ignored: { bucket: string; key: string }[] = [];
  for (const record of event.Records ?? []) {
    const bucket = record.s3.bucket.name;
    const layer = layerOfBucket(runtime.config, bucket);
    if (layer === undefined) {
      ignored.push({ bucket, key: record.s3.object.key });
      logger.warn(
        { bucket, key: record.s3.object.key },
        'object-created event of a bucket that is no layer; ignored',
      );
      continue;
    }
    // The core matches triggers on layers; the bucket becomes its layer for matching only.
    const asLayer = { ...record, s3: { ...record.s3, bucket: { ...record.s3.bucket, name: layer } } };
    const local = asLayer as unknown as S3EventRecord;
    originals.set(deliveryObjectId(eventObjectKey(local), record.s3.object.eTag), record);
    try {
      for (const delivery of await dispatcher.dispatch(local)) {
        deliveries.push(
          delivery.outcome === 'duplicate' ? await retryFailed(runtime, dispatcher, delivery) : delivery,
        );
      }
    } finally {
      originals.delete(deliveryObjectId(eventObjectKey(local), record.s3.object.eTag));
    }
  }
  for (const d of deliveries) {
    logger.info(
      { trigger: d.trigger, key: d.key, etag: d.etag, outcome: d.outcome, executionId: d.executionId },
      'object-created delivery',
    );
  }
  const failed = deliveries.filter((d) => d.outcome === 'failed');
  if (failed.length > 0) {
    throw new TriggerStartError(
      `could not start ${failed.length} workflow(s) for object-created events: ${failed
        .map((d) => `trigger ${d.trigger} on ${d.key} (eTag ${d.etag}): ${d.error ?? 'unknown error'}`)
        .join('; ')}; Lambda retries the event`,
    );
  }
  return { deliveries, ignored };
}

/**
 * A `duplicate` whose stored delivery is `failed` (its start failed on an earlier attempt of this
 * event; on AWS nothing else records `failed`) is started again; any other duplicate stays one.
 */
async function retryFailed(
  runtime: AwsRuntime,
  dispatcher: TriggerDispatcher,
  delivery: Delivery,
): Promise<Delivery> {
  const table = await runtime.ctx.backend.kv.table(DELIVERIES_TABLE, DELIVERIES_KEY_SCHEMA);
  const stored = await table.get({
    trigger: delivery.trigger,
    object: deliveryObjectId(delivery.key, delivery.etag),
  });
  if (stored?.status !== 'failed') return delivery;
  return dispatcher.redeliver(delivery.trigger, delivery.key, delivery.etag);
}

function dispatcherOf(runtime: AwsRuntime): {
  dispatcher: TriggerDispatcher;
  originals: Map<string, LambdaS3EventRecord>;
} {
  let entry = dispatchers.get(runtime);
  if (!entry) {
    const originals = new Map<string, LambdaS3EventRecord>();
    const dispatcher = new TriggerDispatcher({
      kv: runtime.ctx.backend.kv,
      triggers: [...(runtime.pipeline.triggers ?? [])],
      clock: runtime.ctx.clock,
      logger: runtime.ctx.logger,
      start: async (trigger, event) => {
        const record = event.Records[0] as S3EventRecord;
        const key = eventObjectKey(record);
        const original = originals.get(deliveryObjectId(key, record.s3.object.eTag)) ?? record;
        const handle = await (await runtime.runner()).start(
          trigger.workflow,
          { Records: [original] } as unknown as JsonValue,
          { source: { kind: 'object-created', name: trigger.name, detail: key } },
        );
        // Never await `handle.done`: the execution runs on in Step Functions after this returns.
        void handle.done.catch(() => {});
        return handle.executionId;
      },
    });
    entry = { dispatcher, originals };
    dispatchers.set(runtime, entry);
  }
  return entry;
}
