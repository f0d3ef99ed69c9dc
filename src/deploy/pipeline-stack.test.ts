import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as cdk from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipelines } from '../../pipelines/index.ts';
import { AWS_ENV, awsConfigFromEnv } from '../backends/aws/config.ts';
import type { PipelineDefinition } from '../core/pipeline.ts';
import type { AslDefinition } from '../core/workflow.ts';
import { FUNCTION_ACCESS, functionAccess, pipelineTables } from './access.ts';
import { buildApp } from './app.ts';
import { bundleRuntime, REPO_ROOT, type RuntimeBundle } from './bundle.ts';
import { wrapWithSemaphore } from './concurrency.ts';
import { type NagReport, nagReport } from './nag.ts';
import type { PipelineStack } from './pipeline-stack.ts';

/**
 * CDK assertions on the five synthesized stacks. The app is built and synthesized once (the
 * bundle too); every test reads the templates.
 */

type Resources = Record<string, { Type: string; Properties?: Record<string, unknown> }>;

let workDir: string;
let bundle: RuntimeBundle;
let stacks: Map<string, PipelineStack>;
let templates: Map<string, Template>;
let report: NagReport;

beforeAll(async () => {
  workDir = mkdtempSync(path.join(os.tmpdir(), 'sluice-deploy-test-'));
  bundle = await bundleRuntime({ workDir: path.join(workDir, 'bundle') });
  const built = await buildApp({
    pipelines: Object.values(pipelines),
    outdir: path.join(workDir, 'cdk.out'),
    bundle,
  });
  report = nagReport(built.app);
  built.app.synth();
  stacks = new Map(built.stacks.map((s) => [s.pipeline.name, s]));
  templates = new Map(built.stacks.map((s) => [s.pipeline.name, Template.fromStack(s)]));
}, 180_000);

afterAll(() => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

const names = Object.keys(pipelines);

function resources(pipeline: string): Resources {
  const template = templates.get(pipeline);
  if (!template) throw new Error(`no template of ${pipeline}`);
  return (template.toJSON() as { Resources: Resources }).Resources;
}

function ofType(pipeline: string, type: string): [string, Record<string, unknown>][] {
  return Object.entries(resources(pipeline))
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, r.Properties ?? {}]);
}

function logicalId(
  stack: PipelineStack,
  construct: { node: { defaultChild?: unknown } } | cdk.CfnElement,
): string {
  const element = ('logicalId' in construct ? construct : construct.node.defaultChild) as cdk.CfnElement;
  return stack.getLogicalId(element);
}

/** The function whose FunctionName is `name`: its logical id and properties. */
function lambdaNamed(pipeline: string, name: string): [string, Record<string, unknown>] {
  const found = ofType(pipeline, 'AWS::Lambda::Function').find(([, p]) => p.FunctionName === name);
  if (!found) throw new Error(`no function ${name} in ${pipeline}`);
  return found;
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

/** Statements of the policies attached to the role with logical id `roleId`. */
function statementsOfRole(pipeline: string, roleId: string): Statement[] {
  return ofType(pipeline, 'AWS::IAM::Policy')
    .filter(([, p]) => (p.Roles as { Ref: string }[]).some((r) => r.Ref === roleId))
    .flatMap(([, p]) => (p.PolicyDocument as { Statement: Statement[] }).Statement);
}

const list = <T>(v: T | T[]): T[] => (Array.isArray(v) ? v : [v]);

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding in any stack', () => {
    expect(report.violations).toEqual([]);
  });

  it('every acknowledgement names an AwsSolutions rule and carries its own specific reason', () => {
    expect(report.acknowledgements.length).toBeGreaterThan(0);
    for (const ack of report.acknowledgements) {
      expect(ack.ruleId).toMatch(/^AwsSolutions-[A-Z]+[0-9]+(\[.+\])?$/);
      expect(ack.reason.length).toBeGreaterThan(60);
    }
    // Wildcard acknowledgements name the exact resource (never a blanket IAM5).
    expect(report.acknowledgements.filter((a) => a.ruleId === 'AwsSolutions-IAM5')).toEqual([]);
  });
});

describe.each(names)('stack sluice-%s', (name) => {
  const pipeline = (): PipelineDefinition => pipelines[name] as PipelineDefinition;
  const stack = (): PipelineStack => stacks.get(name) as PipelineStack;

  it('buckets block public access, are encrypted, refuse plain HTTP and log accesses', () => {
    const buckets = ofType(name, 'AWS::S3::Bucket');
    // landing, staging, analytical, quarantine, Athena results, access logs
    expect(buckets).toHaveLength(6);
    const logsId = logicalId(stack(), stack().logsBucket);
    for (const [id, props] of buckets) {
      expect(props.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(props.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      });
      if (id !== logsId) {
        expect(
          (props.LoggingConfiguration as { DestinationBucketName: unknown }).DestinationBucketName,
        ).toEqual({
          Ref: logsId,
        });
      }
      const policy = ofType(name, 'AWS::S3::BucketPolicy').find(
        ([, p]) => JSON.stringify(p.Bucket) === JSON.stringify({ Ref: id }),
      );
      expect(policy, `bucket policy of ${id}`).toBeDefined();
      const statements = (
        (policy as [string, Record<string, unknown>])[1].PolicyDocument as {
          Statement: Record<string, unknown>[];
        }
      ).Statement;
      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Deny',
          Action: 's3:*',
          Principal: { AWS: '*' },
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        }),
      );
    }
  });

  it('staging and quarantine expire (14 and 90 days), landing and analytical keep versions', () => {
    const props = (layer: 'landing' | 'staging' | 'analytical' | 'quarantine') =>
      resources(name)[logicalId(stack(), stack().buckets[layer])]?.Properties as Record<string, unknown>;
    const rules = (layer: 'landing' | 'staging' | 'analytical' | 'quarantine') =>
      (props(layer).LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    expect(rules('staging')).toContainEqual(
      expect.objectContaining({ ExpirationInDays: 14, Status: 'Enabled' }),
    );
    expect(rules('quarantine')).toContainEqual(
      expect.objectContaining({ ExpirationInDays: 90, Status: 'Enabled' }),
    );
    expect(props('landing').VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(props('analytical').VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(props('staging').VersioningConfiguration).toBeUndefined();
  });

  it('each function: Node 22, its timeout, the task handler, the backend environment', () => {
    const buckets = stack().buckets;
    for (const definition of pipeline().functions ?? []) {
      const [, props] = lambdaNamed(name, definition.name);
      expect(props.Runtime).toBe('nodejs22.x');
      expect(props.Architectures).toEqual(['x86_64']);
      expect(props.Timeout).toBe(definition.timeoutSeconds);
      expect(props.Handler).toBe('runtime/aws/lambda.taskHandler');
      const env = (props.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env.SLUICE_PIPELINE).toBe(name);
      expect(env.SLUICE_FUNCTION).toBe(definition.name);
      expect(env[AWS_ENV.backend]).toBe('aws');
      expect(env[AWS_ENV.tablePrefix]).toBe(`sluice-${name}-`);
      expect(env[AWS_ENV.bucketLanding]).toEqual({ Ref: logicalId(stack(), buckets.landing) });
      expect(env[AWS_ENV.bucketStaging]).toEqual({ Ref: logicalId(stack(), buckets.staging) });
      expect(env[AWS_ENV.bucketAnalytical]).toEqual({ Ref: logicalId(stack(), buckets.analytical) });
      expect(env[AWS_ENV.bucketQuarantine]).toEqual({ Ref: logicalId(stack(), buckets.quarantine) });
      expect(env[AWS_ENV.athenaWorkgroup]).toBe(`sluice-${name}`);
      expect(env[AWS_ENV.snsTopicArn]).toEqual({ Ref: logicalId(stack(), stack().topic) });
      expect(env[AWS_ENV.redshiftWorkgroup] !== undefined).toBe(
        (pipeline().warehouseTables ?? []).length > 0,
      );
      // DuckDB functions get the layer; the others do not carry 70 MB they never load.
      const duckdb = functionAccess(pipeline(), definition.name).duckdb === true;
      expect(Array.isArray(props.Layers) && (props.Layers as unknown[]).length === 1).toBe(duckdb);
    }
  });

  it('SluiceEnv output: one shell export line that awsConfigFromEnv reads back as this stack', () => {
    const template = templates.get(name) as Template;
    const outputs = (template.toJSON() as { Outputs: Record<string, { Value: unknown }> }).Outputs;
    // Renders the Fn::Join with pseudo parameters and Refs as deployment values would look.
    const pseudo: Record<string, string> = {
      'AWS::Region': 'eu-west-1',
      'AWS::Partition': 'aws',
      'AWS::AccountId': '123456789012',
    };
    const render = (value: unknown): string => {
      if (typeof value === 'string') return value;
      const v = value as Record<string, unknown>;
      if (typeof v.Ref === 'string') return pseudo[v.Ref] ?? `ref-${v.Ref.toLowerCase()}`;
      if (Array.isArray(v['Fn::Join'])) {
        const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
        return parts.map(render).join(sep);
      }
      return `token-${JSON.stringify(value).length}`;
    };
    const line = render(outputs.SluiceEnv?.Value);
    expect(line).toMatch(/^export ([A-Z_]+='[^']*' ?)+$/);
    const env = Object.fromEntries(
      [...line.matchAll(/([A-Z_]+)='([^']*)'/g)].map((m) => [m[1] as string, m[2] as string]),
    );
    expect(env[AWS_ENV.backend]).toBe('aws');
    expect(env.SLUICE_PIPELINE).toBe(name);
    const ref = (construct: { node: { defaultChild?: unknown } }) =>
      `ref-${logicalId(stack(), construct).toLowerCase()}`;
    const buckets = stack().buckets;
    const config = awsConfigFromEnv(env);
    expect(config).toEqual({
      region: 'eu-west-1',
      buckets: {
        landing: ref(buckets.landing),
        staging: ref(buckets.staging),
        analytical: ref(buckets.analytical),
        quarantine: ref(buckets.quarantine),
      },
      tablePrefix: `sluice-${name}-`,
      glueDatabasePrefix: '',
      streamPrefix: '',
      athenaWorkgroup: `sluice-${name}`,
      snsTopicArn: ref(stack().topic),
      stateMachineArnPrefix: 'arn:aws:states:eu-west-1:123456789012:stateMachine:',
      ...((pipeline().warehouseTables ?? []).length > 0
        ? { redshift: expect.objectContaining({ database: 'dev' }) }
        : {}),
    });
  });

  it('every function has its own role and log group with a retention', () => {
    const fns = ofType(name, 'AWS::Lambda::Function').filter(([, p]) => typeof p.FunctionName === 'string');
    const roles = fns.map(([, p]) => JSON.stringify(p.Role));
    expect(new Set(roles).size).toBe(fns.length);
    for (const [, props] of fns) {
      const groupId = (props.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
      expect(resources(name)[groupId]?.Properties).toMatchObject({
        LogGroupName: `/aws/lambda/${props.FunctionName}`,
        RetentionInDays: 30,
      });
    }
  });

  it('IAM: no Resource "*" outside the APIs that have no resource-level permissions', () => {
    const allowedOnStar = new Set([
      // Step Functions logging (CDK-added) and X-Ray tracing
      'logs:CreateLogDelivery',
      'logs:GetLogDelivery',
      'logs:UpdateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:DescribeResourcePolicies',
      'logs:DescribeLogGroups',
      'xray:PutTraceSegments',
      'xray:PutTelemetryRecords',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      // Redshift Data API statement calls
      'redshift-data:DescribeStatement',
      'redshift-data:GetStatementResult',
      'redshift-data:CancelStatement',
      // the CDK's BucketNotificationsHandler
      's3:PutBucketNotification',
    ]);
    for (const [, policy] of ofType(name, 'AWS::IAM::Policy')) {
      for (const statement of (policy.PolicyDocument as { Statement: Statement[] }).Statement) {
        if (list(statement.Resource).includes('*')) {
          for (const action of list(statement.Action)) expect(allowedOnStar, action).toContain(action);
        }
        for (const action of list(statement.Action)) expect(action, 'no action wildcards').not.toContain('*');
      }
    }
  });

  it('IAM: each function reaches only the buckets its access lists', () => {
    const buckets = stack().buckets;
    for (const definition of pipeline().functions ?? []) {
      const access = functionAccess(pipeline(), definition.name);
      const readable = new Set([...(access.read ?? []), ...(access.write ?? [])]);
      const [, props] = lambdaNamed(name, definition.name);
      const roleId = (props.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const text = JSON.stringify(statementsOfRole(name, roleId));
      for (const layer of ['landing', 'staging', 'analytical', 'quarantine'] as const) {
        expect(
          text.includes(`"${logicalId(stack(), buckets[layer])}"`),
          `${definition.name} -> ${layer}`,
        ).toBe(readable.has(layer));
      }
      // Writes only where it writes.
      const puts = statementsOfRole(name, roleId).filter((s) => list(s.Action).includes('s3:PutObject'));
      for (const layer of ['landing', 'staging', 'analytical', 'quarantine'] as const) {
        const writes = puts.some((s) =>
          JSON.stringify(s.Resource).includes(logicalId(stack(), buckets[layer])),
        );
        expect(writes, `${definition.name} writes ${layer}`).toBe((access.write ?? []).includes(layer));
      }
    }
  });

  it('state machines run the pipeline ASL with each Task bound to its function ARN, logged and traced', () => {
    for (const workflow of pipeline().workflows ?? []) {
      const found = ofType(name, 'AWS::StepFunctions::StateMachine').find(
        ([, p]) => p.StateMachineName === workflow.name,
      );
      expect(found, workflow.name).toBeDefined();
      const props = found?.[1] as Record<string, unknown>;
      // A workflow with maxConcurrency runs inside the semaphore (concurrency.test.ts), its slot
      // table's name the substitution SluiceSlotsTable; the others' ASL is deployed as it is.
      const { SluiceSlotsTable: slotsTable, ...substitutions } = props.DefinitionSubstitutions as Record<
        string,
        { 'Fn::GetAtt': [string, string] }
      >;
      const asl =
        workflow.maxConcurrency === undefined
          ? workflow.definition
          : wrapWithSemaphore(workflow.definition, {
              workflow: workflow.name,
              maxConcurrency: workflow.maxConcurrency,
              table: '${SluiceSlotsTable}',
            });
      expect(slotsTable === undefined).toBe(workflow.maxConcurrency === undefined);
      // Substitute as CloudFormation does, with each ARN written as arn(<logical id>).
      let text = props.DefinitionString as string;
      for (const [key, value] of Object.entries(substitutions)) {
        text = text.replaceAll(`\${${key}}`, `arn(${value['Fn::GetAtt'][0]})`);
      }
      // Expected: the definition's ASL with every Task Resource "${fn}" replaced by that function's ARN.
      const expected = JSON.parse(JSON.stringify(asl), (key, value) => {
        if (key === 'Resource' && typeof value === 'string') {
          const fn = /^\$\{(.+)\}$/.exec(value)?.[1];
          if (fn) return `arn(${lambdaNamed(name, fn)[0]})`;
        }
        return value;
      }) as AslDefinition;
      expect(JSON.parse(text)).toEqual(expected);
      expect(props.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: false });
      expect(props.TracingConfiguration).toEqual({ Enabled: true });
      // Its role invokes exactly its functions.
      const roleId = (props.RoleArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const invokes = statementsOfRole(name, roleId).filter((s) =>
        list(s.Action).includes('lambda:InvokeFunction'),
      );
      const targets = invokes
        .flatMap((s) => list(s.Resource))
        .map((r) => (r as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0]);
      expect(new Set(targets)).toEqual(new Set(Object.values(substitutions).map((v) => v['Fn::GetAtt'][0])));
    }
  });

  it('schedules: the definition expression in UTC, starting its state machine with scheduledTime', () => {
    const schedules = ofType(name, 'AWS::Scheduler::Schedule');
    expect(schedules).toHaveLength((pipeline().schedules ?? []).length);
    for (const schedule of pipeline().schedules ?? []) {
      const props = schedules.find(([, p]) => p.Name === schedule.name)?.[1] as Record<string, unknown>;
      expect(props.ScheduleExpression).toBe(schedule.expression);
      expect(props.ScheduleExpressionTimezone).toBe('UTC');
      const target = props.Target as {
        Arn: { Ref: string };
        RoleArn: { 'Fn::GetAtt': [string] };
        Input: string;
      };
      const machine = stack().stateMachines.get(schedule.workflow);
      expect(target.Arn).toEqual({
        Ref: logicalId(stack(), machine as unknown as { node: { defaultChild: unknown } }),
      });
      expect(JSON.parse(target.Input)).toEqual({
        ...schedule.input,
        scheduledTime: '<aws.scheduler.scheduled-time>',
      });
      const statements = statementsOfRole(name, target.RoleArn['Fn::GetAtt'][0]);
      expect(statements).toEqual([
        expect.objectContaining({ Action: 'states:StartExecution', Effect: 'Allow', Resource: target.Arn }),
      ]);
    }
  });

  it('triggers: S3 notifications with the trigger prefix/suffix to the dispatcher, which may start only their workflows', () => {
    const triggers = pipeline().triggers ?? [];
    const notifications = ofType(name, 'Custom::S3BucketNotifications');
    if (triggers.length === 0) {
      expect(notifications).toEqual([]);
      return;
    }
    const [dispatcherId, dispatcher] = lambdaNamed(name, `${name}-trigger-dispatcher`);
    expect(dispatcher.Handler).toBe('runtime/aws/lambda.s3Handler');
    for (const trigger of triggers) {
      const bucketId = logicalId(stack(), stack().buckets[trigger.layer]);
      const config = notifications.find(
        ([, p]) => JSON.stringify(p.BucketName) === JSON.stringify({ Ref: bucketId }),
      )?.[1];
      if (!config) throw new Error(`no notification configuration on ${bucketId}`);
      const lambdas = (
        config.NotificationConfiguration as { LambdaFunctionConfigurations: Record<string, unknown>[] }
      ).LambdaFunctionConfigurations;
      const matching = lambdas.filter((l) => {
        const rules = (l.Filter as { Key: { FilterRules: { Name: string; Value: string }[] } }).Key
          .FilterRules;
        const rule = (n: string) => rules.find((r) => r.Name === n)?.Value ?? '';
        return rule('prefix') === trigger.prefix && rule('suffix') === trigger.suffix;
      });
      expect(matching, trigger.name).toEqual([
        expect.objectContaining({
          Events: ['s3:ObjectCreated:*'],
          LambdaFunctionArn: { 'Fn::GetAtt': [dispatcherId, 'Arn'] },
        }),
      ]);
    }
    const roleId = (dispatcher.Role as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    const starts = statementsOfRole(name, roleId).filter((s) =>
      list(s.Action).includes('states:StartExecution'),
    );
    const expected = [...new Set(triggers.map((t) => t.workflow))].map((w) => ({
      Ref: logicalId(stack(), stack().stateMachines.get(w) as unknown as { node: { defaultChild: unknown } }),
    }));
    expect(starts.flatMap((s) => list(s.Resource))).toEqual(expected);
  });

  it('alarms: failed executions, function errors and throttles, all to the alert topic', () => {
    const alarms = ofType(name, 'AWS::CloudWatch::Alarm');
    const functions = (pipeline().functions ?? []).length + ((pipeline().triggers ?? []).length > 0 ? 1 : 0);
    expect(alarms).toHaveLength((pipeline().workflows ?? []).length + 2 * functions);
    const topicId = logicalId(stack(), stack().topic);
    for (const [, props] of alarms) expect(props.AlarmActions).toEqual([{ Ref: topicId }]);
    const metrics = alarms.map(([, p]) => `${p.Namespace}/${p.MetricName}`);
    expect(metrics.filter((m) => m === 'AWS/States/ExecutionsFailed')).toHaveLength(
      (pipeline().workflows ?? []).length,
    );
    expect(metrics.filter((m) => m === 'AWS/Lambda/Errors')).toHaveLength(functions);
    expect(metrics.filter((m) => m === 'AWS/Lambda/Throttles')).toHaveLength(functions);
    const topic = ofType(name, 'AWS::SNS::Topic')[0]?.[1];
    expect(topic?.KmsMasterKeyId).toBeDefined();
    const subscription = ofType(name, 'AWS::SNS::Subscription')[0]?.[1];
    expect(subscription).toMatchObject({ Protocol: 'email', Endpoint: { Ref: 'AlertEmail' } });
  });

  it('Glue tables: one per dataset with its columns and partition keys', () => {
    const tables = ofType(name, 'AWS::Glue::Table');
    expect(tables).toHaveLength(pipeline().datasets.length);
    for (const dataset of pipeline().datasets) {
      const input = tables.find(([, p]) => (p.TableInput as { Name: string }).Name === dataset.name)?.[1]
        .TableInput as {
        PartitionKeys: { Name: string; Type: string }[];
        StorageDescriptor: { Columns: { Name: string; Type: string }[] };
      };
      expect(input.PartitionKeys.map((k) => [k.Name, k.Type])).toEqual(
        dataset.partitionKeys.map((k) => [k.name, k.type]),
      );
      expect(input.StorageDescriptor.Columns.map((c) => [c.Name, c.Type])).toEqual(
        dataset.columns.map((c) => [c.name, c.type]),
      );
    }
    const workgroup = ofType(name, 'AWS::Athena::WorkGroup')[0]?.[1] as {
      WorkGroupConfiguration: Record<string, unknown>;
    };
    expect(workgroup.WorkGroupConfiguration).toMatchObject({
      EnforceWorkGroupConfiguration: true,
      BytesScannedCutoffPerQuery: 10 * 1024 ** 3,
      ResultConfiguration: { EncryptionConfiguration: { EncryptionOption: 'SSE_S3' } },
    });
    expect(ofType(name, 'AWS::Athena::NamedQuery')).toHaveLength((pipeline().queries ?? []).length);
  });

  it('DynamoDB: the tables its code opens, prefixed, on demand, with PITR and streams where opened with stream', () => {
    const tables = ofType(name, 'AWS::DynamoDB::Table');
    const specs = pipelineTables(pipeline());
    // Plus the concurrency semaphore's slot table where a workflow declares maxConcurrency (all five do).
    const slots = (pipeline().workflows ?? []).some((w) => w.maxConcurrency !== undefined)
      ? [`sluice-${name}-sluice_workflow_slots`]
      : [];
    expect(tables.map(([, p]) => p.TableName).sort()).toEqual(
      [...specs.map((s) => `sluice-${name}-${s.name}`), ...slots].sort(),
    );
    for (const spec of specs) {
      const props = tables.find(([, p]) => p.TableName === `sluice-${name}-${spec.name}`)?.[1] as Record<
        string,
        unknown
      >;
      expect(props.BillingMode).toBe('PAY_PER_REQUEST');
      expect(props.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(props.KeySchema).toEqual([
        { AttributeName: spec.keySchema.hashKey.name, KeyType: 'HASH' },
        ...(spec.keySchema.rangeKey
          ? [{ AttributeName: spec.keySchema.rangeKey.name, KeyType: 'RANGE' }]
          : []),
      ]);
      expect(props.StreamSpecification).toEqual(
        spec.stream ? { StreamViewType: 'NEW_AND_OLD_IMAGES' } : undefined,
      );
    }
  });

  it('warehouse only where the pipeline loads one', () => {
    const has = (pipeline().warehouseTables ?? []).length > 0;
    expect(ofType(name, 'AWS::RedshiftServerless::Workgroup')).toHaveLength(has ? 1 : 0);
    expect(ofType(name, 'AWS::RedshiftServerless::Namespace')).toHaveLength(has ? 1 : 0);
  });
});

describe('access map and bundle', () => {
  it('every function of every shipped pipeline has an access entry', () => {
    for (const pipeline of Object.values(pipelines)) {
      for (const fn of pipeline.functions ?? []) expect(Object.keys(FUNCTION_ACCESS)).toContain(fn.name);
    }
  });

  it('data a pipeline reads relative to its module resolves inside the asset as it does in the repository', () => {
    // pipelines/nba/reference.ts reads ../../examples/data/nba; the bundle sits two directories deep.
    const bundled = path.resolve(bundle.codeDir, 'runtime/aws', '../../examples/data/nba');
    expect(bundle.companions).toContain('examples/data/nba');
    for (const file of readdirSync(path.join(REPO_ROOT, 'examples/data/nba'))) {
      expect(readFileSync(path.join(bundled, file))).toEqual(
        readFileSync(path.join(REPO_ROOT, 'examples/data/nba', file)),
      );
    }
    expect(readdirSync(path.join(bundle.codeDir, 'runtime/aws', 'queries')).sort()).toEqual(
      readdirSync(path.join(REPO_ROOT, 'pipelines/hashtags/queries')).sort(),
    );
  });

  it('the bundle has no better-sqlite3, ships the hashtags queries and exports every handler', () => {
    expect(bundle.inputs.some((i) => i.includes('better-sqlite3'))).toBe(false);
    expect(bundle.companions).toContain('pipelines/hashtags/queries');
    const code = readFileSync(path.join(bundle.codeDir, 'runtime/aws/lambda.mjs'), 'utf8');
    const exported = /export\s*\{([^}]*)\}\s*;?\s*$/.exec(code)?.[1] ?? '';
    for (const handler of [
      'taskHandler',
      's3Handler',
      'scheduleHandler',
      'kinesisHandler',
      'dynamodbStreamHandler',
    ]) {
      expect(exported).toContain(handler);
    }
    expect(code).not.toMatch(/from\s*["']better-sqlite3["']/);
  });

  it('nba gets its Kinesis stream, encrypted; hashtags none (its workflow creates one per run)', () => {
    const nba = ofType('nba', 'AWS::Kinesis::Stream');
    expect(nba.map(([, p]) => p.Name)).toEqual(['nba-tweets']);
    expect(nba[0]?.[1].StreamEncryption).toEqual({ EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' });
    expect(ofType('hashtags', 'AWS::Kinesis::Stream')).toEqual([]);
  });
});

describe('component switches', () => {
  it('enableWarehouse/enableSchedules false leave the warehouse and schedules out', async () => {
    const built = await buildApp({
      pipelines: [pipelines.tolls as PipelineDefinition, pipelines.quotes as PipelineDefinition],
      outdir: path.join(workDir, 'switches.out'),
      bundle,
      context: { enableWarehouse: 'false' },
      switches: { enableSchedules: false },
    });
    expect(nagReport(built.app).violations).toEqual([]);
    const [tolls, quotes] = built.stacks.map((s) => Template.fromStack(s));
    tolls?.resourceCountIs('AWS::RedshiftServerless::Workgroup', 0);
    quotes?.resourceCountIs('AWS::Scheduler::Schedule', 0);
    const env = lambdaEnv(tolls as Template, 'tolls-load');
    expect(env[AWS_ENV.redshiftWorkgroup]).toBeUndefined();
  });
});

function lambdaEnv(template: Template, name: string): Record<string, unknown> {
  const fns = template.findResources('AWS::Lambda::Function', { Properties: { FunctionName: name } });
  const props = Object.values(fns)[0]?.Properties as { Environment: { Variables: Record<string, unknown> } };
  return props.Environment.Variables;
}
