import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/** A cdk-nag finding nobody acknowledged. */
export interface NagViolation {
  /** Rule id, with the finding for multi-finding rules: `AwsSolutions-IAM5[Resource::*]`. */
  readonly ruleId: string;
  readonly severity: 'error' | 'warning' | string;
  readonly description: string;
  /** Construct paths of the resources it was found on. */
  readonly paths: readonly string[];
}

/** An acknowledged finding: where, which rule, why. */
export interface NagAcknowledgement {
  readonly path: string;
  readonly ruleId: string;
  readonly reason: string;
}

/** What cdk-nag's AwsSolutions pack says about a construct tree. */
export interface NagReport {
  readonly violations: readonly NagViolation[];
  readonly acknowledgements: readonly NagAcknowledgement[];
}

/**
 * Adds cdk-nag's AwsSolutions checks to `app` with the cdk-nag 3 API
 * (`Validations.of(app).addPlugins(new AwsSolutionsChecks(app))`, node_modules/cdk-nag/README.md):
 * `app.synth()` then fails on any finding not acknowledged with `Validations.of(c).acknowledge`.
 * @returns the pack, for {@link nagReport}.
 */
export function addNagChecks(app: cdk.App): AwsSolutionsChecks {
  const pack = new AwsSolutionsChecks(app);
  cdk.Validations.of(app).addPlugins(pack);
  return pack;
}

/**
 * Runs the AwsSolutions checks over `scope` now (without synthesizing) and lists the findings left
 * unacknowledged and every acknowledgement with its reason.
 */
export function nagReport(scope: IConstruct, pack: AwsSolutionsChecks = new AwsSolutionsChecks()): NagReport {
  const result = pack.validateScope(scope);
  const violations: NagViolation[] = result.violations.map((v) => ({
    ruleId: v.ruleName,
    severity: v.severity ?? 'error',
    description: v.description,
    paths: v.violatingResources.map((r) => r.constructPath ?? r.resourceLogicalId ?? '?'),
  }));
  return { violations, acknowledgements: acknowledgementsOf(scope) };
}

/** Every `Validations.of(c).acknowledge(...)` under `scope`, in tree order. */
export function acknowledgementsOf(scope: IConstruct): NagAcknowledgement[] {
  const out: NagAcknowledgement[] = [];
  for (const construct of scope.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY || !entry.data) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        out.push({ path: construct.node.path, ruleId: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return out;
}

/** Multi-line text of the violations, for errors and the CLI. */
export function formatViolations(violations: readonly NagViolation[]): string {
  return violations
    .map(
      (v) =>
        `  [${v.severity}] ${v.ruleId}: ${v.description}\n${v.paths.map((p) => `      at ${p}`).join('\n')}`,
    )
    .join('\n');
}
