import type { S3EventRecord } from './events.ts';
import type { Layer } from './layer.ts';

/**
 * An object-created trigger, as an S3 event notification configuration: objects created in
 * `layer` whose key starts with `prefix` and ends with `suffix` start `workflow` with the S3 event
 * (`{ Records: [record] }`) as input. Delivery is at least once; consumers deduplicate on
 * (key, eTag), so one object never starts the same work twice.
 */
export interface TriggerDefinition {
  /** Unique name, `<pipeline>-<purpose>`. */
  readonly name: string;
  readonly pipeline: string;
  readonly description: string;
  readonly layer: Layer;
  /** Key prefix filter (S3 `prefix` rule); `''` for all. */
  readonly prefix: string;
  /** Key suffix filter (S3 `suffix` rule); `''` for all. */
  readonly suffix: string;
  readonly workflow: string;
}

/** The decoded object key of an S3 event record (S3 URL-encodes keys, spaces as `+`). */
export function eventObjectKey(record: S3EventRecord): string {
  return decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '));
}

/**
 * Whether a created object matches a trigger's layer, prefix and suffix. `layerOfBucket` maps the
 * record's bucket to its layer (`ObjectStore.layerOfBucket`; on AWS buckets have their own names);
 * without it the bucket name must be the layer's (the local backend's events).
 */
export function matchesTrigger(
  trigger: TriggerDefinition,
  record: S3EventRecord,
  layerOfBucket?: (bucket: string) => Layer | undefined,
): boolean {
  if (!record.eventName.startsWith('ObjectCreated:')) return false;
  const layer = layerOfBucket ? layerOfBucket(record.s3.bucket.name) : record.s3.bucket.name;
  if (layer !== trigger.layer) return false;
  const key = eventObjectKey(record);
  return key.startsWith(trigger.prefix) && key.endsWith(trigger.suffix);
}
