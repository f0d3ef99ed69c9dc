import type { Alert } from '../../core/alert.ts';
import { type Clock, systemClock } from '../../core/clock.ts';
import { type Logger, silentLogger } from '../../core/logger.ts';
import type { Backend } from '../../core/ports/backend.ts';
import type { Notifier, NotifyResult } from '../../core/ports/notifier.ts';
import type { QueryEngine } from '../../core/ports/query-engine.ts';
import type { Warehouse } from '../../core/ports/warehouse.ts';
import type { WorkflowRunner } from '../../core/ports/workflow-runner.ts';
import type { NamedQuery } from '../../core/query.ts';
import type { WorkflowDefinition } from '../../core/workflow.ts';
import { clientOptions, quietSdkNodeWarning } from './clients.ts';
import { AWS_ENV, type AwsBackendConfig } from './config.ts';

/** Options of {@link createAwsBackend}. */
export interface AwsBackendOptions {
  /** Time of object-store events, catalog versions and leases (default: the system clock). */
  readonly clock?: Clock;
  /**
   * Create missing DynamoDB tables on first use (tests against dynalite, `sluice` against a fresh
   * account). Default `false`: on AWS the CDK stack creates every table, and a missing one is an
   * error naming it.
   */
  readonly createResources?: boolean;
  readonly logger?: Logger;
}

/** An SDK client: every one has `destroy()` (closes its sockets). */
interface SdkClient {
  destroy(): void;
}

/**
 * The aws backend, the composition root of the AWS adapters: S3 (object store, one bucket per
 * layer), DynamoDB (key-value tables `<tablePrefix><name>`, change streams through DynamoDB
 * Streams), Kinesis Data Streams (`<streamPrefix><name>`), Glue Data Catalog
 * (`<glueDatabasePrefix><database>`), Athena (query engine) and Redshift Serverless through the
 * Redshift Data API (warehouse).
 *
 * The SDKs and adapters load here, with dynamic `import()`, so neither `sluice --help` nor the
 * local backend ever loads them; the port properties of {@link Backend} are synchronous, so this
 * factory is async and loads the object store, key-value, stream and catalog adapters up front,
 * while Athena and the Redshift Data API load on the first {@link Backend.openQueryEngine} /
 * {@link Backend.openWarehouse}. Clients take the region and (tests only) emulator endpoints from
 * `config` ({@link clientOptions}); credentials come from the SDK's default chain only.
 *
 * `isAlive` always answers `undefined` (unknown): a lease holder in another Lambda container cannot
 * be probed, so leases rely on their expiry (src/core/lease.ts).
 * @throws {Error} when a module fails to load (an incomplete bundle).
 */
export async function createAwsBackend(
  config: AwsBackendConfig,
  options: AwsBackendOptions = {},
): Promise<Backend & { config: AwsBackendConfig }> {
  quietSdkNodeWarning();
  const clock = options.clock ?? systemClock;
  const [
    { S3Client },
    { DynamoDBClient },
    { DynamoDBStreamsClient },
    { KinesisClient },
    { GlueClient },
    { NodeHttpHandler },
    { S3ObjectStore },
    { DynamoDbKvStore },
    { KinesisStreamStore },
    { GlueCatalog },
  ] = await Promise.all([
    import('@aws-sdk/client-s3'),
    import('@aws-sdk/client-dynamodb'),
    import('@aws-sdk/client-dynamodb-streams'),
    import('@aws-sdk/client-kinesis'),
    import('@aws-sdk/client-glue'),
    import('@smithy/node-http-handler'),
    import('./s3-object-store.ts'),
    import('./dynamodb-kv-store.ts'),
    import('./kinesis-stream-store.ts'),
    import('./glue-catalog.ts'),
  ]);
  const clients: SdkClient[] = [];
  const track = <T extends SdkClient>(client: T): T => {
    clients.push(client);
    return client;
  };

  const s3 = track(new S3Client(clientOptions(config, 's3')));
  const dynamodb = track(new DynamoDBClient(clientOptions(config, 'dynamodb')));
  const streams = track(new DynamoDBStreamsClient(clientOptions(config, 'dynamodb-streams')));
  const kinesisOptions = clientOptions(config, 'kinesis');
  // kinesalite speaks HTTP/1.1 only: without this handler the SDK fails with `Protocol error`.
  if (config.endpoints?.kinesis !== undefined) kinesisOptions.requestHandler = new NodeHttpHandler();
  const kinesis = track(new KinesisClient(kinesisOptions));
  const glue = track(new GlueClient(clientOptions(config, 'glue')));

  const objectStore = new S3ObjectStore(s3, { buckets: config.buckets, region: config.region, clock });
  const kv = new DynamoDbKvStore(dynamodb, {
    tablePrefix: config.tablePrefix,
    streamsClient: streams,
    ...(options.createResources !== undefined ? { createTables: options.createResources } : {}),
  });
  const stream = new KinesisStreamStore(kinesis, { streamPrefix: config.streamPrefix });
  const catalog = new GlueCatalog(glue, {
    databasePrefix: config.glueDatabasePrefix,
    buckets: config.buckets,
    clock,
  });

  return {
    name: 'aws',
    config,
    objectStore,
    kv,
    catalog,
    stream,
    isAlive: () => undefined,

    async openQueryEngine(
      queryOptions: { readonly namedQueries?: readonly NamedQuery[]; readonly sandboxed?: boolean } = {},
    ): Promise<QueryEngine> {
      const [{ AthenaClient }, { AthenaQueryEngine }] = await Promise.all([
        import('@aws-sdk/client-athena'),
        import('./athena-query-engine.ts'),
      ]);
      const client = track(new AthenaClient(clientOptions(config, 'athena')));
      return AthenaQueryEngine.open({
        client,
        databasePrefix: config.glueDatabasePrefix,
        // Tells which names are sluice databases and which string columns hold JSON.
        catalog,
        ...(config.athenaWorkgroup !== undefined ? { workgroup: config.athenaWorkgroup } : {}),
        ...(config.athenaOutputLocation !== undefined ? { outputLocation: config.athenaOutputLocation } : {}),
        ...(queryOptions.namedQueries !== undefined ? { namedQueries: queryOptions.namedQueries } : {}),
        ...(queryOptions.sandboxed !== undefined ? { sandboxed: queryOptions.sandboxed } : {}),
      });
    },

    async openWarehouse(): Promise<Warehouse> {
      const redshift = config.redshift;
      if (redshift === undefined) {
        throw new Error(
          `the aws backend has no warehouse configured: set ${AWS_ENV.redshiftWorkgroup} (and ${AWS_ENV.redshiftDatabase}, ${AWS_ENV.redshiftCopyRoleArn}) to the stack's Redshift Serverless workgroup, database and COPY role`,
        );
      }
      const [{ RedshiftDataClient }, { RedshiftDataWarehouse }] = await Promise.all([
        import('@aws-sdk/client-redshift-data'),
        import('./redshift-warehouse.ts'),
      ]);
      const client = track(new RedshiftDataClient(clientOptions(config, 'redshift-data')));
      return new RedshiftDataWarehouse(client, {
        workgroupName: redshift.workgroupName,
        database: redshift.database,
        copyRoleArn: redshift.copyRoleArn,
        buckets: config.buckets,
      });
    },

    async close(): Promise<void> {
      for (const client of clients.splice(0)) client.destroy();
    },
  };
}

/**
 * The alert channel on AWS: the SNS topic `config.snsTopicArn` (an e-mail subscription in the
 * stack) through `SnsNotifier`; without a topic, a notifier that writes each alert to the log
 * (CloudWatch Logs in Lambda) and reports channel `log` delivered.
 */
export async function createAwsNotifier(
  config: AwsBackendConfig,
  options: { readonly logger?: Logger } = {},
): Promise<Notifier> {
  const topicArn = config.snsTopicArn;
  if (topicArn === undefined) {
    const logger = options.logger ?? silentLogger;
    return {
      async notify(alert: Alert): Promise<NotifyResult> {
        logger.warn({ alert }, `alert: ${alert.title}`);
        return { delivered: ['log'], failed: [] };
      },
    };
  }
  quietSdkNodeWarning();
  const [{ SNSClient }, { SnsNotifier }] = await Promise.all([
    import('@aws-sdk/client-sns'),
    import('./sns-notifier.ts'),
  ]);
  return new SnsNotifier(new SNSClient(clientOptions(config, 'sns')), { topicArn });
}

/**
 * The workflow runner on AWS: Step Functions state machines `<stateMachineArnPrefix><workflow>`
 * (one per workflow, deployed by the stack from the same ASL) through `StepFunctionsRunner`.
 * `options.clock` and `options.pollMs` pace the `DescribeExecution` polling behind each handle's
 * `done` (and `clock` names executions).
 * @throws {Error} when `config.stateMachineArnPrefix` is not set (names the variable).
 */
export async function createAwsWorkflowRunner(
  config: AwsBackendConfig,
  workflows: readonly WorkflowDefinition[],
  options: { readonly clock?: Clock; readonly pollMs?: number } = {},
): Promise<WorkflowRunner> {
  const prefix = config.stateMachineArnPrefix;
  if (prefix === undefined) {
    throw new Error(
      `the aws backend cannot start workflows: ${AWS_ENV.stateMachineArnPrefix} (arn:aws:states:<region>:<account>:stateMachine:<prefix>) is not set`,
    );
  }
  quietSdkNodeWarning();
  const [{ SFNClient }, { StepFunctionsRunner }] = await Promise.all([
    import('@aws-sdk/client-sfn'),
    import('./step-functions-runner.ts'),
  ]);
  return new StepFunctionsRunner(new SFNClient(clientOptions(config, 'sfn')), {
    stateMachineArnPrefix: prefix,
    workflows,
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    ...(options.pollMs !== undefined ? { pollMs: options.pollMs } : {}),
  });
}
