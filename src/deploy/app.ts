import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import * as cdk from 'aws-cdk-lib';
import type { PipelineDefinition } from '../core/pipeline.ts';
import { type BundleOptions, bundleRuntime, type RuntimeBundle } from './bundle.ts';
import { addNagChecks, formatViolations, type NagReport, nagReport } from './nag.ts';
import { type ComponentSwitches, PipelineStack, type PipelineStackProps } from './pipeline-stack.ts';

/** CloudFormation stack name of a pipeline: `sluice-<pipeline>`. */
export function stackNameOf(pipeline: string): string {
  return `sluice-${pipeline}`;
}

/**
 * Feature flags the stacks rely on: server access logs are granted to the logging service by a
 * bucket policy (not the legacy `LogDeliveryWrite` ACL, which BUCKET_OWNER_ENFORCED buckets refuse).
 */
export const APP_CONTEXT: Readonly<Record<string, unknown>> = {
  '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true,
};

/** Options of {@link buildApp}. */
export interface BuildAppOptions {
  /** The pipelines to deploy, one stack each. */
  readonly pipelines: readonly PipelineDefinition[];
  /** Cloud assembly directory (default `cdk.out`). */
  readonly outdir?: string;
  /** A bundle built before (tests share one); otherwise one is built with {@link bundleOptions}. */
  readonly bundle?: RuntimeBundle;
  readonly bundleOptions?: BundleOptions;
  /** Component switches for every stack (context `enable*` keys override nothing given here). */
  readonly switches?: Partial<ComponentSwitches>;
  /** CDK context (e.g. `{ enableWarehouse: 'false' }`). */
  readonly context?: Record<string, unknown>;
  /** Further props for every stack (expiry days, log retention, env). */
  readonly stackProps?: Omit<PipelineStackProps, 'pipeline' | 'bundle' | 'switches'>;
}

/** A built app, not yet synthesized. */
export interface BuiltApp {
  readonly app: cdk.App;
  readonly stacks: readonly PipelineStack[];
  readonly bundle: RuntimeBundle;
}

/**
 * Builds the CDK app: bundles the Lambda runtime once, creates one {@link PipelineStack} per
 * pipeline (`sluice-<pipeline>`) and adds cdk-nag's AwsSolutions checks.
 * @throws {Error} from bundling (see {@link bundleRuntime}) or when a definition is inconsistent
 *   (a workflow calling an undefined function, a schedule starting an undefined workflow).
 */
export async function buildApp(options: BuildAppOptions): Promise<BuiltApp> {
  const bundle = options.bundle ?? (await bundleRuntime(options.bundleOptions));
  const app = new cdk.App({
    outdir: options.outdir ?? 'cdk.out',
    context: { ...APP_CONTEXT, ...options.context },
  });
  const stacks = options.pipelines.map(
    (pipeline) =>
      new PipelineStack(app, stackNameOf(pipeline.name), {
        ...options.stackProps,
        pipeline,
        bundle,
        ...(options.switches ? { switches: options.switches } : {}),
      }),
  );
  addNagChecks(app);
  return { app, stacks, bundle };
}

/** One synthesized stack. */
export interface SynthesizedStack {
  readonly stackName: string;
  readonly pipeline: string;
  /** Absolute path of the CloudFormation template. */
  readonly templatePath: string;
  /** Resources in the template. */
  readonly resourceCount: number;
}

/** Result of {@link synthesize}. */
export interface SynthResult {
  readonly outdir: string;
  readonly stacks: readonly SynthesizedStack[];
  readonly nag: NagReport;
  readonly bundle: RuntimeBundle;
}

/**
 * Builds and synthesizes the app into `outdir`, after checking it with cdk-nag.
 * @throws {Error} listing every unacknowledged cdk-nag finding (nothing is written then), or from
 *   {@link buildApp}.
 */
export async function synthesize(options: BuildAppOptions): Promise<SynthResult> {
  const built = await buildApp(options);
  const nag = nagReport(built.app);
  if (nag.violations.length > 0) {
    if (!options.bundle && built.bundle.temporary)
      rmSync(built.bundle.workDir, { recursive: true, force: true });
    throw new Error(
      `cdk-nag AwsSolutions found ${nag.violations.length} unacknowledged finding(s):\n${formatViolations(nag.violations)}`,
    );
  }
  let assembly: ReturnType<cdk.App['synth']>;
  try {
    assembly = built.app.synth();
  } finally {
    // Synthesis copied the code and layer into the cloud assembly: a temp bundle is no longer needed.
    if (!options.bundle && built.bundle.temporary)
      rmSync(built.bundle.workDir, { recursive: true, force: true });
  }
  const stacks = built.stacks.map((stack) => {
    const artifact = assembly.getStackByName(stack.stackName);
    const templatePath = path.resolve(assembly.directory, artifact.templateFile);
    const template = existsSync(templatePath)
      ? (JSON.parse(readFileSync(templatePath, 'utf8')) as { Resources?: Record<string, unknown> })
      : {};
    return {
      stackName: stack.stackName,
      pipeline: stack.pipeline.name,
      templatePath,
      resourceCount: Object.keys(template.Resources ?? {}).length,
    };
  });
  return { outdir: path.resolve(assembly.directory), stacks, nag, bundle: built.bundle };
}
