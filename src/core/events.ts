/**
 * Object-created notifications in the shape of Amazon S3 event notifications
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html),
 * so a handler written for the local object store also handles the events S3 delivers to Lambda.
 */
export interface S3EventRecord {
  eventVersion: '2.1';
  eventSource: 'aws:s3' | 'sluice:local';
  awsRegion: string;
  /** ISO-8601 UTC time of the event. */
  eventTime: string;
  eventName: 'ObjectCreated:Put' | 'ObjectCreated:Copy' | 'ObjectCreated:CompleteMultipartUpload';
  s3: {
    s3SchemaVersion: '1.0';
    bucket: { name: string; arn: string };
    object: {
      /** URL-encoded object key, as S3 sends it. */
      key: string;
      /** Size in bytes. */
      size: number;
      eTag: string;
      /** Hex string that increases for later events on the same key. */
      sequencer: string;
    };
  };
}

/** The envelope S3 posts to a Lambda function: `{ Records: [...] }`. */
export interface S3Event {
  Records: S3EventRecord[];
}

/** Last sequencer handed out in this process (see {@link nextEventSequencer}). */
let lastSequencer = 0n;

/**
 * The `s3.object.sequencer` of the next event sluice emits: 16 uppercase hex digits, strictly
 * increasing within the process (one counter for every event source: the local object store,
 * its directory watcher and the S3 adapter): the wall clock in ms shifted left by 20 bits, or
 * the previous value + 1 when that is not larger. Time-based, so it also increases across
 * processes started later. S3's own sequencers are opaque hex strings that only compare for the
 * same key ("Event message structure",
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html);
 * these compare the same way.
 */
export function nextEventSequencer(): string {
  const fromClock = BigInt(Date.now()) << 20n;
  lastSequencer = fromClock > lastSequencer ? fromClock : lastSequencer + 1n;
  return lastSequencer.toString(16).toUpperCase().padStart(16, '0');
}

/**
 * URL-encodes an object key as S3 event notifications carry it in `s3.object.key`: each
 * `/`-separated segment with `encodeURIComponent`, spaces as `+` (so `a b+c` is `a+b%2Bc`).
 * "The object key name value is URL encoded" ("Event message structure",
 * https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
 */
export function encodeEventKey(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/%20/g, '+'))
    .join('/');
}

/**
 * Calls `listener` with `record` after a completed write. A listener that throws or rejects is
 * ignored on purpose: the object is already stored, and a failing listener (like a failing Lambda
 * invocation) must not turn a successful write into an error; listeners report their own failures.
 */
export function deliverObjectCreated(listener: (record: S3EventRecord) => void, record: S3EventRecord): void {
  try {
    const result: unknown = listener(record);
    // An async listener's rejection must not become an unhandled rejection either.
    if (result instanceof Promise) result.catch(() => {});
  } catch {
    // See above.
  }
}
