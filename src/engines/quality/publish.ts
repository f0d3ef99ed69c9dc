import type { Logger } from '../../core/logger.ts';
import { assertNotBlocked, type EvaluateChecksResult, logCheckFailures } from './checks.ts';
import { type QualityStorePorts, recordResults } from './store.ts';

/**
 * What every pipeline does with evaluated checks before publishing: records the results in
 * `sluice.quality_results`, logs each failure, and stops the publish when a `block` check failed.
 * @throws {QualityBlockedError} naming the failed `block` checks (after the results are recorded).
 */
export async function settleChecks(
  context: { readonly backend: QualityStorePorts; readonly logger: Logger },
  checked: EvaluateChecksResult,
): Promise<void> {
  await recordResults(context.backend, checked.results);
  logCheckFailures(context.logger, checked.results);
  assertNotBlocked(checked);
}
