import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { PipelineContext } from '../../src/core/context.ts';
import { UsageError } from '../../src/core/errors.ts';
import type { Item, KvTable } from '../../src/core/ports/kv-table.ts';
import type { PutRecordInput } from '../../src/core/ports/stream.ts';
import type { RecordCounts } from '../../src/core/run.ts';
import { reconcile } from '../../src/core/run.ts';
import { filterTweet } from '../../src/sources/twitter/filter.ts';
import { replayFiles } from '../../src/sources/twitter/replay.ts';
import type { FilterRejection, TweetInput } from '../../src/sources/twitter/types.ts';
import { clip, located, type QuarantineEntry, writeQuarantine } from './quarantine.ts';

/** Records per `PutRecords` call (Kinesis's maximum). */
export const PUT_BATCH = 500;

/** Key-value table of producer progress: one item per run (`run_id`), read by the consumer. */
export const PRODUCER_TABLE = 'hashtags_producer_runs';

/** Key-value table of replayed capture files, by content hash: a file is replayed once. */
export const REPLAYS_TABLE = 'hashtags_replayed_files';

/** Where the producer reads tweets. */
export type ProducerSource =
  | {
      readonly kind: 'replay';
      /** Capture files, replayed in order. */
      readonly files: readonly string[];
      /** Statuses per second (0 or undefined: as fast as possible). */
      readonly ratePerSecond?: number;
      /** Replay files even when their content was replayed before (default false). */
      readonly again?: boolean;
    }
  | {
      readonly kind: 'live';
      /** Live tweets, already connected (the Twitter v2 filtered stream). */
      readonly inputs: AsyncIterable<TweetInput>;
      /** What the inputs come from, for messages. */
      readonly description: string;
    };

/** Per-file outcome of a replay. */
export interface ReplayFileOutcome {
  readonly file: string;
  readonly sha256: string;
  /**
   * `skipped`: the same content was replayed before by run `previousRun` (this run's own id when
   * an earlier attempt of the same run finished it: its counts are in the run's totals already);
   * `interrupted`: the run was stopped mid-file (the next run resumes after the last batch sent).
   */
  readonly status: 'replayed' | 'skipped' | 'interrupted';
  readonly previousRun?: string;
  readonly counts?: ProducerCounts;
}

/** Counts of the producer: `read = loaded (sent) + quarantined + filtered`. */
export interface ProducerCounts extends RecordCounts {
  /** Filtered statuses by the rule that left them out. */
  readonly rejections: Partial<Record<FilterRejection, number>>;
}

/** Result of {@link produce}. */
export interface ProduceResult {
  readonly runId: string;
  readonly stream: string;
  readonly counts: ProducerCounts;
  readonly files: readonly ReplayFileOutcome[];
  readonly quarantine: readonly string[];
}

/**
 * The hashtags producer (REFERENCE.md section 1): reads statuses (replayed capture files or the
 * live filtered stream), keeps those the original's filter keeps (`filterTweet`), and puts the
 * `TweetRecord`s on the stream in batches of 500, partition key = the original tweet's id (the
 * original used one constant key; the id spreads records over every shard while keeping each
 * tweet's order). Rejected input goes to `quarantine/hashtags/produce/...` with file, line and
 * reason; filtered statuses are counted by rule.
 *
 * Idempotent re-runs: a replayed file is recorded by the SHA-256 of its content in
 * `hashtags_replayed_files` with the number of inputs sent so far, and replaying the same content
 * again is skipped (`again` overrides). A replay that was interrupted resumes after the last batch
 * it sent, in a retry or a later run; only a batch sent but not yet recorded when the process died
 * is sent twice (at-least-once: its records get new sequence numbers, so new `hash_id`s; a window
 * of at most one batch of 500, documented in the README).
 *
 * The run item in `hashtags_producer_runs` ends `done` (or `failed`), which tells the consumer of
 * the same run that no more records will come.
 *
 * @throws {StreamNotFoundError} when the stream does not exist.
 * @throws {UsageError} when a capture file cannot be read or its format is unknown.
 */
export async function produce(
  ctx: PipelineContext,
  input: { runId: string; stream: string; source: ProducerSource; signal?: AbortSignal },
): Promise<ProduceResult> {
  const progress = await ctx.backend.kv.table(PRODUCER_TABLE, { hashKey: { name: 'run_id', type: 'S' } });
  const previous = await progress.get({ run_id: input.runId });
  const state = new ProducerState(ctx, input.runId, input.stream, progress, previous);
  await state.save('producing');
  try {
    const files: ReplayFileOutcome[] = [];
    if (input.source.kind === 'replay') {
      const replays = await ctx.backend.kv.table(REPLAYS_TABLE, { hashKey: { name: 'sha256', type: 'S' } });
      for (const file of input.source.files) {
        files.push(await replayFile(ctx, state, replays, file, input.source, input.signal));
      }
    } else {
      await state.consume(input.source.description, input.source.inputs, 0, input.signal);
    }
    await state.save('done');
    const counts = state.totals();
    reconcile(counts);
    return { runId: input.runId, stream: input.stream, counts, files, quarantine: state.quarantineKeys };
  } catch (error) {
    await state.save('failed', (error as Error).message).catch(() => {});
    throw error;
  }
}

async function replayFile(
  ctx: PipelineContext,
  state: ProducerState,
  replays: KvTable,
  file: string,
  source: Extract<ProducerSource, { kind: 'replay' }>,
  signal: AbortSignal | undefined,
): Promise<ReplayFileOutcome> {
  const absolute = path.resolve(file);
  const sha256 = await hashFile(absolute);
  const record = await replays.get({ sha256 });
  // An earlier attempt of this same run (a retried Produce task) already handled this content:
  // it is never sent again, even with `again` (which forces a replay of other runs' content only).
  const byThisRun = record?.run_id === state.runId;
  if (record && record.status === 'done' && (byThisRun || !source.again)) {
    ctx.logger.info(
      { file: absolute, sha256, previousRun: record.run_id },
      'capture file already replayed: skipped',
    );
    return { file: absolute, sha256, status: 'skipped', previousRun: String(record.run_id) };
  }
  // A file whose replay was interrupted (Ctrl-C, a crash, a Lambda timeout) resumes after the last
  // batch put, in a retry of this run or in a later run: its records are never sent twice.
  const resumeAt =
    record &&
    record.status === 'replaying' &&
    typeof record.position === 'number' &&
    (byThisRun || !source.again)
      ? record.position
      : 0;
  const before = state.totals();
  const saveProgress = (position: number) =>
    replays.put({ sha256, file: absolute, run_id: state.runId, status: 'replaying', position });
  state.onBatch = saveProgress;
  const inputs = replayFiles([absolute], {
    ...(source.ratePerSecond ? { ratePerSecond: source.ratePerSecond } : {}),
    ...(signal ? { signal } : {}),
  });
  const position = await state.consume(absolute, inputs, resumeAt, signal);
  state.onBatch = undefined;
  if (signal?.aborted) {
    return { file: absolute, sha256, status: 'interrupted', counts: difference(state.totals(), before) };
  }
  await replays.put({
    sha256,
    file: absolute,
    run_id: state.runId,
    status: 'done',
    position,
    at: ctx.clock.now().toISOString(),
  });
  return { file: absolute, sha256, status: 'replayed', counts: difference(state.totals(), before) };
}

/** @throws {UsageError} naming the file when it cannot be read (as the replay reader would). */
async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  } catch (error) {
    throw new UsageError(`cannot read the Twitter capture ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return hash.digest('hex');
}

function difference(after: ProducerCounts, before: ProducerCounts): ProducerCounts {
  const rejections: Partial<Record<FilterRejection, number>> = {};
  for (const [rule, n] of Object.entries(after.rejections) as [FilterRejection, number][]) {
    const d = n - (before.rejections[rule] ?? 0);
    if (d > 0) rejections[rule] = d;
  }
  return {
    read: after.read - before.read,
    loaded: after.loaded - before.loaded,
    duplicates: 0,
    quarantined: after.quarantined - before.quarantined,
    filtered: (after.filtered ?? 0) - (before.filtered ?? 0),
    rejections,
  };
}

/** Running counts, batching and durable progress of one producer run. */
class ProducerState {
  read = 0;
  sent = 0;
  quarantined = 0;
  filtered = 0;
  rejections: Partial<Record<FilterRejection, number>> = {};
  readonly quarantineKeys: string[] = [];
  /** Called after each batch is sent, with the inputs handled so far in the current file. */
  onBatch: ((position: number) => Promise<void>) | undefined;

  constructor(
    private readonly ctx: PipelineContext,
    readonly runId: string,
    private readonly stream: string,
    private readonly progress: KvTable,
    previous: Item | undefined,
  ) {
    const counts = previous?.counts as Partial<ProducerCounts> | undefined;
    if (counts) {
      this.read = counts.read ?? 0;
      this.sent = counts.loaded ?? 0;
      this.quarantined = counts.quarantined ?? 0;
      this.filtered = counts.filtered ?? 0;
      this.rejections = { ...(counts.rejections ?? {}) };
    }
  }

  totals(): ProducerCounts {
    return {
      read: this.read,
      loaded: this.sent,
      duplicates: 0,
      quarantined: this.quarantined,
      filtered: this.filtered,
      rejections: { ...this.rejections },
    };
  }

  async save(status: 'producing' | 'done' | 'failed', error?: string): Promise<void> {
    const counts = this.totals();
    await this.progress.put({
      run_id: this.runId,
      stream: this.stream,
      status,
      counts: { ...counts, rejections: { ...counts.rejections } },
      updated_at: this.ctx.clock.now().toISOString(),
      ...(error ? { error } : {}),
    });
  }

  /**
   * Filters and sends `inputs`, skipping the first `skip` (already handled by an earlier attempt).
   * @returns the number of inputs handled, including skipped ones.
   */
  async consume(
    sourceName: string,
    inputs: AsyncIterable<TweetInput>,
    skip: number,
    signal: AbortSignal | undefined,
  ): Promise<number> {
    let position = 0;
    let batch: PutRecordInput[] = [];
    let bad: QuarantineEntry[] = [];
    let batchStart = skip;
    const task = this.ctx.progress.start(`produce ${path.basename(sourceName)}`, undefined, 'records');
    const flush = async () => {
      if (batch.length > 0) await this.ctx.backend.stream.putRecords(this.stream, batch);
      const key = await writeQuarantine(this.ctx, {
        step: 'produce',
        runId: this.runId,
        unit: `${this.runId}-${createHash('sha256').update(sourceName).digest('hex').slice(0, 8)}-${batchStart}`,
        entries: bad,
      });
      if (key) this.quarantineKeys.push(key);
      batch = [];
      bad = [];
      batchStart = position;
      await this.save('producing');
      await this.onBatch?.(position);
      task.update(position);
    };
    try {
      for await (const item of inputs) {
        position++;
        if (position <= skip) continue;
        this.read++;
        const outcome = filterTweet(item);
        if (outcome.kind === 'keep') {
          batch.push({ partitionKey: outcome.record.tweet_id, data: JSON.stringify(outcome.record) });
          this.sent++;
        } else if (outcome.kind === 'filtered') {
          this.filtered++;
          this.rejections[outcome.rejection] = (this.rejections[outcome.rejection] ?? 0) + 1;
        } else {
          this.quarantined++;
          bad.push({ ...located(item.location), reason: outcome.reason, raw: rawOf(item) });
        }
        if (batch.length >= PUT_BATCH || bad.length >= 10_000) await flush();
        if (signal?.aborted) break;
      }
      await flush();
    } finally {
      task.stop();
    }
    return position;
  }
}

function rawOf(item: TweetInput): string {
  if (item.kind === 'bad') return item.raw;
  if (item.kind === 'v1') return clip(JSON.stringify(item.status));
  if (item.kind === 'v2') return clip(JSON.stringify(item.tweet));
  return clip(JSON.stringify(item));
}
