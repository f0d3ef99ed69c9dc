import type { PipelineContext } from '../../src/core/context.ts';
import { StreamExistsError, StreamNotFoundError } from '../../src/core/ports/stream.ts';
import { StreamConsumer } from '../../src/core/stream-consumer.ts';
import { CONSUMER } from './definition.ts';

/**
 * Creates the tweet stream, or reuses it when it exists: a stream kept by an earlier run because
 * its consumer had not read everything still holds those records, and this run's consumer resumes
 * from its checkpoints. @returns whether it was created now.
 */
export async function ensureStream(
  ctx: PipelineContext,
  input: { stream: string; shards: number },
): Promise<{ stream: string; created: boolean; shards: number }> {
  try {
    const created = await ctx.backend.stream.createStream(input.stream, { shardCount: input.shards });
    return { stream: input.stream, created: true, shards: created.shards.length };
  } catch (error) {
    if (!(error instanceof StreamExistsError)) throw error;
    const existing = await ctx.backend.stream.describeStream(input.stream);
    return { stream: input.stream, created: false, shards: existing.shards.length };
  }
}

/**
 * Records of the stream this consumer has not read (checkpointed) yet, counted up to `limit`
 * per shard (0 means drained).
 */
export async function unconsumedRecords(
  ctx: PipelineContext,
  stream: string,
  limit = 10_000,
): Promise<number> {
  const { stream: streams } = ctx.backend;
  const consumer = await StreamConsumer.open({
    stream: streams,
    kv: ctx.backend.kv,
    streamName: stream,
    consumer: CONSUMER,
  });
  const checkpoints = await consumer.checkpoints();
  const description = await streams.describeStream(stream);
  let pending = 0;
  for (const shard of description.shards) {
    const checkpoint = checkpoints[shard.shardId];
    const iterator = await streams.getShardIterator(
      stream,
      shard.shardId,
      checkpoint ? { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: checkpoint } : { type: 'TRIM_HORIZON' },
    );
    pending += (await streams.getRecords(iterator, { limit })).records.length;
  }
  return pending;
}

/**
 * Deletes the tweet stream once its consumer has read every record (KinesisLanding's last step).
 * When records are still unread (the consumer ran out of time), the stream is kept so that the
 * next run's consumer lands them: nothing is lost. A missing stream is fine (idempotent retry).
 */
export async function deleteStreamIfDrained(
  ctx: PipelineContext,
  stream: string,
): Promise<{ stream: string; deleted: boolean; unconsumed: number }> {
  try {
    const unconsumed = await unconsumedRecords(ctx, stream);
    if (unconsumed > 0) {
      ctx.logger.warn({ stream, unconsumed }, 'stream kept: its consumer has not read every record yet');
      return { stream, deleted: false, unconsumed };
    }
    await ctx.backend.stream.deleteStream(stream);
    return { stream, deleted: true, unconsumed: 0 };
  } catch (error) {
    if (error instanceof StreamNotFoundError) return { stream, deleted: false, unconsumed: 0 };
    throw error;
  }
}
