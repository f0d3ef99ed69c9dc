import type { S3Event } from '../../src/core/events.ts';
import type { FunctionHandler } from '../../src/core/function.ts';
import type { PipelineRuntime } from '../../src/core/pipeline.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import { RunLog } from '../../src/core/run.ts';
import { eventObjectKey } from '../../src/core/trigger.ts';
import { GHARCHIVE_URL } from './definition.ts';
import { JOB_ID, landNewHours, newRunId, transformStep } from './run.ts';

/**
 * The gharchive functions, with the Lambda signature, used by its workflows:
 * - `gharchive-ingest` (schedule `rate(1 hour)` -> workflow `gharchive-ingest`): lands every
 *   published hour after the bookmark; answers `{landed, stoppedAt, more, bookmark}`;
 * - `gharchive-transform` (object-created on `landing/gharchive/*.json.gz` -> workflow
 *   `gharchive-transform`): transforms each landed file of the S3 event; answers per file counts.
 * The source URL is read from the `config` table (`source_url`) at each call, so a change applies
 * to the next run without a restart.
 */
export function gharchiveHandlers(runtime: PipelineRuntime): Record<string, FunctionHandler> {
  const { ctx, config } = runtime;
  return {
    'gharchive-ingest': async (_event, context) => {
      const source = config.get('source_url');
      const result = await landNewHours(ctx, {
        runId: newRunId(ctx.clock.now()),
        sourceUrl: typeof source === 'string' && source.length > 0 ? source : GHARCHIVE_URL,
        remainingMs: () => context.getRemainingTimeInMillis(),
      });
      return { ...result } as unknown as JsonValue;
    },
    'gharchive-transform': async (event) => {
      const records = (event as unknown as S3Event | null)?.Records;
      if (!Array.isArray(records) || records.length === 0) {
        throw new TypeError('gharchive-transform expects an S3 event: { "Records": [ ... ] }');
      }
      const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
      const runId = newRunId(ctx.clock.now());
      const transformed: JsonValue[] = [];
      for (const record of records) {
        const key = eventObjectKey(record);
        const result = await transformStep(ctx, runs, { runId, landing: { layer: 'landing', key } });
        transformed.push({
          key,
          counts: { ...result.counts },
          partitions: result.partitions.map((p) => p.prefix),
          quarantine: result.quarantine?.key ?? null,
          damage: result.damage?.message ?? null,
        });
      }
      return { pipeline: JOB_ID, transformed };
    },
  };
}
