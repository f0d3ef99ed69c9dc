import path from 'node:path';
import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectRef } from '../../src/core/layer.ts';
import { type FetchOptions, fetchSourceFile } from '../../src/sources/http/download.ts';
import { landingKey } from './definition.ts';

/** Result of {@link ingestHour}. */
export type IngestResult =
  | {
      status: 'landed';
      landing: ObjectRef;
      bytes: number;
      attempts: number;
      reused: boolean;
      location: string;
    }
  | { status: 'not_published'; attempts: number; location: string };

/**
 * Source -> landing for one hour file: downloads `<sourceUrl>/<fileName>` (streamed to disk, with
 * retries: src/sources/http/download.ts) into a scratch file and publishes it unchanged as
 * `landing/gharchive/date=YYYY-MM-DD/<fileName>` (an atomic rename locally), which emits an
 * object-created event.
 *
 * An hour already in landing is not downloaded again (landing keeps raw data exactly as
 * received; delete the object to fetch it anew). A 404 means the hour is not published yet.
 *
 * @throws {SourceUnavailableError} when the source keeps failing after the retries.
 */
export async function ingestHour(
  ctx: PipelineContext,
  input: { fileName: string; sourceUrl: string; fetch?: Partial<Omit<FetchOptions, 'clock' | 'onProgress'>> },
): Promise<IngestResult> {
  const { objectStore } = ctx.backend;
  const landing: ObjectRef = { layer: 'landing', key: landingKey(input.fileName) };
  const existing = await objectStore.head(landing);
  if (existing && existing.size > 0) {
    return {
      status: 'landed',
      landing,
      bytes: existing.size,
      attempts: 0,
      reused: true,
      location: objectStore.uri(landing),
    };
  }
  const scratch = await objectStore.scratchDir('landing');
  try {
    const dest = path.join(scratch.path, input.fileName);
    const task = ctx.progress.start(`download ${input.fileName}`, undefined, 'bytes');
    let result: Awaited<ReturnType<typeof fetchSourceFile>>;
    try {
      result = await fetchSourceFile(input.sourceUrl, input.fileName, dest, {
        ...input.fetch,
        clock: ctx.clock,
        onProgress: (bytes, total) => task.update(bytes, total),
      });
    } finally {
      task.stop();
    }
    if (result.status === 'not_found') {
      return { status: 'not_published', attempts: result.attempts, location: result.location };
    }
    const info = await objectStore.putFile(landing, dest, { move: true });
    return {
      status: 'landed',
      landing,
      bytes: info.size,
      attempts: result.attempts,
      reused: false,
      location: result.location,
    };
  } finally {
    await scratch.release();
  }
}
