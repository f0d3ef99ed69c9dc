import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Command } from 'commander';
import { pipelineNames, pipelines } from '../../../pipelines/index.ts';
import { ExitCode, SluiceError, UsageError } from '../../core/errors.ts';
import { formatBytes, formatDuration, printJson } from '../output.ts';

interface DeployFlags {
  synth?: boolean;
  out?: string;
  disable?: string[];
  requireApproval?: string;
  json?: boolean;
}

/** Components `--disable` turns off (the stacks' `enable*` switches, docs/deploy.md). */
const COMPONENTS = {
  schedules: 'enableSchedules',
  triggers: 'enableTriggers',
  stream: 'enableStream',
  warehouse: 'enableWarehouse',
  catalog: 'enableCatalog',
  alarms: 'enableAlarms',
  concurrency: 'enableConcurrency',
} as const;

const APPROVALS = ['never', 'any-change', 'broadening'] as const;

/** No AWS credentials in the default provider chain. */
export class MissingCredentialsError extends SluiceError {
  constructor(cause: unknown) {
    super(
      'no AWS credentials found in the default credential chain. Provide them in one of the standard ways: ' +
        'AWS_PROFILE=<profile> (from ~/.aws/config, e.g. after `aws configure sso` / `aws sso login`), ' +
        'or AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), or a role of the machine (EC2/ECS/CodeBuild); ' +
        'also set AWS_REGION. sluice never reads credentials from its own files. ' +
        '`sluice deploy --synth` needs no credentials.',
      { code: 'no_credentials', exitCode: ExitCode.usage, cause },
    );
  }
}

/**
 * Checks that the SDK's default credential chain yields credentials, without printing them.
 * @throws {MissingCredentialsError} when it yields none.
 */
async function checkCredentials(): Promise<void> {
  const { S3Client } = await import('@aws-sdk/client-s3');
  const client = new S3Client({});
  try {
    const credentials = await client.config.credentials();
    if (!credentials.accessKeyId) throw new Error('empty access key id');
  } catch (error) {
    throw new MissingCredentialsError(error instanceof Error ? error.message : String(error));
  } finally {
    client.destroy();
  }
}

/** `sluice deploy [--synth] [--out DIR] [pipeline...]`. */
export function registerDeploy(program: Command): void {
  program
    .command('deploy')
    .description(
      'synthesize (--synth) or deploy the pipelines to AWS: one CloudFormation stack each, cdk-nag checked',
    )
    .argument('[pipeline...]', `pipelines to deploy (default all: ${pipelineNames.join(', ')})`)
    .option('--synth', 'only synthesize the CloudFormation templates (no credentials needed)')
    .option('--out <dir>', 'cloud assembly directory (default cdk.out)')
    .option(
      '--disable <component...>',
      `components left out of every stack: ${Object.keys(COMPONENTS).join(', ')}`,
    )
    .option(
      '--require-approval <level>',
      `CDK approval of security-relevant changes: ${APPROVALS.join(', ')} (default never)`,
    )
    .option('--json', 'print the synthesis result as JSON')
    .addHelpText(
      'after',
      `
Each pipeline becomes the stack sluice-<pipeline>: S3 buckets per layer (public access blocked,
encrypted, TLS only, access logs, lifecycle rules), its functions on Node.js 22 (one esbuild bundle,
DuckDB in a layer, x86_64), Step Functions state machines from the same ASL, EventBridge Scheduler
schedules (UTC), S3 triggers, DynamoDB tables, Kinesis streams, Glue tables, an Athena workgroup,
Redshift Serverless when the pipeline loads a warehouse, and an SNS topic with alarms. Every
function has its own least-privilege role. Synthesis fails on any cdk-nag AwsSolutions finding
that is not acknowledged with a reason. No Docker is needed.

Deploying needs AWS credentials from the standard chain (AWS_PROFILE, AWS_ACCESS_KEY_ID/...,
an instance role) and a bootstrapped account/region (npx cdk bootstrap, once). Alerts go to the
e-mail of the stack parameter AlertEmail (cdk deploy --parameters sluice-nba:AlertEmail=me@x.org).

Examples:
  sluice deploy --synth                        all five stacks into ./cdk.out
  sluice deploy --synth --out /tmp/cdk gharchive
  sluice deploy --synth --disable warehouse schedules tolls
  AWS_PROFILE=dev AWS_REGION=eu-west-1 sluice deploy gharchive
docs/deploy.md has the resources, switches and cdk-nag acknowledgements.`,
    )
    .action(async (names: string[], flags: DeployFlags) => {
      const selected = names.length > 0 ? names : pipelineNames;
      for (const name of selected) {
        if (!pipelines[name])
          throw new UsageError(`unknown pipeline "${name}": expected one of ${pipelineNames.join(', ')}`);
      }
      const switches: Record<string, boolean> = {};
      for (const component of flags.disable ?? []) {
        const key = COMPONENTS[component as keyof typeof COMPONENTS];
        if (!key)
          throw new UsageError(
            `--disable ${component}: expected one of ${Object.keys(COMPONENTS).join(', ')}`,
          );
        switches[key] = false;
      }
      const approval = flags.requireApproval ?? 'never';
      if (!(APPROVALS as readonly string[]).includes(approval))
        throw new UsageError(`--require-approval ${approval}: expected one of ${APPROVALS.join(', ')}`);

      // Fail fast, before the slow synthesis, when a deployment could not authenticate.
      if (!flags.synth) await checkCredentials();

      const outdir = path.resolve(flags.out ?? 'cdk.out');
      const began = performance.now();
      const { synthesize } = await import('../../deploy/app.ts');
      const result = await synthesize({
        pipelines: selected.map((name) => pipelines[name]).filter((p) => p !== undefined),
        outdir,
        switches,
      });
      const elapsed = performance.now() - began;
      if (flags.json) {
        printJson({
          outdir: result.outdir,
          stacks: result.stacks,
          nag: {
            pack: 'AwsSolutions',
            unacknowledged: result.nag.violations.length,
            acknowledged: result.nag.acknowledgements.length,
          },
          bundle: { bytes: result.bundle.bytes, companions: result.bundle.companions },
        });
      } else {
        const lines = [
          `synthesized ${result.stacks.length} stack(s) into ${result.outdir} in ${formatDuration(elapsed)}`,
        ];
        for (const stack of result.stacks) {
          lines.push(
            `  ${stack.stackName.padEnd(18)} ${String(stack.resourceCount).padStart(4)} resources  ${stack.templatePath}`,
          );
        }
        lines.push(
          `cdk-nag AwsSolutions: ${result.nag.violations.length} unacknowledged finding(s), ${result.nag.acknowledgements.length} acknowledged with a reason (docs/deploy.md)`,
        );
        lines.push(`lambda bundle: ${formatBytes(result.bundle.bytes)} (one asset shared by every function)`);
        process.stdout.write(`${lines.join('\n')}\n`);
      }
      if (flags.synth) return;

      const cdkBin = path.resolve(
        path.dirname(new URL(import.meta.url).pathname),
        '../../../node_modules/aws-cdk/bin/cdk',
      );
      const args = [
        cdkBin,
        'deploy',
        '--app',
        result.outdir,
        ...result.stacks.map((s) => s.stackName),
        '--require-approval',
        approval,
      ];
      process.stdout.write(`running: cdk ${args.slice(1).join(' ')}\n`);
      const code = await new Promise<number>((resolve, reject) => {
        const child = spawn(process.execPath, args, { stdio: 'inherit' });
        child.on('error', reject);
        child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0)));
      });
      if (code !== 0) {
        throw new SluiceError(`cdk deploy exited with code ${code}; its output above says why`, {
          code: 'deploy_failed',
          exitCode: ExitCode.internal,
        });
      }
    });
}
