/**
 * Data-quality checks and metrics, first-class in every pipeline: declared next to the datasets,
 * evaluated on the rows about to be published, recorded in the queryable tables
 * `sluice.quality_results` and `sluice.quality_metrics`, and shown by `sluice runs`.
 *
 * Severity decides what a failing check does:
 * - `warn`: the rows publish; the failure is recorded (and logged);
 * - `quarantine`: the failing rows go to the quarantine layer with the check's name as the reason;
 *   the rest publishes (row-level checks only: `not_null`, `unique`, `accepted_values`,
 *   `expression`);
 * - `block`: nothing of the unit publishes; the run fails with a {@link QualityBlockedError} (an
 *   alert under `sluice up`), and previously published data stays as it was.
 */

import { ExitCode, SluiceError } from './errors.ts';

/** What a failing check does. */
export type CheckSeverity = 'warn' | 'quarantine' | 'block';

/** A declarative check on the rows of one table (the unit being written). */
export type CheckDefinition = (
  | { readonly kind: 'not_null'; readonly column: string }
  /** No two rows share these columns (within the unit; the dataset writer handles the lake). */
  | { readonly kind: 'unique'; readonly columns: readonly string[] }
  | {
      readonly kind: 'accepted_values';
      readonly column: string;
      readonly values: readonly (string | number)[];
    }
  /** The unit's row count is within [min, max] (either bound optional). Table-level: warn or block. */
  | { readonly kind: 'row_count'; readonly min?: number; readonly max?: number }
  /** The newest value of `column` (a timestamp, UTC) is at most `maxAgeHours` old. Table-level. */
  | { readonly kind: 'freshness'; readonly column: string; readonly maxAgeHours: number }
  /** A SQL predicate (DuckDB dialect) every row must satisfy, e.g. `transaction_amount BETWEEN 0 AND 10`. */
  | { readonly kind: 'expression'; readonly predicate: string }
) & {
  /** Unique within the table; default derived from kind and columns (`not_null(id)`). */
  readonly name?: string;
  readonly severity: CheckSeverity;
  /** Why the check exists, for people reading results. */
  readonly description?: string;
};

/** The checks of one table of a pipeline. */
export interface TableChecks {
  /** Dataset (or warehouse table) name, e.g. `events`. */
  readonly table: string;
  readonly checks: readonly CheckDefinition[];
}

/** The outcome of one check in one run. A row of `sluice.quality_results`. */
export interface CheckResult {
  readonly pipeline: string;
  readonly table: string;
  readonly runId: string;
  /** The write unit checked (an hour file, a date), when any. */
  readonly unit?: string;
  readonly check: string;
  readonly kind: CheckDefinition['kind'];
  readonly severity: CheckSeverity;
  readonly status: 'pass' | 'fail';
  /** Rows that failed a row-level check; for table-level checks 0 or 1. */
  readonly failingRows: number;
  /** Rows checked. */
  readonly rows: number;
  /** What the failure caused. */
  readonly action: 'none' | 'warned' | 'quarantined' | 'blocked';
  /** E.g. the observed row count or newest timestamp. */
  readonly detail?: string;
  /** ISO-8601 UTC. */
  readonly at: string;
}

/** A per-run statistic. A row of `sluice.quality_metrics`. */
export interface QualityMetric {
  readonly pipeline: string;
  readonly table: string;
  readonly runId: string;
  readonly unit?: string;
  readonly metric: string;
  /** Numeric value, or null for a text-only metric (e.g. the top quote). */
  readonly value: number | null;
  readonly text?: string;
  /** ISO-8601 UTC. */
  readonly at: string;
}

/** The default name of a check: `not_null(id)`, `unique(a,b)`, `row_count`, ... */
export function checkName(check: CheckDefinition): string {
  if (check.name) return check.name;
  switch (check.kind) {
    case 'not_null':
    case 'accepted_values':
    case 'freshness':
      return `${check.kind}(${check.column})`;
    case 'unique':
      return `unique(${check.columns.join(',')})`;
    case 'row_count':
      return 'row_count';
    case 'expression':
      return `expression(${check.predicate})`;
  }
}

/** Whether a check judges single rows (so `quarantine` can move just the failing ones). */
export function isRowLevel(check: CheckDefinition): boolean {
  return check.kind !== 'row_count' && check.kind !== 'freshness';
}

/**
 * A `block` check failed: nothing of the unit was published. Its `name` lets an ASL `Catch` or
 * `Retry` match it (`QualityBlockedError`); it is not retryable.
 */
export class QualityBlockedError extends SluiceError {
  readonly results: readonly CheckResult[];
  constructor(message: string, results: readonly CheckResult[]) {
    super(message, { code: 'quality_blocked', exitCode: ExitCode.qualityBlocked });
    this.results = results;
  }
}
