/**
 * `sluice run nba`: the nba pipeline end to end on a list of envelopes (REFERENCE.md section 5).
 *
 * 1. Reference data: players into `players` / `players_by_name`; the `--control` changes into
 *    `tampering_control` (a put per `{team, control}`, a delete for `control: null`).
 * 2. The control stream: the table's state before this run (a scan, as INSERTs: earlier runs'
 *    controls stay in force, as in the original's DynamoDB table), then this run's changes read
 *    back from the table's change stream (`readChanges` from the position taken before the writes,
 *    each record through {@link controlChangeFromRecord}). So the job sees exactly the
 *    INSERT/MODIFY/REMOVE records DynamoDB Streams would deliver.
 * 3. The tampering job ({@link TamperingJob}): the envelopes in file order on one split (event time
 *    from `event_time`), ended at the end of the input (every window fires). Sinks:
 *    - alerts: the notifier (severity `warning`, title = the REFERENCE.md message) and the
 *      dataset `nba.tampering_alerts` (merge on the alert id). Only alerts whose id is not in the
 *      dataset yet are notified and written, notifications first: a re-run adds no row and sends
 *      no notification; a crash between the two re-sends on the next run (at least once).
 *    - `late` side output: the whole envelopes, NDJSON (gzip) at `landing/nba/late/<input>.ndjson.gz`;
 *    - `all-tweets` side output: one compact record per envelope (tweet id, event time, username,
 *      source / destination player and team, why it was dropped) at
 *      `landing/nba/all-tweets/<input>.ndjson.gz`.
 *    `<input>` is `replay-<first 16 hex of SHA-256 of the envelopes>`: a re-run of the same input
 *    rewrites the same objects instead of adding copies.
 * 4. The batch path ({@link runBatchPath}): delivery stream -> landing -> dedup -> daily aggregate
 *    -> warehouse.
 *
 * Each run records the steps `tampering`, `alerts` and `batch` in the run log with counts that
 * reconcile ({@link tamperingCounts}, {@link alertsRunOutcome}). The continuous job under `sluice
 * up` (continuous.ts) reuses the sinks and counts.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Alert } from '../../src/core/alert.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { describeError } from '../../src/core/errors.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import { allPages, type ChangeRecord, type JsonValue } from '../../src/core/ports/kv-table.ts';
import type { Notifier } from '../../src/core/ports/notifier.ts';
import type { LocalObjectFile } from '../../src/core/ports/object-store.ts';
import type { CheckResult } from '../../src/core/quality.ts';
import { newRunId, type RecordCounts, RunLog } from '../../src/core/run.ts';
import { writeDatasetUnit } from '../../src/engines/duckdb/dataset-writer.ts';
import { DuckDb, quoteString } from '../../src/engines/duckdb/duckdb.ts';
import { evaluateChecks, tableChecks } from '../../src/engines/quality/checks.ts';
import { settleChecks } from '../../src/engines/quality/publish.ts';
import { type BatchPathResult, runBatchPath } from './batch.ts';
import { ALERTS_TABLE, alertsDataset, nbaPipeline, PIPELINE } from './definition.ts';
import type { Envelope, RejectedLine } from './envelopes.ts';
import { defaultPlayers, loadReferenceData, type PlayerRecord } from './reference.ts';
import {
  type AllTweetsRecord,
  type ControlChange,
  controlChangeFromRecord,
  type TamperingAlert,
  type TamperingConfig,
  TamperingJob,
  type TamperingStats,
} from './tampering.ts';

/** A new run id (`src/core/run.ts`), re-exported for this pipeline's callers. */
export { newRunId } from '../../src/core/run.ts';

/** A `--control` change: `control: null` removes the team's item (a REMOVE record). */
export interface ControlInput {
  readonly team: string;
  readonly control: boolean | null;
}

/** Options of {@link runNba}. */
export interface NbaRunOptions {
  /** In file order. */
  readonly envelopes: readonly Envelope[];
  /** Default: the bundled reference players ({@link defaultPlayers}). */
  readonly players?: readonly PlayerRecord[];
  /** Applied to `tampering_control` before the replay, in order. */
  readonly control?: readonly ControlInput[];
  readonly runId?: string;
  readonly notifier: Notifier;
  /** Lines of the input that were not envelopes: quarantined under `quarantine/nba/envelopes/`. */
  readonly rejected?: readonly RejectedLine[];
  /** Name of the input (a file), recorded with the quarantined lines. */
  readonly source?: string;
  /** The job's numbers (default: the original's, {@link DEFAULT_TAMPERING_CONFIG}). */
  readonly config?: Partial<TamperingConfig>;
  /** Run the batch path after the job (default true). */
  readonly batch?: boolean;
}

/** What {@link runNba} did. */
export interface NbaRunSummary {
  readonly runId: string;
  readonly input: {
    readonly envelopes: number;
    readonly rejected: number;
    /** The quarantined lines (with reasons), when some were rejected. */
    readonly quarantine?: string;
  };
  readonly reference: {
    readonly players: number;
    readonly names: number;
    /** Control changes fed to the job: the table's prior state, then this run's change records. */
    readonly controlChanges: readonly ControlChange[];
  };
  readonly tampering: {
    readonly stats: TamperingStats;
    /** Every alert of the replay, in emission order. */
    readonly alerts: readonly TamperingAlert[];
    /** `landing/...` keys of the side outputs. */
    readonly late: { readonly records: number; readonly key: string };
    readonly allTweets: { readonly records: number; readonly key: string };
    readonly ms: number;
  };
  readonly notified: {
    /** Alerts sent to the notifier (new ones). */
    readonly alerts: number;
    /** Alerts already in nba.tampering_alerts: neither notified nor written again. */
    readonly alreadyPresent: number;
    /** Channel failures, `<alert id>: <channel>: <error>`. */
    readonly failures: readonly string[];
  };
  readonly dataset: {
    readonly table: string;
    readonly written: number;
    readonly alreadyPresent: number;
    readonly checks: readonly CheckResult[];
  };
  readonly batch?: BatchPathResult;
  readonly batchMs?: number;
}

/** The notifier's alert for a tampering alert. */
export function alertOf(alert: TamperingAlert, at: Date, runId: string): Alert {
  return {
    severity: 'warning',
    title: alert.message,
    pipeline: PIPELINE,
    at: at.toISOString(),
    details: {
      id: alert.id,
      team: alert.team,
      tampering_player: alert.tamperingPlayer,
      total: alert.total,
      players: alert.players.join(', '),
      window_start: new Date(alert.window.start).toISOString(),
      window_end: new Date(alert.window.end).toISOString(),
      firing: alert.firing,
      run_id: runId,
    },
  };
}

/**
 * Run-log counts of the tampering job: `read` = records of the input (envelopes + lines or
 * records that were not envelopes) = `quarantined` (not envelopes) + `filtered` (not counted in any
 * window: unknown source, no athlete, unknown destination, suppressed by the control stream, late
 * beyond the allowed lateness) + `loaded` (assigned to a window on time or within the lateness;
 * same-team tweets among them, which windows never count: in the details). `stats` may be a
 * difference of two snapshots of the job's counters (one invocation of the continuous job).
 */
export function tamperingCounts(stats: TamperingStats, quarantined: number): RecordCounts {
  const filtered =
    stats.unknownSource + stats.noAthlete + stats.unknownDestination + stats.suppressed + stats.late;
  return {
    read: stats.tweets + quarantined,
    loaded: stats.tweets - filtered,
    duplicates: 0,
    quarantined,
    filtered,
  };
}

/** The job's counters as run-log details. */
export function tamperingDetails(stats: TamperingStats): { [key: string]: JsonValue } {
  return {
    unknown_source: stats.unknownSource,
    no_athlete: stats.noAthlete,
    unknown_destination: stats.unknownDestination,
    suppressed: stats.suppressed,
    late: stats.late,
    same_team: stats.sameTeam,
    alerts: stats.alerts,
  };
}

/** Run-log outcome of the alerts sink: read = alerts emitted = written + already in the dataset. */
export function alertsRunOutcome(
  emitted: number,
  written: Awaited<ReturnType<typeof sinkAlerts>>,
): { counts: RecordCounts; details: { [key: string]: JsonValue } } {
  return {
    counts: {
      read: emitted,
      loaded: written.dataset.written,
      duplicates: emitted - written.dataset.written,
      quarantined: 0,
    },
    details: {
      notified: written.notified.alerts,
      already_present: written.dataset.alreadyPresent,
      failures: written.notified.failures.slice(),
    },
  };
}

/**
 * Run-log outcome of the batch path: read = envelopes received by the delivery stream = dropped by
 * the transform (`filtered`) + failed (`quarantined`, with the dedup's quarantined lines) + the
 * delivered tweets, which the dedup splits into `loaded` and `duplicates`.
 */
function batchRunOutcome(batch: BatchPathResult): {
  counts: RecordCounts;
  details: { [key: string]: JsonValue };
} {
  const { stats } = batch.delivery;
  return {
    counts: {
      read: stats.received,
      loaded: batch.dedup.counts.loaded,
      duplicates: batch.dedup.counts.duplicates,
      quarantined: stats.failed + batch.dedup.counts.quarantined,
      filtered: stats.dropped,
    },
    details: {
      raw_objects: batch.delivery.rawObjects,
      partitions: batch.delivery.partitions,
      totals_rows: batch.aggregate.rows,
      warehouse: batch.warehouse.status,
      warehouse_rows: batch.warehouse.rows,
    },
  };
}

/** The compact `all-tweets` record stored in the lake. */
export function allTweetsLine(r: AllTweetsRecord): string {
  return JSON.stringify({
    id: r.envelope.data[0]?.id ?? null,
    event_time: r.envelope.event_time,
    username: r.envelope.includes?.users?.[0]?.username ?? null,
    source: r.source ? { account: r.source.account, name: r.source.name, team: r.source.team } : null,
    destination: r.destination ? { name: r.destination.name, team: r.destination.team } : null,
    dropped: r.dropped ?? null,
  });
}

/** Reads `tampering_control`'s change stream from `position` to its end. */
export async function readAllChanges(
  table: Awaited<ReturnType<typeof loadReferenceData>>['tables']['control'],
  position: Parameters<typeof table.readChanges>[0],
): Promise<ChangeRecord[]> {
  const records: ChangeRecord[] = [];
  let at = position;
  for (;;) {
    const read = await table.readChanges(at);
    if (read.records.length === 0) return records;
    records.push(...read.records);
    at = read.next;
  }
}

/** Runs the nba pipeline on `envelopes`: reference data, tampering job, batch path. See the module doc. */
export async function runNba(ctx: PipelineContext, options: NbaRunOptions): Promise<NbaRunSummary> {
  const runId = options.runId ?? newRunId(ctx.clock.now());
  const { objectStore } = ctx.backend;
  const envelopes = options.envelopes;

  // Quarantine first: what could not be read is kept whatever happens next.
  const rejected = options.rejected ?? [];
  let quarantine: string | undefined;
  if (rejected.length > 0) {
    const ref: ObjectRef = { layer: 'quarantine', key: `${PIPELINE}/envelopes/${runId}.ndjson` };
    const text = rejected
      .map((r) =>
        JSON.stringify({
          step: 'read',
          run_id: runId,
          source: options.source ?? null,
          line: r.line,
          reason: r.reason,
          raw: r.raw,
        }),
      )
      .join('\n');
    await objectStore.put(ref, `${text}\n`);
    quarantine = `quarantine/${ref.key}`;
  }

  // 1-2. Reference data and the control stream (see the module doc).
  const players = options.players ?? defaultPlayers().players;
  const loaded = await loadReferenceData(ctx, { players });
  const { control } = loaded.tables;
  const controlChanges: ControlChange[] = [];
  for await (const item of allPages((cursor) => control.scan(cursor ? { cursor } : {}))) {
    controlChanges.push({ eventName: 'INSERT', team: String(item.team), control: item.control === true });
  }
  const { next: before } = await control.readChanges({ type: 'LATEST' });
  for (const c of options.control ?? []) {
    if (typeof c.team !== 'string' || c.team === '')
      throw new Error(`a control change needs a team: ${JSON.stringify(c)}`);
    if (c.control === null) await control.delete({ team: c.team });
    else await control.put({ team: c.team, control: c.control === true });
  }
  for (const record of await readAllChanges(control, before))
    controlChanges.push(controlChangeFromRecord(record));

  // 3. The tampering job (one run-log record per step, counts reconciled: see tamperingCounts).
  const runs = await RunLog.open(ctx.backend.kv, ctx.clock);
  const tamperingRun = await runs.start({ runId, pipeline: PIPELINE, step: 'tampering', unit: 'replay' });
  const started = Date.now();
  const { job, alerts, late, all } = collectingJob(ctx, players, options.config);
  for (const change of controlChanges) job.control(change);
  const hash = createHash('sha256');
  for (const [i, envelope] of envelopes.entries()) {
    job.tweet(envelope, '0', i);
    hash.update(JSON.stringify(envelope)).update('\n');
  }
  job.end();
  const inputName = `replay-${hash.digest('hex').slice(0, 16)}`;
  const lateRef: ObjectRef = { layer: 'landing', key: `${PIPELINE}/late/${inputName}.ndjson.gz` };
  const allRef: ObjectRef = { layer: 'landing', key: `${PIPELINE}/all-tweets/${inputName}.ndjson.gz` };
  await objectStore.put(lateRef, gzipSync(late.length > 0 ? `${late.join('\n')}\n` : ''));
  await objectStore.put(allRef, gzipSync(all.length > 0 ? `${all.join('\n')}\n` : ''));

  const counts = tamperingCounts(job.stats, rejected.length);
  await tamperingRun.finish({
    status: 'succeeded',
    counts,
    details: { ...tamperingDetails(job.stats), late_key: `landing/${lateRef.key}` },
  });
  const alertsRun = await runs.start({ runId, pipeline: PIPELINE, step: 'alerts', unit: 'replay' });
  let written: Awaited<ReturnType<typeof sinkAlerts>>;
  try {
    written = await sinkAlerts(ctx, { alerts, runId, notifier: options.notifier });
  } catch (error) {
    await alertsRun.finish({ status: 'failed', error: describeError(error) }).catch(() => {});
    throw error;
  }
  await alertsRun.finish({ status: 'succeeded', ...alertsRunOutcome(alerts.length, written) });
  const tamperingMs = Date.now() - started;

  // 4. The batch path.
  let batch: BatchPathResult | undefined;
  let batchMs: number | undefined;
  if (options.batch !== false) {
    const t = Date.now();
    const batchRun = await runs.start({ runId, pipeline: PIPELINE, step: 'batch', unit: 'replay' });
    try {
      batch = await runBatchPath(ctx, envelopes, { runId });
    } catch (error) {
      await batchRun.finish({ status: 'failed', error: describeError(error) }).catch(() => {});
      throw error;
    }
    batchMs = Date.now() - t;
    await batchRun.finish({ status: 'succeeded', ...batchRunOutcome(batch) });
  }

  return {
    runId,
    input: {
      envelopes: envelopes.length,
      rejected: rejected.length,
      ...(quarantine ? { quarantine } : {}),
    },
    reference: { players: loaded.players, names: loaded.names, controlChanges },
    tampering: {
      stats: { ...job.stats },
      alerts,
      late: { records: late.length, key: `landing/${lateRef.key}` },
      allTweets: { records: all.length, key: `landing/${allRef.key}` },
      ms: tamperingMs,
    },
    notified: written.notified,
    dataset: written.dataset,
    ...(batch ? { batch, batchMs: batchMs ?? 0 } : {}),
  };
}

/**
 * The alerts sink: the alerts whose id `nba.tampering_alerts` lacks go to the notifier (in
 * emission order), then into the dataset (one write unit per run, merge on id, checks first).
 */
export async function sinkAlerts(
  ctx: PipelineContext,
  input: { alerts: readonly TamperingAlert[]; runId: string; notifier: Notifier },
): Promise<{ notified: NbaRunSummary['notified']; dataset: NbaRunSummary['dataset'] }> {
  const { objectStore } = ctx.backend;
  const empty = {
    notified: { alerts: 0, alreadyPresent: 0, failures: [] },
    dataset: { table: `${PIPELINE}.${ALERTS_TABLE}`, written: 0, alreadyPresent: 0, checks: [] },
  };
  if (input.alerts.length === 0) return empty;
  await mkdir(ctx.workDir, { recursive: true });
  const work = await mkdtemp(path.join(ctx.workDir, 'nba-alerts-'));
  const locals: LocalObjectFile[] = [];
  let db: DuckDb | undefined;
  try {
    const file = path.join(work, 'alerts.ndjson');
    await writeFile(
      file,
      `${input.alerts
        .map((a) =>
          JSON.stringify({
            id: a.id,
            team: a.team,
            tampering_player: a.tamperingPlayer,
            total: a.total,
            players: a.players,
            window_start: a.window.start,
            window_end: a.window.end,
            firing: a.firing,
            message: a.message,
          }),
        )
        .join('\n')}\n`,
    );
    db = await DuckDb.open({
      ...(ctx.engine.threads !== undefined ? { threads: ctx.engine.threads } : {}),
      memoryLimit: ctx.engine.memoryLimit ?? '512MB',
      tempDirectory: path.join(work, 'duckdb-tmp'),
    });
    for await (const info of objectStore.list(alertsDataset.layer, `${PIPELINE}/${ALERTS_TABLE}/`)) {
      if (info.key.endsWith('.parquet')) locals.push(await objectStore.localPath(info));
    }
    const existing =
      locals.length === 0
        ? 'SELECT NULL::VARCHAR AS id WHERE false'
        : `SELECT id FROM read_parquet([${locals.map((l) => quoteString(l.path)).join(', ')}])`;
    await db.run(
      `CREATE TEMP TABLE all_alerts AS
         SELECT id, team, tampering_player, total, players,
                make_timestamp(window_start * 1000) AS window_start, make_timestamp(window_end * 1000) AS window_end,
                firing, message, strftime(make_timestamp(window_start * 1000), '%Y') AS year
         FROM read_json(${quoteString(file)}, format = 'newline_delimited', columns = {id: 'VARCHAR', team: 'VARCHAR',
           tampering_player: 'VARCHAR', total: 'BIGINT', players: 'VARCHAR[]', window_start: 'BIGINT',
           window_end: 'BIGINT', firing: 'INTEGER', message: 'VARCHAR'});
       CREATE TEMP TABLE alerts_unit AS SELECT * FROM all_alerts WHERE id NOT IN (${existing});`,
    );
    const fresh = new Set(
      (await db.all('SELECT id FROM alerts_unit')).rows.map((r) => String((r as { id: unknown }).id)),
    );
    const alreadyPresent = input.alerts.length - fresh.size;
    if (fresh.size === 0) {
      return {
        notified: { alerts: 0, alreadyPresent, failures: [] },
        dataset: { ...empty.dataset, alreadyPresent },
      };
    }
    const checked = await evaluateChecks({
      db,
      relation: 'alerts_unit',
      checks: tableChecks(nbaPipeline, ALERTS_TABLE),
      pipeline: PIPELINE,
      table: ALERTS_TABLE,
      runId: input.runId,
      unit: input.runId,
      now: ctx.clock.now(),
    });
    await settleChecks(ctx, checked);

    const failures: string[] = [];
    let notified = 0;
    const at = ctx.clock.now();
    for (const alert of input.alerts) {
      if (!fresh.has(alert.id)) continue;
      const result = await input.notifier.notify(alertOf(alert, at, input.runId));
      notified++;
      for (const f of result.failed) failures.push(`${alert.id}: ${f.channel}: ${f.error}`);
    }
    const result = await writeDatasetUnit({
      db,
      relation: 'alerts_unit',
      dataset: alertsDataset,
      unit: input.runId,
      runId: input.runId,
      objectStore,
      catalog: ctx.backend.catalog,
    });
    return {
      notified: { alerts: notified, alreadyPresent, failures },
      dataset: {
        table: `${PIPELINE}.${ALERTS_TABLE}`,
        written: result.loaded,
        alreadyPresent: alreadyPresent + result.duplicates,
        checks: checked.results,
      },
    };
  } finally {
    db?.close();
    for (const l of locals) await l.release();
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * A tampering job whose sinks collect into arrays: `alerts`, `late` (JSON lines of late envelopes)
 * and `all` (the all-tweets side output, one line per tweet), written out by the caller after the
 * run (sluice run nba) or the drain (sluice up).
 */
export function collectingJob(
  ctx: PipelineContext,
  players: readonly PlayerRecord[],
  config: Partial<TamperingConfig> | undefined,
): { job: TamperingJob; alerts: TamperingAlert[]; late: string[]; all: string[] } {
  const alerts: TamperingAlert[] = [];
  const late: string[] = [];
  const all: string[] = [];
  const job = new TamperingJob({
    players,
    sinks: {
      alert: (a) => alerts.push(a),
      late: (e) => late.push(JSON.stringify(e)),
      allTweets: (r) => all.push(allTweetsLine(r)),
    },
    clock: ctx.clock,
    ...(config ? { config } : {}),
  });
  return { job, alerts, late, all };
}
