import type { Layer } from '../../core/layer.ts';

/**
 * Where a deployed pipeline's resources are: what the AWS backend needs to address them. The CDK
 * stack (src/deploy/) sets these as environment variables on every function it deploys
 * ({@link awsConfigToEnv}); a Lambda handler reads them back with {@link awsConfigFromEnv}.
 * Credentials are never part of it: the SDK clients take them from the standard AWS credential
 * chain (environment, shared config, the Lambda execution role).
 */
export interface AwsBackendConfig {
  /** AWS region, e.g. `eu-west-1` (Lambda sets `AWS_REGION`). */
  readonly region: string;
  /** One S3 bucket per lake layer. */
  readonly buckets: Readonly<Record<Layer, string>>;
  /** DynamoDB table names are `<tablePrefix><kv table name>` (`sluice-gharchive-` + `runs`). */
  readonly tablePrefix: string;
  /** Glue database names are `<glueDatabasePrefix><catalog database>` (default ''). */
  readonly glueDatabasePrefix: string;
  /** Kinesis stream names are `<streamPrefix><stream name>` (default ''). */
  readonly streamPrefix: string;
  /** Athena workgroup; its result location is the workgroup's (enforced by the stack). */
  readonly athenaWorkgroup?: string;
  /** `s3://bucket/prefix/` for Athena results when the workgroup does not enforce one. */
  readonly athenaOutputLocation?: string;
  /** Redshift Serverless workgroup, database and the role its COPY assumes to read the staging bucket. */
  readonly redshift?: {
    readonly workgroupName: string;
    readonly database: string;
    readonly copyRoleArn: string;
  };
  /** SNS topic alerts are published to. */
  readonly snsTopicArn?: string;
  /** State machine ARNs are `<stateMachineArnPrefix><workflow name>` (`arn:aws:states:<region>:<account>:stateMachine:`). */
  readonly stateMachineArnPrefix?: string;
  /**
   * Service endpoints for emulators in tests (`http://127.0.0.1:PORT`); never set in a deployment.
   * Keys are service names: `s3`, `dynamodb`, `kinesis`, `glue`, `athena`, `sns`, `sfn`,
   * `scheduler`, `redshift-data`, `firehose`, `dynamodb-streams`.
   */
  readonly endpoints?: Readonly<Record<string, string>>;
}

/** Environment variable names of {@link AwsBackendConfig}, as the CDK stack sets them. */
export const AWS_ENV = {
  backend: 'SLUICE_BACKEND',
  bucketLanding: 'SLUICE_BUCKET_LANDING',
  bucketStaging: 'SLUICE_BUCKET_STAGING',
  bucketAnalytical: 'SLUICE_BUCKET_ANALYTICAL',
  bucketQuarantine: 'SLUICE_BUCKET_QUARANTINE',
  tablePrefix: 'SLUICE_TABLE_PREFIX',
  glueDatabasePrefix: 'SLUICE_GLUE_DATABASE_PREFIX',
  streamPrefix: 'SLUICE_STREAM_PREFIX',
  athenaWorkgroup: 'SLUICE_ATHENA_WORKGROUP',
  athenaOutputLocation: 'SLUICE_ATHENA_OUTPUT_LOCATION',
  redshiftWorkgroup: 'SLUICE_REDSHIFT_WORKGROUP',
  redshiftDatabase: 'SLUICE_REDSHIFT_DATABASE',
  redshiftCopyRoleArn: 'SLUICE_REDSHIFT_COPY_ROLE_ARN',
  snsTopicArn: 'SLUICE_SNS_TOPIC_ARN',
  stateMachineArnPrefix: 'SLUICE_STATE_MACHINE_ARN_PREFIX',
} as const;

/**
 * TEST-ONLY environment variable: JSON object of emulator endpoints by service
 * (`{"s3":"http://127.0.0.1:4568","dynamodb":"http://127.0.0.1:4567"}`), read into
 * {@link AwsBackendConfig.endpoints} so a Lambda bundle run in a child process (the deployed
 * artifact's smoke test, src/deploy/bundle.smoke.test.ts) talks to emulators. Never set in a
 * deployment: {@link awsConfigToEnv} never emits it, so the CDK stack never sets it, and with it
 * set the clients use the emulators' dummy credentials (src/backends/aws/clients.ts).
 */
export const ENDPOINTS_ENV = 'SLUICE_AWS_ENDPOINTS';

/**
 * Reads the config from environment variables ({@link AWS_ENV}); the region from `AWS_REGION`
 * (set by Lambda) or `AWS_DEFAULT_REGION`; emulator endpoints (tests only) from {@link ENDPOINTS_ENV}.
 * @throws {Error} naming every missing required variable (region and the four buckets), or when
 *   {@link ENDPOINTS_ENV} is set but is not a JSON object of `http(s)://` URL strings.
 */
export function awsConfigFromEnv(env: NodeJS.ProcessEnv = process.env): AwsBackendConfig {
  const missing: string[] = [];
  const required = (name: string): string => {
    const value = env[name];
    if (value === undefined || value === '') missing.push(name);
    return value ?? '';
  };
  const optional = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value === '' ? undefined : value;
  };
  const region = optional('AWS_REGION') ?? optional('AWS_DEFAULT_REGION');
  if (region === undefined) missing.push('AWS_REGION');
  const buckets = {
    landing: required(AWS_ENV.bucketLanding),
    staging: required(AWS_ENV.bucketStaging),
    analytical: required(AWS_ENV.bucketAnalytical),
    quarantine: required(AWS_ENV.bucketQuarantine),
  };
  if (missing.length > 0) {
    throw new Error(`the aws backend needs these environment variables: ${missing.join(', ')}`);
  }
  const redshiftWorkgroup = optional(AWS_ENV.redshiftWorkgroup);
  const athenaWorkgroup = optional(AWS_ENV.athenaWorkgroup);
  const athenaOutputLocation = optional(AWS_ENV.athenaOutputLocation);
  const snsTopicArn = optional(AWS_ENV.snsTopicArn);
  const stateMachineArnPrefix = optional(AWS_ENV.stateMachineArnPrefix);
  const endpoints = endpointsFromEnv(optional(ENDPOINTS_ENV));
  return {
    region: region ?? '',
    buckets,
    tablePrefix: optional(AWS_ENV.tablePrefix) ?? '',
    glueDatabasePrefix: optional(AWS_ENV.glueDatabasePrefix) ?? '',
    streamPrefix: optional(AWS_ENV.streamPrefix) ?? '',
    ...(athenaWorkgroup ? { athenaWorkgroup } : {}),
    ...(athenaOutputLocation ? { athenaOutputLocation } : {}),
    ...(redshiftWorkgroup
      ? {
          redshift: {
            workgroupName: redshiftWorkgroup,
            database: optional(AWS_ENV.redshiftDatabase) ?? 'dev',
            copyRoleArn: optional(AWS_ENV.redshiftCopyRoleArn) ?? '',
          },
        }
      : {}),
    ...(snsTopicArn ? { snsTopicArn } : {}),
    ...(stateMachineArnPrefix ? { stateMachineArnPrefix } : {}),
    ...(endpoints ? { endpoints } : {}),
  };
}

/** Parses {@link ENDPOINTS_ENV}; `undefined` when unset. @throws {Error} naming the variable when malformed. */
function endpointsFromEnv(value: string | undefined): Record<string, string> | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  const valid =
    parsed !== null &&
    typeof parsed === 'object' &&
    !Array.isArray(parsed) &&
    Object.values(parsed).every((v) => typeof v === 'string' && /^https?:\/\//.test(v));
  if (!valid) {
    throw new Error(
      `${ENDPOINTS_ENV} (test-only emulator endpoints) must be a JSON object of service name to http(s) URL, got ${value}`,
    );
  }
  return { ...(parsed as Record<string, string>) };
}

/**
 * The environment variables that carry `config` into a function (the inverse of
 * {@link awsConfigFromEnv}, except the region, which Lambda sets itself). Values may be CDK tokens.
 */
export function awsConfigToEnv(
  config: Omit<AwsBackendConfig, 'region' | 'endpoints'>,
): Record<string, string> {
  const env: Record<string, string> = {
    [AWS_ENV.backend]: 'aws',
    [AWS_ENV.bucketLanding]: config.buckets.landing,
    [AWS_ENV.bucketStaging]: config.buckets.staging,
    [AWS_ENV.bucketAnalytical]: config.buckets.analytical,
    [AWS_ENV.bucketQuarantine]: config.buckets.quarantine,
    [AWS_ENV.tablePrefix]: config.tablePrefix,
    [AWS_ENV.glueDatabasePrefix]: config.glueDatabasePrefix,
    [AWS_ENV.streamPrefix]: config.streamPrefix,
  };
  if (config.athenaWorkgroup) env[AWS_ENV.athenaWorkgroup] = config.athenaWorkgroup;
  if (config.athenaOutputLocation) env[AWS_ENV.athenaOutputLocation] = config.athenaOutputLocation;
  if (config.redshift) {
    env[AWS_ENV.redshiftWorkgroup] = config.redshift.workgroupName;
    env[AWS_ENV.redshiftDatabase] = config.redshift.database;
    env[AWS_ENV.redshiftCopyRoleArn] = config.redshift.copyRoleArn;
  }
  if (config.snsTopicArn) env[AWS_ENV.snsTopicArn] = config.snsTopicArn;
  if (config.stateMachineArnPrefix) env[AWS_ENV.stateMachineArnPrefix] = config.stateMachineArnPrefix;
  return env;
}

/** The layer whose bucket is `bucket`, or `undefined` (S3 event records name buckets, the core names layers). */
export function layerOfBucket(config: Pick<AwsBackendConfig, 'buckets'>, bucket: string): Layer | undefined {
  for (const [layer, name] of Object.entries(config.buckets)) {
    if (name === bucket) return layer as Layer;
  }
  return undefined;
}
