/**
 * Input of `npm run bench -- tolls`: `rows` fake toll transactions from the pipeline's own
 * generator (`generateTransactions`, Faker, as the original used Python's Faker) written with
 * `formatTransaction` in the original's format (`python-dict`: one Python dict repr per line) or
 * NDJSON. Deterministic (fixed seeds and generation time), generated in batches so memory stays
 * small, cached in bench/.data. The file name ends in `.json` (python-dict, as the original's
 * `sample_data-...json`) or `.ndjson`, the suffixes of the tolls triggers.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import {
  formatTransaction,
  generateTransactions,
  type TollsFileFormat,
} from '../pipelines/tolls/generate.ts';

/** What was generated, and what the warehouse must hold after loading it. */
export interface TollsBenchInput {
  readonly file: string;
  readonly format: TollsFileFormat;
  readonly rows: number;
  readonly bytes: number;
  /** Sum of `transaction_id` over all rows (checked against the warehouse after each load). */
  readonly sumTransactionId: number;
}

/** Generation time of every file (transaction dates fall in the 30 days before it). */
const NOW = new Date('2024-06-01T12:00:00Z');
const SEED = 20_240_601;
const BATCH = 100_000;

/** The cached file's path for `rows` transactions in `format`. */
export function tollsInputFile(dir: string, rows: number, format: TollsFileFormat): string {
  return path.join(dir, `tolls-${rows}-${format}.${format === 'ndjson' ? 'ndjson' : 'json'}`);
}

/** Writes {@link tollsInputFile}: `rows` transactions, `BATCH` at a time (seed `SEED + batch`). */
export async function writeTollsInput(
  dir: string,
  rows: number,
  format: TollsFileFormat,
): Promise<TollsBenchInput> {
  const file = tollsInputFile(dir, rows, format);
  const out = createWriteStream(file);
  let bytes = 0;
  let sumTransactionId = 0;
  for (let batch = 0; batch * BATCH < rows; batch++) {
    const count = Math.min(BATCH, rows - batch * BATCH);
    const transactions = await generateTransactions(count, { seed: SEED + batch, now: NOW });
    const lines: string[] = [];
    for (const t of transactions) {
      sumTransactionId += t.transaction_id;
      lines.push(formatTransaction(t, format));
    }
    const chunk = `${lines.join('\n')}\n`;
    bytes += Buffer.byteLength(chunk);
    if (!out.write(chunk)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return { file, format, rows, bytes, sumTransactionId };
}
