import type { FunctionHandler } from '../../src/core/function.ts';
import type { ConfigReader, PipelineRuntime } from '../../src/core/pipeline.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import { type RecordCounts, RunLog, type RunStatus } from '../../src/core/run.ts';
import { bearerTokenFromEnv } from '../../src/sources/twitter/filtered-stream.ts';
import { collectEnvelopes, DEFAULT_TWEET_STREAM, drainTampering } from './continuous.ts';
import { PIPELINE } from './definition.ts';
import { newRunId, tamperingDetails } from './run.ts';
import type { TamperingConfig } from './tampering.ts';

type Event = { readonly [key: string]: JsonValue | undefined } | null;

function numberOf(value: JsonValue | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

/** The job's numbers from the configuration (seconds -> ms); defaults: the original's. */
export function tamperingConfigFrom(config: ConfigReader): Partial<TamperingConfig> {
  const out: { -readonly [K in keyof TamperingConfig]?: number } = {};
  for (const [key, field] of [
    ['window_seconds', 'windowMs'],
    ['allowed_lateness_seconds', 'allowedLatenessMs'],
    ['out_of_orderness_seconds', 'outOfOrdernessMs'],
    ['idleness_seconds', 'idlenessMs'],
  ] as const) {
    const value = config.get(key);
    if (value === undefined || value === null || value === '') continue;
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0)
      throw new TypeError(`config nba.${key} is not a number of seconds: ${value}`);
    out[field] = n * 1000;
  }
  return out;
}

/**
 * The nba functions (Lambda signature), each the only Task of its workflow and started every
 * minute by its schedule under `sluice up`:
 * - `nba-tampering` -> `{run_id, stream, records, counts, alerts, notified, stopped_because, checkpoint}`:
 *   one invocation of the continuous tampering job (pipelines/nba/continuous.ts);
 * - `nba-collect` `{replay_envelopes?, again?}` -> `{mode, stream, read, sent, ...}`: the collector.
 * Each records a step in the run log (`tampering`, `collect`; `skipped` when there was nothing).
 * Configuration is read at each call.
 */
export function nbaHandlers(runtime: PipelineRuntime): Record<string, FunctionHandler> {
  const { ctx, config, notifier } = runtime;
  const streamName = () => {
    const configured = config.get('stream_name');
    return typeof configured === 'string' && configured ? configured : DEFAULT_TWEET_STREAM;
  };
  const record = async (
    runId: string,
    step: string,
    unit: string,
    work: () => Promise<{
      status: RunStatus & ('succeeded' | 'skipped');
      counts: RecordCounts;
      details: { [key: string]: JsonValue };
    }>,
  ) => {
    const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
    const handle = await runs.start({ runId, pipeline: PIPELINE, step, unit });
    try {
      const outcome = await work();
      await handle.finish(outcome);
    } catch (error) {
      await handle
        .finish({ status: 'failed', error: error instanceof Error ? error.message : String(error) })
        .catch(() => {});
      throw error;
    }
  };

  return {
    'nba-tampering': async (_event, context) => {
      const runId = newRunId(ctx.clock.now());
      const stream = streamName();
      let output: JsonValue = null;
      await record(runId, 'tampering', stream, async () => {
        const result = await drainTampering(ctx, {
          runId,
          notifier,
          stream,
          shards: numberOf(config.get('stream_shards'), 1),
          maxMs: numberOf(config.get('drain_seconds'), 50) * 1000,
          config: tamperingConfigFrom(config),
          // Leave time to write the outputs and the checkpoint before the Lambda timeout.
          shouldStop: () => context.getRemainingTimeInMillis() < 60_000,
        });
        output = {
          run_id: runId,
          stream,
          records: result.drain.records,
          counts: { ...result.counts },
          control_changes: result.controlChanges.length,
          alerts: result.alerts.length,
          notified: result.notified,
          written: result.written,
          stopped_because: result.drain.stoppedBecause,
          checkpoint: { restored: result.drain.restoredCheckpoint, saved: result.drain.savedCheckpoint },
          keys: result.keys.slice(),
        };
        return {
          status: result.drain.records === 0 && result.alerts.length === 0 ? 'skipped' : 'succeeded',
          counts: result.counts,
          details: {
            ...tamperingDetails(result.stats),
            notified: result.notified,
            written: result.written,
            already_present: result.alreadyPresent,
            control_changes: result.controlChanges.length,
            stopped_because: result.drain.stoppedBecause,
            checkpoint: result.drain.savedCheckpoint,
            keys: result.keys.slice(),
          },
        };
      });
      return output;
    },

    'nba-collect': async (event) => {
      const e = (event ?? {}) as Event;
      const runId = newRunId(ctx.clock.now());
      const stream = streamName();
      const replay = e?.replay_envelopes ?? config.get('replay_envelopes');
      const token = bearerTokenFromEnv();
      let output: JsonValue = null;
      await record(runId, 'collect', stream, async () => {
        const result = await collectEnvelopes(ctx, {
          runId,
          stream,
          shards: numberOf(config.get('stream_shards'), 1),
          ...(token ? { bearerToken: token, liveSeconds: numberOf(config.get('live_seconds'), 50) } : {}),
          ...(typeof replay === 'string' && replay ? { replayFile: replay } : {}),
          again: e?.again === true,
        });
        output = { ...result };
        const filtered = result.mode === 'live' ? result.rejected : 0;
        return {
          status: result.sent === 0 ? 'skipped' : 'succeeded',
          counts: {
            read: result.read,
            loaded: result.sent,
            duplicates: 0,
            quarantined: result.rejected - filtered,
            filtered,
          },
          details: { mode: result.mode, file: result.file ?? null, status: result.status ?? null },
        };
      });
      return output;
    },
  };
}
