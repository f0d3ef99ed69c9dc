import * as cdk from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as redshiftserverless from 'aws-cdk-lib/aws-redshiftserverless';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { Construct } from 'constructs';
import { awsConfigToEnv } from '../backends/aws/config.ts';
import { datasetPrefix } from '../core/dataset.ts';
import { LAYERS, type Layer } from '../core/layer.ts';
import type { PipelineDefinition } from '../core/pipeline.ts';
import { bindNamedQuery } from '../core/query.ts';
import { taskStates } from '../core/workflow.ts';
import {
  COMMON_TABLES,
  CRAWL_DATABASES,
  DELIVERIES,
  type FunctionAccess,
  functionAccess,
  PIPELINE_STREAMS,
  pipelineTables,
  RUNTIME_STREAM_PATTERNS,
} from './access.ts';
import { HANDLER_MODULE, type RuntimeBundle } from './bundle.ts';
import { SLOTS_HASH_KEY, SLOTS_TABLE, wrapWithSemaphore } from './concurrency.ts';

/**
 * Per-component switches, after the nba original's Terraform `enable_*` flags. Each defaults to
 * `true`; a component the pipeline does not use is not created either way (no warehouse without
 * `warehouseTables`, no streams for a pipeline that has none).
 * Set them as stack props or as CDK context (`-c enableWarehouse=false`, or `sluice deploy --disable warehouse`).
 */
export interface ComponentSwitches {
  /** EventBridge Scheduler schedules (created ENABLED). */
  readonly enableSchedules: boolean;
  /** The trigger dispatcher and S3 event notifications. */
  readonly enableTriggers: boolean;
  /** Kinesis data streams (and the right to create them at run time). */
  readonly enableStream: boolean;
  /** Redshift Serverless namespace + workgroup + COPY role. */
  readonly enableWarehouse: boolean;
  /** Glue database and tables, Athena workgroup and named queries. */
  readonly enableCatalog: boolean;
  /** CloudWatch alarms to the SNS topic. */
  readonly enableAlarms: boolean;
  /**
   * `maxConcurrency` on Step Functions: workflows that declare it run inside a DynamoDB semaphore
   * (src/deploy/concurrency.ts) with its slot table and release rule/function.
   */
  readonly enableConcurrency: boolean;
}

/** All switches on. */
export const DEFAULT_SWITCHES: ComponentSwitches = {
  enableSchedules: true,
  enableTriggers: true,
  enableStream: true,
  enableWarehouse: true,
  enableCatalog: true,
  enableAlarms: true,
  enableConcurrency: true,
};

/** Props of {@link PipelineStack}. */
export interface PipelineStackProps extends cdk.StackProps {
  readonly pipeline: PipelineDefinition;
  /** The runtime bundle and layer, built once per synth ({@link bundleRuntime}). */
  readonly bundle: RuntimeBundle;
  readonly switches?: Partial<ComponentSwitches>;
  /** Days after which staging objects expire (default 14). */
  readonly stagingExpirationDays?: number;
  /** Days after which quarantined records expire (default 90). */
  readonly quarantineExpirationDays?: number;
  /** Days noncurrent versions are kept in versioned buckets (default 30). */
  readonly noncurrentVersionExpirationDays?: number;
  /** Days Athena query results are kept (default 30). */
  readonly athenaResultExpirationDays?: number;
  /** Days S3 server access logs are kept (default 365). */
  readonly accessLogExpirationDays?: number;
  /** Athena per-query scan limit in bytes (default 10 GB; the minimum Athena takes is 10 MB). */
  readonly athenaBytesScannedCutoff?: number;
  /** Retention of every log group (default one month). */
  readonly logRetention?: logs.RetentionDays;
  /** Memory of DuckDB functions in MB (default 3008); other functions get 512. */
  readonly duckdbMemoryMb?: number;
  /** /tmp of DuckDB functions in MB (default 4096; hour files reach hundreds of MB uncompressed). */
  readonly duckdbEphemeralStorageMb?: number;
  /** Removal policy of buckets and tables holding data (default RETAIN). */
  readonly dataRemovalPolicy?: cdk.RemovalPolicy;
  /** Subnets and security groups of the Redshift Serverless workgroup (default: the account's default VPC). */
  readonly redshiftSubnetIds?: readonly string[];
  readonly redshiftSecurityGroupIds?: readonly string[];
}

/** A deployed function and what it was granted. */
export interface DeployedFunction {
  /** The Lambda function's name. */
  readonly name: string;
  readonly fn: lambda.Function;
  readonly role: iam.Role;
  readonly access: FunctionAccess;
}

/** Logical id fragment from a sluice name (`gharchive-ingest` -> `GharchiveIngest`). */
function pascal(name: string): string {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0]?.toUpperCase() + p.slice(1))
    .join('');
}

/**
 * One shell line, `export NAME='value' ...`, that sets `env` (the stack's `SluiceEnv` output:
 * `eval "$(aws cloudformation describe-stacks ... --query "Stacks[0].Outputs[?OutputKey=='SluiceEnv'].OutputValue" --output text)"`).
 * Values are single-quoted; they are bucket names, table prefixes and ARNs, which hold no quote
 * (CDK tokens stay tokens and resolve in the template).
 */
export function sluiceEnvExports(env: Readonly<Record<string, string>>): string {
  return `export ${Object.entries(env)
    .map(([name, value]) => `${name}='${value}'`)
    .join(' ')}`;
}

/**
 * One pipeline's AWS deployment, stack `sluice-<pipeline>`: the lake's buckets, the functions
 * (Node 22, one shared bundle, one role each), the workflows as Step Functions state machines from
 * the same ASL, schedules, S3 triggers, DynamoDB tables, Kinesis streams, the Glue catalog and an
 * Athena workgroup, the warehouse (Redshift Serverless), and alerting (SNS + CloudWatch alarms).
 *
 * Every IAM grant names the stack's own resources; each wildcard that remains (S3 object keys, a
 * service API without resource-level permissions) is acknowledged for cdk-nag with its reason next
 * to the grant ({@link PipelineStack.allow}).
 */
export class PipelineStack extends cdk.Stack {
  readonly pipeline: PipelineDefinition;
  readonly switches: ComponentSwitches;
  readonly buckets: Readonly<Record<Layer, s3.Bucket>>;
  readonly logsBucket: s3.Bucket;
  readonly resultsBucket: s3.Bucket | undefined;
  readonly key: kms.Key;
  readonly topic: sns.Topic;
  readonly tables: ReadonlyMap<string, dynamodb.Table> = new Map();
  readonly streams: ReadonlyMap<string, kinesis.Stream> = new Map();
  readonly functions: ReadonlyMap<string, DeployedFunction> = new Map();
  readonly stateMachines: ReadonlyMap<string, sfn.StateMachine> = new Map();
  /**
   * The concurrency semaphore's slot table (`<tablePrefix>sluice_workflow_slots`), release function and
   * EventBridge rule, when a workflow declares `maxConcurrency` and `enableConcurrency` is on.
   */
  readonly concurrency:
    | { table: dynamodb.Table; release: lambda.Function; releaseRole: iam.Role; rule: events.Rule }
    | undefined;
  readonly dispatcher: DeployedFunction | undefined;
  readonly workgroup: athena.CfnWorkGroup | undefined;
  readonly glueDatabases: ReadonlyMap<string, glue.CfnDatabase> = new Map();
  readonly redshift:
    | {
        namespace: redshiftserverless.CfnNamespace;
        workgroup: redshiftserverless.CfnWorkgroup;
        copyRole: iam.Role;
      }
    | undefined;
  /** `<tablePrefix>`: `sluice-<pipeline>-`. */
  readonly tablePrefix: string;

  private readonly props: PipelineStackProps;
  private readonly layer: lambda.LayerVersion;
  private readonly code: lambda.Code;

  constructor(scope: Construct, id: string, props: PipelineStackProps) {
    super(scope, id, {
      description: `sluice pipeline ${props.pipeline.name}: ${props.pipeline.description}`.slice(0, 1024),
      ...props,
    });
    this.props = props;
    this.pipeline = props.pipeline;
    const name = this.pipeline.name;
    this.tablePrefix = `sluice-${name}-`;
    this.switches = { ...DEFAULT_SWITCHES, ...contextSwitches(this), ...props.switches };
    cdk.Tags.of(this).add('sluice:pipeline', name);
    // Once per stack: every function of it runs the same runtime on purpose.
    cdk.Validations.of(this).acknowledge({
      id: 'AwsSolutions-L1',
      reason:
        'Every sluice function runs Node.js 22 on purpose: the bundle targets node22 and the DuckDB binding in the layer is the one tested on it (issue 9); Node 24 is a deliberate, tested upgrade rather than a drift fix',
    });

    // Encryption key of the alert topic (a customer-managed key: CloudWatch alarms
    // cannot publish to a topic encrypted with the AWS-managed SNS key).
    this.key = new kms.Key(this, 'Key', {
      description: `sluice ${name}: alert topic encryption`,
      enableKeyRotation: true,
      removalPolicy: cdk.RemovalPolicy.RETAIN,
    });
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );

    // ---- buckets
    this.logsBucket = this.makeLogsBucket();
    this.buckets = {
      landing: this.makeLayerBucket('landing'),
      staging: this.makeLayerBucket('staging'),
      analytical: this.makeLayerBucket('analytical'),
      quarantine: this.makeLayerBucket('quarantine'),
    };

    // ---- alerts
    this.topic = new sns.Topic(this, 'Alerts', {
      topicName: `sluice-${name}-alerts`,
      displayName: `sluice ${name} alerts`,
      masterKey: this.key,
      enforceSSL: true,
    });
    const alertEmail = new cdk.CfnParameter(this, 'AlertEmail', {
      type: 'String',
      default: '',
      description: 'E-mail address subscribed to the alert topic (empty: no subscription)',
      allowedPattern: '^$|^[^@\\s]+@[^@\\s]+$',
    });
    const hasEmail = new cdk.CfnCondition(this, 'HasAlertEmail', {
      expression: cdk.Fn.conditionNot(cdk.Fn.conditionEquals(alertEmail.valueAsString, '')),
    });
    const subscription = new sns.CfnSubscription(this, 'AlertEmailSubscription', {
      topicArn: this.topic.topicArn,
      protocol: 'email',
      endpoint: alertEmail.valueAsString,
    });
    subscription.cfnOptions.condition = hasEmail;

    // ---- tables
    const tables = this.tables as Map<string, dynamodb.Table>;
    for (const spec of pipelineTables(this.pipeline)) {
      const attr = (a: { name: string; type: 'S' | 'N' }) => ({
        name: a.name,
        type: a.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER,
      });
      tables.set(
        spec.name,
        new dynamodb.Table(this, `Table${pascal(spec.name)}`, {
          tableName: `${this.tablePrefix}${spec.name}`,
          partitionKey: attr(spec.keySchema.hashKey),
          ...(spec.keySchema.rangeKey ? { sortKey: attr(spec.keySchema.rangeKey) } : {}),
          billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
          pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
          encryption: dynamodb.TableEncryption.AWS_MANAGED,
          ...(spec.stream ? { stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES } : {}),
          removalPolicy: props.dataRemovalPolicy ?? cdk.RemovalPolicy.RETAIN,
        }),
      );
    }

    // ---- streams
    const streams = this.streams as Map<string, kinesis.Stream>;
    if (this.switches.enableStream) {
      for (const streamName of PIPELINE_STREAMS[name] ?? []) {
        streams.set(
          streamName,
          new kinesis.Stream(this, `Stream${pascal(streamName)}`, {
            streamName,
            streamMode: kinesis.StreamMode.ON_DEMAND,
            // The AWS-managed aws/kinesis key (cdk-nag KDS3): producers and consumers need no key grant.
            encryption: kinesis.StreamEncryption.MANAGED,
            retentionPeriod: cdk.Duration.hours(24),
          }),
        );
      }
    }

    // ---- catalog and query engine
    if (this.switches.enableCatalog) {
      this.resultsBucket = this.makeBucket('AthenaResults', {
        lifecycleRules: [
          {
            id: 'expire-query-results',
            expiration: cdk.Duration.days(props.athenaResultExpirationDays ?? 30),
            abortIncompleteMultipartUploadAfter: cdk.Duration.days(1),
          },
        ],
        removalPolicy: cdk.RemovalPolicy.DESTROY,
        autoDeleteObjects: false,
      });
      this.makeCatalog();
      this.workgroup = this.makeWorkgroup(this.resultsBucket);
    } else {
      this.resultsBucket = undefined;
      this.workgroup = undefined;
    }

    // ---- warehouse
    this.redshift =
      this.switches.enableWarehouse && (this.pipeline.warehouseTables ?? []).length > 0
        ? this.makeWarehouse()
        : undefined;

    // ---- functions
    this.code = lambda.Code.fromAsset(props.bundle.codeDir);
    this.layer = new lambda.LayerVersion(this, 'RuntimeLayer', {
      code: lambda.Code.fromAsset(props.bundle.layerDir, {
        assetHashType: cdk.AssetHashType.CUSTOM,
        assetHash: props.bundle.layerHash,
      }),
      compatibleRuntimes: [lambda.Runtime.NODEJS_22_X],
      compatibleArchitectures: [lambda.Architecture.X86_64],
      description: 'DuckDB (linux-x64 binding) and run-time-required packages for sluice functions',
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    const functions = this.functions as Map<string, DeployedFunction>;
    for (const definition of this.pipeline.functions ?? []) {
      const access = functionAccess(this.pipeline, definition.name);
      functions.set(
        definition.name,
        this.makeFunction(definition.name, {
          description: definition.description,
          timeoutSeconds: definition.timeoutSeconds,
          handler: `${HANDLER_MODULE}.taskHandler`,
          access,
        }),
      );
    }

    // ---- workflows
    const bounded = this.switches.enableConcurrency
      ? (this.pipeline.workflows ?? []).filter((w) => w.maxConcurrency !== undefined)
      : [];
    const slots = bounded.length > 0 ? this.makeSlotsTable() : undefined;
    const machines = this.stateMachines as Map<string, sfn.StateMachine>;
    for (const workflow of this.pipeline.workflows ?? []) {
      machines.set(
        workflow.name,
        this.makeStateMachine(workflow, bounded.includes(workflow) ? slots : undefined),
      );
    }
    this.concurrency = slots
      ? {
          table: slots,
          ...this.makeSlotRelease(
            slots,
            bounded.map((w) => machines.get(w.name) as sfn.StateMachine),
          ),
        }
      : undefined;

    // ---- schedules
    if (this.switches.enableSchedules) {
      for (const schedule of this.pipeline.schedules ?? []) this.makeSchedule(schedule);
    }

    // ---- triggers
    this.dispatcher =
      this.switches.enableTriggers && (this.pipeline.triggers ?? []).length > 0
        ? this.makeTriggers()
        : undefined;

    // ---- alarms
    if (this.switches.enableAlarms) this.makeAlarms();

    new cdk.CfnOutput(this, 'LandingBucketName', { value: this.buckets.landing.bucketName });
    new cdk.CfnOutput(this, 'AlertTopicArn', { value: this.topic.topicArn });
    // What `sluice --backend aws` needs to address this stack (docs/cli.md, "Against a deployed stack").
    new cdk.CfnOutput(this, 'SluiceEnv', {
      description: `eval this line to run sluice query, catalog, runs, config, executions against ${this.pipeline.name}`,
      value: sluiceEnvExports({
        AWS_REGION: this.region,
        ...this.backendEnv(),
        SLUICE_PIPELINE: this.pipeline.name,
      }),
    });
  }

  /**
   * Adds an Allow statement to `grantee` and acknowledges each wildcard resource in it for cdk-nag
   * (`AwsSolutions-IAM5[Resource::<resource>]`) with `wildcardReason`. A wildcard without a reason
   * is a bug: it throws.
   * @throws {Error} naming the action when a resource contains `*` and no reason is given.
   */
  allow(grantee: iam.Role, actions: string[], resources: string[], wildcardReason?: string): void {
    grantee.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources }));
    for (const resource of resources) {
      const flat = flattenCfnReference(this.resolve(resource));
      if (!flat.includes('*')) continue;
      if (!wildcardReason)
        throw new Error(`${actions.join(',')} on ${flat}: a wildcard resource needs a reason`);
      cdk.Validations.of(grantee).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flat}]`,
        reason: wildcardReason,
      });
    }
  }

  private makeBucket(id: string, props: s3.BucketProps): s3.Bucket {
    return new s3.Bucket(this, id, {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.logsBucket as s3.IBucket,
      serverAccessLogsPrefix: `${id.toLowerCase()}/`,
      ...props,
    });
  }

  private makeLogsBucket(): s3.Bucket {
    const bucket = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        {
          id: 'expire-access-logs',
          expiration: cdk.Duration.days(this.props.accessLogExpirationDays ?? 365),
        },
      ],
      removalPolicy: this.props.dataRemovalPolicy ?? cdk.RemovalPolicy.RETAIN,
    });
    cdk.Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        "This is the server-access-log target of the stack's other buckets; logging its own accesses into itself would log every log delivery (S3 advises against a bucket logging to itself)",
    });
    return bucket;
  }

  private makeLayerBucket(layer: Layer): s3.Bucket {
    const days = this.props.noncurrentVersionExpirationDays ?? 30;
    const abort = { abortIncompleteMultipartUploadAfter: cdk.Duration.days(1) };
    const byLayer: Record<Layer, Pick<s3.BucketProps, 'versioned' | 'lifecycleRules'>> = {
      // Raw source objects: the only copy of what was received; versions protect against overwrite.
      landing: {
        versioned: true,
        lifecycleRules: [
          { id: 'noncurrent-versions', noncurrentVersionExpiration: cdk.Duration.days(days), ...abort },
        ],
      },
      // Intermediate files, rebuilt from landing: not versioned, expire.
      staging: {
        versioned: false,
        lifecycleRules: [
          {
            id: 'expire-staging',
            expiration: cdk.Duration.days(this.props.stagingExpirationDays ?? 14),
            ...abort,
          },
        ],
      },
      analytical: {
        versioned: true,
        lifecycleRules: [
          { id: 'noncurrent-versions', noncurrentVersionExpiration: cdk.Duration.days(days), ...abort },
        ],
      },
      quarantine: {
        versioned: false,
        lifecycleRules: [
          {
            id: 'expire-quarantine',
            expiration: cdk.Duration.days(this.props.quarantineExpirationDays ?? 90),
            ...abort,
          },
        ],
      },
    };
    return this.makeBucket(`${pascal(layer)}Bucket`, {
      ...byLayer[layer],
      removalPolicy: this.props.dataRemovalPolicy ?? cdk.RemovalPolicy.RETAIN,
    });
  }

  /** Glue databases this pipeline writes: its own and its crawl databases. */
  private catalogDatabases(): string[] {
    return [this.pipeline.name, ...(CRAWL_DATABASES[this.pipeline.name] ?? [])];
  }

  private makeCatalog(): void {
    const databases = this.glueDatabases as Map<string, glue.CfnDatabase>;
    for (const database of this.catalogDatabases()) {
      databases.set(
        database,
        new glue.CfnDatabase(this, `GlueDatabase${pascal(database)}`, {
          catalogId: this.account,
          databaseInput: {
            name: database,
            description:
              database === this.pipeline.name
                ? `sluice pipeline ${database}: ${this.pipeline.description}`.slice(0, 2048)
                : `sluice pipeline ${this.pipeline.name}: crawled landing data`,
          },
        }),
      );
    }
    const own = databases.get(this.pipeline.name) as glue.CfnDatabase;
    for (const dataset of this.pipeline.datasets) {
      const bucket = this.buckets[dataset.layer];
      const table = new glue.CfnTable(this, `GlueTable${pascal(dataset.name)}`, {
        catalogId: this.account,
        databaseName: dataset.pipeline,
        tableInput: {
          name: dataset.name,
          description: dataset.description,
          tableType: 'EXTERNAL_TABLE',
          parameters: {
            classification: 'parquet',
            EXTERNAL: 'TRUE',
            'parquet.compression': 'SNAPPY',
            'sluice:managed_by': 'pipeline',
            ...(dataset.primaryKey ? { 'sluice:primary_key': dataset.primaryKey.join(',') } : {}),
          },
          partitionKeys: dataset.partitionKeys.map((c) => ({
            name: c.name,
            type: c.type,
            ...(c.comment ? { comment: c.comment } : {}),
          })),
          storageDescriptor: {
            location: `s3://${bucket.bucketName}/${datasetPrefix(dataset)}`,
            inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
            outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
            serdeInfo: {
              serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe',
              parameters: { 'serialization.format': '1' },
            },
            columns: dataset.columns.map((c) => ({
              name: c.name,
              type: c.type,
              ...(c.comment ? { comment: c.comment } : {}),
            })),
          },
        },
      });
      table.addResourceDependency(own);
    }
  }

  private makeWorkgroup(results: s3.Bucket): athena.CfnWorkGroup {
    const workgroup = new athena.CfnWorkGroup(this, 'AthenaWorkgroup', {
      name: `sluice-${this.pipeline.name}`,
      description: `sluice pipeline ${this.pipeline.name}: queries over its Glue tables`,
      state: 'ENABLED',
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: this.props.athenaBytesScannedCutoff ?? 10 * 1024 ** 3,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: `s3://${results.bucketName}/athena/`,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
        },
      },
    });
    for (const query of this.pipeline.queries ?? []) {
      const named = new athena.CfnNamedQuery(this, `NamedQuery${pascal(query.name)}`, {
        name: `${query.database}.${query.name}`,
        database: query.database,
        description: query.description.slice(0, 1024),
        queryString: bindNamedQuery(query),
        workGroup: workgroup.name,
      });
      named.addResourceDependency(workgroup);
    }
    return workgroup;
  }

  private makeWarehouse(): {
    namespace: redshiftserverless.CfnNamespace;
    workgroup: redshiftserverless.CfnWorkgroup;
    copyRole: iam.Role;
  } {
    const name = `sluice-${this.pipeline.name}`;
    const copyRole = new iam.Role(this, 'WarehouseCopyRole', {
      assumedBy: new iam.ServicePrincipal('redshift.amazonaws.com'),
      description: `Assumed by Redshift Serverless COPY in ${name}: reads the staging bucket only`,
    });
    const staging = this.buckets.staging;
    this.allow(copyRole, ['s3:ListBucket', 's3:GetBucketLocation'], [staging.bucketArn]);
    this.allow(
      copyRole,
      ['s3:GetObject'],
      [staging.arnForObjects('*')],
      'COPY reads the staging CSV files the load step writes under data-driven keys (<pipeline>/<table>/<content hash>.csv); read-only, this bucket only',
    );
    const namespace = new redshiftserverless.CfnNamespace(this, 'WarehouseNamespace', {
      namespaceName: name,
      dbName: 'dev',
      adminUsername: 'sluice_admin',
      manageAdminPassword: true,
      iamRoles: [copyRole.roleArn],
      defaultIamRoleArn: copyRole.roleArn,
      logExports: ['userlog', 'connectionlog', 'useractivitylog'],
    });
    const workgroup = new redshiftserverless.CfnWorkgroup(this, 'WarehouseWorkgroup', {
      workgroupName: name,
      namespaceName: name,
      baseCapacity: 8,
      publiclyAccessible: false,
      enhancedVpcRouting: false,
      ...(this.props.redshiftSubnetIds ? { subnetIds: [...this.props.redshiftSubnetIds] } : {}),
      ...(this.props.redshiftSecurityGroupIds
        ? { securityGroupIds: [...this.props.redshiftSecurityGroupIds] }
        : {}),
    });
    workgroup.addResourceDependency(namespace);
    return { namespace, workgroup, copyRole };
  }

  /** The backend configuration every function gets as environment variables. */
  private backendEnv(): Record<string, string> {
    return awsConfigToEnv({
      buckets: {
        landing: this.buckets.landing.bucketName,
        staging: this.buckets.staging.bucketName,
        analytical: this.buckets.analytical.bucketName,
        quarantine: this.buckets.quarantine.bucketName,
      },
      tablePrefix: this.tablePrefix,
      glueDatabasePrefix: '',
      streamPrefix: '',
      ...(this.workgroup ? { athenaWorkgroup: this.workgroup.name } : {}),
      ...(this.redshift
        ? {
            redshift: {
              workgroupName: this.redshift.workgroup.workgroupName,
              database: 'dev',
              copyRoleArn: this.redshift.copyRole.roleArn,
            },
          }
        : {}),
      snsTopicArn: this.topic.topicArn,
      stateMachineArnPrefix: `arn:${this.partition}:states:${this.region}:${this.account}:stateMachine:`,
    });
  }

  private makeFunction(
    functionName: string,
    options: {
      description: string;
      timeoutSeconds: number;
      handler: string;
      access: FunctionAccess;
      env?: Record<string, string>;
    },
  ): DeployedFunction {
    const id = pascal(functionName);
    const { access } = options;
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: this.props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    const role = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `sluice function ${functionName}: only the resources it uses`,
    });
    const fn = new lambda.Function(this, `${id}Function`, {
      functionName,
      description: options.description.slice(0, 256),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.X86_64,
      code: this.code,
      handler: options.handler,
      timeout: cdk.Duration.seconds(options.timeoutSeconds),
      memorySize: access.duckdb ? (this.props.duckdbMemoryMb ?? 3008) : 512,
      ephemeralStorageSize: cdk.Size.mebibytes(
        access.duckdb ? (this.props.duckdbEphemeralStorageMb ?? 4096) : 512,
      ),
      role,
      logGroup,
      ...(access.duckdb ? { layers: [this.layer] } : {}),
      environment: {
        ...this.backendEnv(),
        SLUICE_PIPELINE: this.pipeline.name,
        SLUICE_FUNCTION: functionName,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        ...options.env,
      },
    });
    logGroup.grantWrite(role);
    this.grantAccess(role, access);
    return { name: functionName, fn, role, access };
  }

  /** Grants `role` what `access` lists, on the stack's named resources only. */
  private grantAccess(role: iam.Role, access: FunctionAccess): void {
    const name = this.pipeline.name;
    const writable = new Set(access.write ?? []);
    const readable = new Set([...(access.read ?? []), ...writable]);
    for (const layer of LAYERS.filter((l) => readable.has(l))) {
      const bucket = this.buckets[layer];
      const write = writable.has(layer);
      this.allow(role, ['s3:ListBucket', 's3:GetBucketLocation'], [bucket.bucketArn]);
      this.allow(
        role,
        write
          ? ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload']
          : ['s3:GetObject'],
        [bucket.arnForObjects('*')],
        `${write ? 'Reads and writes' : 'Reads'} objects of the ${layer} bucket, which holds only pipeline ${name}'s ${layer} layer (and sluice's own quality tables); keys are data-driven (partition paths, hour files, run ids), so the key part is a wildcard`,
      );
    }

    const tableNames = [...new Set([...COMMON_TABLES.map((t) => t.name), ...(access.tables ?? [])])];
    const readOnly = new Set(['config']);
    const streamArns: string[] = [];
    for (const tableName of tableNames) {
      const table = this.tables.get(tableName);
      if (!table)
        throw new Error(`function access names table ${tableName}, which pipeline ${name} does not have`);
      this.allow(
        role,
        readOnly.has(tableName)
          ? ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:DescribeTable']
          : [
              'dynamodb:GetItem',
              'dynamodb:PutItem',
              'dynamodb:UpdateItem',
              'dynamodb:DeleteItem',
              'dynamodb:Query',
              'dynamodb:Scan',
              'dynamodb:DescribeTable',
              'dynamodb:BatchGetItem',
              'dynamodb:BatchWriteItem',
              'dynamodb:ConditionCheckItem',
            ],
        [table.tableArn],
      );
      if (table.tableStreamArn) streamArns.push(table.tableStreamArn);
    }
    if (streamArns.length > 0) {
      this.allow(
        role,
        ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
        streamArns,
      );
    }

    this.allow(role, ['sns:Publish'], [this.topic.topicArn]);
    this.allow(role, ['kms:Decrypt', 'kms:GenerateDataKey'], [this.key.keyArn]);

    const kinds = new Set(access.streams ?? []);
    if (kinds.size > 0 && this.switches.enableStream) {
      const actions = new Set<string>([
        'kinesis:DescribeStream',
        'kinesis:DescribeStreamSummary',
        'kinesis:ListShards',
      ]);
      if (kinds.has('produce')) for (const a of ['kinesis:PutRecord', 'kinesis:PutRecords']) actions.add(a);
      if (kinds.has('consume'))
        for (const a of ['kinesis:GetShardIterator', 'kinesis:GetRecords']) actions.add(a);
      const owned = [...this.streams.values()].map((s) => s.streamArn);
      if (owned.length > 0) {
        const ownedActions = [...actions, ...(kinds.has('manage') ? ['kinesis:CreateStream'] : [])];
        this.allow(role, ownedActions, owned);
      }
      const pattern = RUNTIME_STREAM_PATTERNS[name];
      if (pattern) {
        const manage = kinds.has('manage')
          ? [
              'kinesis:CreateStream',
              'kinesis:DeleteStream',
              'kinesis:AddTagsToStream',
              'kinesis:StartStreamEncryption',
            ]
          : [];
        this.allow(
          role,
          [...actions, ...manage],
          [`arn:${this.partition}:kinesis:${this.region}:${this.account}:stream/${pattern}`],
          `Pipeline ${name}'s workflow creates and deletes its stream on every run (the original's KinesisLanding design) under a configurable name (config stream_name); the grant covers only stream names starting with "${pattern.replace('*', '')}" in this account and region`,
        );
      }
    }

    if (access.catalog && this.switches.enableCatalog) {
      const databases = [...this.catalogDatabases(), 'sluice'];
      const catalogArn = `arn:${this.partition}:glue:${this.region}:${this.account}:catalog`;
      const dbArns = databases.map(
        (d) => `arn:${this.partition}:glue:${this.region}:${this.account}:database/${d}`,
      );
      const tableArns = databases.map(
        (d) => `arn:${this.partition}:glue:${this.region}:${this.account}:table/${d}/*`,
      );
      this.allow(role, ['glue:GetDatabase', 'glue:CreateDatabase'], [catalogArn, ...dbArns]);
      this.allow(
        role,
        [
          'glue:GetTable',
          'glue:GetTables',
          'glue:CreateTable',
          'glue:UpdateTable',
          'glue:GetTableVersions',
          'glue:GetPartition',
          'glue:GetPartitions',
          'glue:BatchCreatePartition',
          'glue:BatchUpdatePartition',
          'glue:BatchDeletePartition',
          'glue:CreatePartition',
          'glue:UpdatePartition',
          'glue:DeletePartition',
        ],
        [catalogArn, ...dbArns, ...tableArns],
        `Tables of the Glue databases ${databases.join(', ')} only: datasets, crawled tables and sluice's quality tables are registered at run time, so table names are a wildcard within these databases`,
      );
    }

    if (access.athena && this.workgroup && this.resultsBucket) {
      const workgroupArn = `arn:${this.partition}:athena:${this.region}:${this.account}:workgroup/${this.workgroup.name}`;
      this.allow(
        role,
        [
          'athena:StartQueryExecution',
          'athena:GetQueryExecution',
          'athena:GetQueryResults',
          'athena:StopQueryExecution',
        ],
        [workgroupArn],
      );
      this.allow(role, ['s3:ListBucket', 's3:GetBucketLocation'], [this.resultsBucket.bucketArn]);
      this.allow(
        role,
        ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        [this.resultsBucket.arnForObjects('*')],
        "Athena writes each query result under a new query-id key in the workgroup's result bucket (this stack's, expiring); the caller reads them back",
      );
    }

    if (access.warehouse && this.redshift) {
      const workgroupArn = this.redshift.workgroup.attrWorkgroupWorkgroupArn;
      this.allow(
        role,
        ['redshift-data:ExecuteStatement', 'redshift-data:BatchExecuteStatement'],
        [workgroupArn],
      );
      this.allow(role, ['redshift-serverless:GetCredentials'], [workgroupArn]);
      this.allow(
        role,
        [
          'redshift-data:DescribeStatement',
          'redshift-data:GetStatementResult',
          'redshift-data:CancelStatement',
        ],
        ['*'],
        'The Redshift Data API statement calls (DescribeStatement, GetStatementResult, CancelStatement) support no resource-level permissions; they only reach statements this role itself started (the Data API checks the statement owner)',
      );
    }
  }

  private makeStateMachine(
    workflow: NonNullable<PipelineDefinition['workflows']>[number],
    slots: dynamodb.Table | undefined,
  ): sfn.StateMachine {
    const id = pascal(workflow.name);
    const substitutions: Record<string, string> = {};
    let definition = workflow.definition;
    if (slots && workflow.maxConcurrency !== undefined) {
      // The slot table's name as a definition substitution, like the functions' ARNs.
      substitutions[SLOTS_SUBSTITUTION] = slots.tableName;
      definition = wrapWithSemaphore(workflow.definition, {
        workflow: workflow.name,
        maxConcurrency: workflow.maxConcurrency,
        table: `\${${SLOTS_SUBSTITUTION}}`,
      });
    }
    const invoked: lambda.Function[] = [];
    for (const task of taskStates(workflow.definition)) {
      if (task.functionName === undefined) continue;
      const deployed = this.functions.get(task.functionName);
      if (!deployed) {
        throw new Error(
          `workflow ${workflow.name}: state ${task.stateName} calls ${task.functionName}, which pipeline ${this.pipeline.name} does not define`,
        );
      }
      substitutions[task.functionName] = deployed.fn.functionArn;
      if (!invoked.includes(deployed.fn)) invoked.push(deployed.fn);
    }
    const logGroup = new logs.LogGroup(this, `${id}StateMachineLogs`, {
      logGroupName: `/aws/vendedlogs/states/${workflow.name}`,
      retention: this.props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    const machine = new sfn.StateMachine(this, `${id}StateMachine`, {
      stateMachineName: workflow.name,
      comment: workflow.description,
      definitionBody: sfn.DefinitionBody.fromString(JSON.stringify(definition)),
      definitionSubstitutions: substitutions,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: false },
      tracingEnabled: true,
    });
    const role = machine.role as iam.Role;
    if (definition !== workflow.definition && slots)
      this.allow(role, ['dynamodb:UpdateItem'], [slots.tableArn]);
    if (invoked.length > 0)
      this.allow(
        role,
        ['lambda:InvokeFunction'],
        invoked.map((f) => f.functionArn),
      );
    cdk.Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        "Added by CDK for the state machine's logging and X-Ray tracing (cdk-nag SF1/SF2): the CloudWatch Logs vended-delivery APIs (logs:CreateLogDelivery, ...) and xray:PutTraceSegments/PutTelemetryRecords/GetSampling* support no resource-level permissions",
    });
    return machine;
  }

  /** The concurrency semaphore's slot table: one item per bounded workflow (src/deploy/concurrency.ts). */
  private makeSlotsTable(): dynamodb.Table {
    return new dynamodb.Table(this, 'TableSluiceWorkflowSlots', {
      tableName: `${this.tablePrefix}${SLOTS_TABLE}`,
      partitionKey: { name: SLOTS_HASH_KEY, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      // Only transient counters: nothing to keep once the stack is gone.
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
  }

  /**
   * The slot release function (`runtime/aws/lambda.slotReleaseHandler`, UpdateItem on the slot table
   * only) and the EventBridge rule invoking it for every ABORTED, TIMED_OUT or FAILED execution of the
   * wrapped state machines: those that may end without giving their slot back.
   */
  private makeSlotRelease(
    table: dynamodb.Table,
    machines: readonly sfn.StateMachine[],
  ): { release: lambda.Function; releaseRole: iam.Role; rule: events.Rule } {
    const functionName = `${this.pipeline.name}-slot-release`;
    const id = pascal(functionName);
    const logGroup = new logs.LogGroup(this, `${id}Logs`, {
      logGroupName: `/aws/lambda/${functionName}`,
      retention: this.props.logRetention ?? logs.RetentionDays.ONE_MONTH,
      removalPolicy: cdk.RemovalPolicy.DESTROY,
    });
    const releaseRole = new iam.Role(this, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `sluice ${this.pipeline.name}: gives back concurrency slots of ended executions (slot table only)`,
    });
    const release = new lambda.Function(this, `${id}Function`, {
      functionName,
      description: `gives back the concurrency slot of ${this.pipeline.name} executions that ended without releasing it`,
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.X86_64,
      code: this.code,
      handler: `${HANDLER_MODULE}.slotReleaseHandler`,
      timeout: cdk.Duration.seconds(30),
      memorySize: 256,
      role: releaseRole,
      logGroup,
      environment: {
        SLUICE_SLOTS_TABLE: table.tableName,
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
    });
    logGroup.grantWrite(releaseRole);
    this.allow(releaseRole, ['dynamodb:UpdateItem'], [table.tableArn]);
    const rule = new events.Rule(this, 'SlotReleaseRule', {
      description: `sluice ${this.pipeline.name}: executions of semaphore-wrapped workflows that ended without releasing their slot`,
      eventPattern: {
        source: ['aws.states'],
        detailType: ['Step Functions Execution Status Change'],
        detail: {
          status: ['ABORTED', 'TIMED_OUT', 'FAILED'],
          stateMachineArn: machines.map((m) => m.stateMachineArn),
        },
      },
    });
    rule.addTarget(
      new eventsTargets.LambdaFunction(release, { retryAttempts: 8, maxEventAge: cdk.Duration.hours(24) }),
    );
    return { release, releaseRole, rule };
  }

  private makeSchedule(schedule: NonNullable<PipelineDefinition['schedules']>[number]): void {
    const machine = this.stateMachines.get(schedule.workflow);
    if (!machine) {
      throw new Error(
        `schedule ${schedule.name} starts workflow ${schedule.workflow}, which pipeline ${this.pipeline.name} does not define`,
      );
    }
    const id = pascal(schedule.name);
    const role = new iam.Role(this, `${id}ScheduleRole`, {
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
      description: `EventBridge Scheduler ${schedule.name}: starts ${schedule.workflow} only`,
    });
    this.allow(role, ['states:StartExecution'], [machine.stateMachineArn]);
    new scheduler.CfnSchedule(this, `${id}Schedule`, {
      name: schedule.name,
      description: schedule.description.slice(0, 512),
      scheduleExpression: schedule.expression,
      scheduleExpressionTimezone: 'UTC',
      flexibleTimeWindow: { mode: 'OFF' },
      state: 'ENABLED',
      target: {
        // Templated Step Functions target: StartExecution of this state machine with `input`.
        arn: machine.stateMachineArn,
        roleArn: role.roleArn,
        input: JSON.stringify({ ...schedule.input, scheduledTime: '<aws.scheduler.scheduled-time>' }),
        retryPolicy: { maximumRetryAttempts: 3, maximumEventAgeInSeconds: 3600 },
      },
    });
  }

  private makeTriggers(): DeployedFunction {
    const triggers = this.pipeline.triggers ?? [];
    const name = `${this.pipeline.name}-trigger-dispatcher`;
    const dispatcher = this.makeFunction(name, {
      description: `starts ${this.pipeline.name}'s workflows for created objects (S3 event notifications), once per object version`,
      timeoutSeconds: 60,
      handler: `${HANDLER_MODULE}.s3Handler`,
      access: { tables: [DELIVERIES.name] },
    });
    const machines = [...new Set(triggers.map((t) => t.workflow))].map((workflow) => {
      const machine = this.stateMachines.get(workflow);
      if (!machine)
        throw new Error(
          `a trigger of ${this.pipeline.name} starts workflow ${workflow}, which it does not define`,
        );
      return machine.stateMachineArn;
    });
    this.allow(dispatcher.role, ['states:StartExecution'], machines);
    const workflows = [...new Set(triggers.map((t) => t.workflow))];
    this.allow(
      dispatcher.role,
      ['states:DescribeExecution'],
      workflows.map((w) => `arn:${this.partition}:states:${this.region}:${this.account}:execution:${w}:*`),
      `Executions of the state machines ${workflows.join(', ')} only: the dispatcher reads back the executions it started, whose names are generated per object version`,
    );
    const seen = new Set<string>();
    for (const trigger of triggers) {
      const key = `${trigger.layer}\u0000${trigger.prefix}\u0000${trigger.suffix}`;
      if (seen.has(key)) continue;
      seen.add(key);
      this.buckets[trigger.layer].addEventNotification(
        s3.EventType.OBJECT_CREATED,
        new s3n.LambdaDestination(dispatcher.fn),
        {
          ...(trigger.prefix ? { prefix: trigger.prefix } : {}),
          ...(trigger.suffix ? { suffix: trigger.suffix } : {}),
        },
      );
    }
    // The CDK's BucketNotificationsHandler (a singleton custom resource applying the notification configuration).
    const handler = this.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
    if (handler) {
      cdk.Validations.of(handler).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          "The CDK's own BucketNotificationsHandler custom resource (it writes the S3 notification configuration at deploy time) comes with this managed policy; it only allows writing its own logs",
      });
      cdk.Validations.of(handler).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          "The CDK's BucketNotificationsHandler calls s3:PutBucketNotification on the buckets of this stack at deploy time; the CDK construct grants it on * and offers no way to scope it",
      });
    }
    return dispatcher;
  }

  private makeAlarms(): void {
    const action = new cwActions.SnsAction(this.topic);
    const alarm = (id: string, metric: cloudwatch.Metric, description: string) => {
      const created = new cloudwatch.Alarm(this, id, {
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      created.addAlarmAction(action);
    };
    for (const [workflow, machine] of this.stateMachines) {
      alarm(
        `${pascal(workflow)}FailedAlarm`,
        machine.metricFailed({ period: cdk.Duration.minutes(5), statistic: 'Sum' }),
        `an execution of workflow ${workflow} failed`,
      );
    }
    const all = [...this.functions.values(), ...(this.dispatcher ? [this.dispatcher] : [])];
    for (const deployed of all) {
      const fnName = deployed.name;
      alarm(
        `${pascal(fnName)}ErrorsAlarm`,
        deployed.fn.metricErrors({ period: cdk.Duration.minutes(5), statistic: 'Sum' }),
        `function ${fnName} reported errors`,
      );
      alarm(
        `${pascal(fnName)}ThrottlesAlarm`,
        deployed.fn.metricThrottles({ period: cdk.Duration.minutes(5), statistic: 'Sum' }),
        `function ${fnName} was throttled`,
      );
    }
  }
}

/** Definition substitution holding the slot table's name in wrapped state machines. */
const SLOTS_SUBSTITUTION = 'SluiceSlotsTable';

/** Switches set as CDK context (`-c enableWarehouse=false`); strings `true`/`false` or booleans. */
function contextSwitches(scope: Construct): Partial<ComponentSwitches> {
  const out: Record<string, boolean> = {};
  for (const key of Object.keys(DEFAULT_SWITCHES)) {
    const value: unknown = scope.node.tryGetContext(key);
    if (value === undefined) continue;
    if (value === true || value === 'true') out[key] = true;
    else if (value === false || value === 'false') out[key] = false;
    else throw new Error(`context ${key} must be true or false, got ${JSON.stringify(value)}`);
  }
  return out;
}
