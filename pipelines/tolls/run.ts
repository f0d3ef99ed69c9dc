import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { PipelineContext } from '../../src/core/context.ts';
import { UsageError } from '../../src/core/errors.ts';
import type { S3Event, S3EventRecord } from '../../src/core/events.ts';
import { eventObjectKey, matchesTrigger } from '../../src/core/trigger.ts';
import { LANDING_PREFIX, tollsPipeline } from './definition.ts';
import { generateFile, type TollsFileFormat } from './generate.ts';

/** Options of {@link landTollFiles}. */
export interface LandOptions {
  /** Files to land; when empty, one generated file of `generate.count` transactions. */
  readonly inputs?: readonly string[];
  readonly generate?: { readonly count: number; readonly format: TollsFileFormat; readonly seed?: number };
}

/**
 * Lands the given files (or a freshly generated one) into `landing/tolls/<file name>` and returns
 * the object-created records their writes emitted: the S3 event that starts `tolls-load`.
 * @throws {UsageError} when an input cannot be read.
 */
export async function landTollFiles(
  ctx: PipelineContext,
  options: LandOptions,
): Promise<{ landed: string[]; event: S3Event }> {
  const { objectStore } = ctx.backend;
  const records: S3EventRecord[] = [];
  const landed: string[] = [];
  const unsubscribe = objectStore.onObjectCreated((record) => {
    const layerOf = (bucket: string) => objectStore.layerOfBucket(bucket);
    if (tollsPipeline.triggers?.some((trigger) => matchesTrigger(trigger, record, layerOf)))
      records.push(record);
  });
  try {
    if (options.inputs && options.inputs.length > 0) {
      for (const file of options.inputs) {
        const bytes = await readFile(file).catch((error: unknown) => {
          throw new UsageError(`--input ${file}: ${(error as Error).message}`);
        });
        const key = `${LANDING_PREFIX}${path.basename(file)}`;
        await objectStore.put({ layer: 'landing', key }, bytes);
        landed.push(key);
      }
    } else {
      const generated = await generateFile(ctx, options.generate ?? { count: 100, format: 'python-dict' });
      landed.push(generated.info.key);
    }
  } finally {
    unsubscribe();
  }
  // Only this call's writes (another writer may have landed something meanwhile).
  return { landed, event: { Records: records.filter((r) => landed.includes(eventObjectKey(r))) } };
}
