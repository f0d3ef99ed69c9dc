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
