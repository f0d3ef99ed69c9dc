import type { FunctionHandler } from '../../src/core/function.ts';
import type { PipelineRuntime } from '../../src/core/pipeline.ts';
import type { JsonValue } from '../../src/core/ports/kv-table.ts';
import { RunLog } from '../../src/core/run.ts';
import { bearerTokenFromEnv } from '../../src/sources/twitter/filtered-stream.ts';
import { loadAnalytical, logUpdate, refreshDashboard } from './analytical.ts';
import { consume } from './consumer.ts';
import { DEFAULT_STREAM } from './definition.ts';
import { type ProducerSource, produce } from './producer.ts';
import { newRunId, stagingStep, step } from './run.ts';
import { bundledSamples, liveSource, parseRules } from './sources.ts';
import { deleteStaging } from './staging.ts';
import { deleteStreamIfDrained, ensureStream } from './stream.ts';

type Event = { readonly [key: string]: JsonValue | undefined } | null;

function objectOf(value: JsonValue | undefined): { [key: string]: JsonValue } {
  return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
}

function numberOf(value: JsonValue | undefined, fallback: number): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : fallback;
}

function stringsOf(value: JsonValue | undefined): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/**
 * The hashtags functions (Lambda signature), used by its two state machines:
 *
 * KinesisLanding (`workflows/kinesis-landing.asl.json`):
 * - `hashtags-create-stream` -> `{name, shards, created, run_id}` (stored at `$.stream`);
 * - `hashtags-consumer` `{stream: {name, run_id}}` -> the consumer's counts and landed keys;
 * - `hashtags-producer` `{stream: {name, run_id}, input_files?, replay_rate?, again?}` -> counts.
 *   Without `input_files`, config `source` decides: `live` (needs `TWITTER_BEARER_TOKEN`),
 *   `replay` (`replay_files`, or the bundled samples), `auto` (live when a token is set);
 * - `hashtags-delete-stream` `{stream: {name}}` -> `{deleted, unconsumed}`.
 *
 * LandingAnalytical (`workflows/landing-analytical.asl.json`):
 * - `hashtags-delete-staging` -> `{objects, partitions}`;
 * - `hashtags-process-staging` `{landing_keys?}` -> `{run_id, rows, counts, ...}` (landing
 *   objects modified in the last `staging_lookback_hours` unless keys are given);
 * - `hashtags-log-update` `{table_name, records_inserted, run_id}`;
 * - `hashtags-load-analytical` `{run_id}` -> `{loaded, duplicates, read, partitions}`;
 * - `hashtags-refresh-dashboard` -> `{refreshed_at, rows}`.
 *
 * Configuration is read at each call, so `sluice config set hashtags ...` applies to the next run.
 */
export function hashtagsHandlers(runtime: PipelineRuntime): Record<string, FunctionHandler> {
  const { ctx, config } = runtime;
  const streamOf = (event: Event) => {
    const stream = objectOf(event?.stream);
    const configured = config.get('stream_name');
    return {
      name:
        typeof stream.name === 'string'
          ? stream.name
          : typeof configured === 'string' && configured
            ? configured
            : DEFAULT_STREAM,
      runId: typeof stream.run_id === 'string' ? stream.run_id : undefined,
    };
  };
  const runsOf = () => RunLog.open(ctx.backend.kv, ctx.clock);

  return {
    'hashtags-create-stream': async () => {
      const name = streamOf(null).name;
      const shards = numberOf(config.get('stream_shards'), 1);
      const result = await ensureStream(ctx, { stream: name, shards });
      return { name, shards: result.shards, created: result.created, run_id: newRunId(ctx.clock.now()) };
    },

    'hashtags-consumer': async (event, context) => {
      const stream = streamOf(event as Event);
      if (!stream.runId)
        throw new TypeError('hashtags-consumer expects {"stream": {"name": ..., "run_id": ...}}');
      const runId = stream.runId;
      const result = await step(await runsOf(), runId, 'land', stream.name, async () => {
        const consumed = await consume(ctx, {
          runId,
          stream: stream.name,
          producerRunId: runId,
          maxMs: numberOf(config.get('consumer_seconds'), 600) * 1000,
          producerRetryGraceMs: numberOf(config.get('producer_retry_grace_seconds'), 40) * 1000,
          remainingMs: () => context.getRemainingTimeInMillis(),
        });
        return {
          result: consumed,
          counts: consumed.counts,
          details: { landed: consumed.landed.map((l) => l.key), stopped_because: consumed.stoppedBecause },
        };
      });
      return {
        stream: stream.name,
        counts: { ...result.counts },
        landed: result.landed.map((l) => l.key),
        quarantine: result.quarantine.slice(),
        stopped_because: result.stoppedBecause,
      };
    },

    'hashtags-producer': async (event) => {
      const e = (event ?? {}) as Event;
      const stream = streamOf(e);
      if (!stream.runId)
        throw new TypeError('hashtags-producer expects {"stream": {"name": ..., "run_id": ...}}');
      const runId = stream.runId;
      const inputFiles = stringsOf(e?.input_files);
      let stop: (() => void) | undefined;
      let source: ProducerSource;
      const mode = config.get('source');
      const token = bearerTokenFromEnv();
      if (inputFiles.length === 0 && (mode === 'live' || (mode !== 'replay' && token))) {
        if (!token)
          throw new TypeError('config hashtags.source is "live" but TWITTER_BEARER_TOKEN is not set');
        const live = await liveSource(ctx, {
          bearerToken: token,
          seconds: numberOf(config.get('live_seconds'), 60),
          rules: parseRules(config.get('rules')),
        });
        source = live.source;
        stop = live.stop;
      } else {
        const configured = stringsOf(config.get('replay_files'));
        source = {
          kind: 'replay',
          files: inputFiles.length > 0 ? inputFiles : configured.length > 0 ? configured : bundledSamples(),
          ratePerSecond: numberOf(e?.replay_rate ?? config.get('replay_rate'), 0),
          again: e?.again === true,
        };
      }
      try {
        const result = await step(await runsOf(), runId, 'produce', stream.name, async () => {
          const produced = await produce(ctx, { runId, stream: stream.name, source });
          return {
            result: produced,
            counts: produced.counts,
            details: { files: produced.files.map((f) => ({ file: f.file, status: f.status })) },
          };
        });
        return {
          stream: stream.name,
          counts: { ...result.counts, rejections: { ...result.counts.rejections } },
          files: result.files.map((f) => ({ file: f.file, status: f.status })),
          quarantine: result.quarantine.slice(),
        };
      } finally {
        stop?.();
      }
    },

    'hashtags-delete-stream': async (event) => {
      const result = await deleteStreamIfDrained(ctx, streamOf(event as Event).name);
      return { ...result };
    },

    'hashtags-delete-staging': async () => {
      const result = await deleteStaging(ctx, newRunId(ctx.clock.now()));
      return { ...result };
    },

    'hashtags-process-staging': async (event) => {
      const keys = stringsOf((event as Event)?.landing_keys);
      const runId = newRunId(ctx.clock.now());
      const result = await stagingStep(ctx, await runsOf(), {
        runId,
        selection:
          keys.length > 0 ? { keys } : { lookbackHours: numberOf(config.get('staging_lookback_hours'), 2) },
      });
      return {
        run_id: runId,
        rows: result.rows,
        objects: result.objects.length,
        counts: { ...result.counts },
        partitions: result.partitions.slice(),
        quarantine: result.quarantine ?? null,
      };
    },

    'hashtags-log-update': async (event) => {
      const e = objectOf(event);
      if (typeof e.table_name !== 'string' || typeof e.records_inserted !== 'number') {
        throw new TypeError(
          'hashtags-log-update expects {"table_name": "...", "records_inserted": N, "run_id": "..."}',
        );
      }
      const runId = typeof e.run_id === 'string' ? e.run_id : newRunId(ctx.clock.now());
      return logUpdate(ctx, { runId, tableName: e.table_name, recordsInserted: e.records_inserted });
    },

    'hashtags-load-analytical': async (event) => {
      const e = objectOf(event);
      const runId = typeof e.run_id === 'string' ? e.run_id : newRunId(ctx.clock.now());
      const result = await step(await runsOf(), runId, 'analytical', undefined, async () => {
        const loaded = await loadAnalytical(ctx, { runId });
        return { result: loaded, counts: loaded.counts, details: { partitions: loaded.partitions.slice() } };
      });
      return {
        read: result.counts.read,
        loaded: result.counts.loaded,
        duplicates: result.counts.duplicates,
        partitions: result.partitions.slice(),
      };
    },

    'hashtags-refresh-dashboard': async () => {
      return { ...(await refreshDashboard(ctx)) };
    },
  };
}
