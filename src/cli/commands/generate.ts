import type { Command } from 'commander';
import { UsageError } from '../../core/errors.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatBytes, printJson } from '../output.ts';

interface GenerateFlags {
  home?: string;
  count?: string;
  format?: string;
  seed?: string;
  json?: boolean;
}

/** `sluice generate tolls`. */
export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .argument('<pipeline>', 'pipeline whose source data to fake (tolls)')
    .description('write one file of fake source data into the landing layer (tolls: toll transactions)')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--count <n>', 'transactions in the file (default 100, as the original generator)')
    .option(
      '--format <format>',
      'python-dict (the original: one Python dict repr per line) or ndjson',
      'python-dict',
    )
    .option('--seed <n>', 'seed for reproducible data (same seed and minute: same file)')
    .option('--json', 'print the written object as JSON')
    .addHelpText(
      'after',
      `
Writes landing/tolls/sample_data-YYYY-mm-dd-HH-MM.json (UTC) with the original generator's fields:
transaction_id (0..99999), transaction_date (YYYY/MM/DD, last 30 days), toll_booth (buckley_rd,
82nd_st, royal_ave, savanna_west, golf_rd, york_rd), vehicle_make, vehicle_category (1-3 types,
comma-joined), transaction_amount (0.01..10.00). Under \`sluice up\` the new file triggers the
tolls workflow (crawl -> job -> COPY into the warehouse).

Examples:
  sluice generate tolls
  sluice generate tolls --count 1000 --format ndjson --seed 7`,
    )
    .action(async (pipeline: string, flags: GenerateFlags) => {
      if (pipeline !== 'tolls') throw new UsageError(`sluice generate knows tolls only, not "${pipeline}"`);
      const count = flags.count === undefined ? 100 : Number(flags.count);
      if (!Number.isInteger(count) || count < 1)
        throw new UsageError(`--count must be a positive integer, got "${flags.count}"`);
      if (flags.format !== 'python-dict' && flags.format !== 'ndjson') {
        throw new UsageError(`--format must be python-dict or ndjson, got "${flags.format}"`);
      }
      const seed = flags.seed === undefined ? undefined : Number(flags.seed);
      if (seed !== undefined && !Number.isInteger(seed))
        throw new UsageError(`--seed must be an integer, got "${flags.seed}"`);
      const { generateFile } = await import('../../../pipelines/tolls/generate.ts');
      const { ctx, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const { info, transactions } = await generateFile(ctx, {
          count,
          format: flags.format,
          ...(seed !== undefined ? { seed } : {}),
        });
        if (flags.json) printJson({ layer: info.layer, key: info.key, bytes: info.size, transactions });
        else
          process.stdout.write(
            `wrote landing/${info.key}: ${transactions} transactions (${formatBytes(info.size)})\n`,
          );
      } finally {
        await close();
      }
    });
}
