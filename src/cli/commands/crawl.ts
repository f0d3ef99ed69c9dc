import type { Command } from 'commander';
import { UsageError } from '../../core/errors.ts';
import { isLayer } from '../../core/layer.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatCount, printJson } from '../output.ts';

interface CrawlFlags {
  home?: string;
  layer?: string;
  json?: boolean;
}

/** `sluice crawl <pipeline>`. */
export function registerCrawl(program: Command): void {
  program
    .command('crawl')
    .argument('<pipeline>', 'pipeline (catalog database) whose folder to crawl')
    .description('infer tables, schemas and partitions of data under <layer>/<pipeline>/ into the catalog')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--layer <layer>', 'layer to crawl: landing, staging, analytical or quarantine', 'analytical')
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Each folder under <layer>/<pipeline>/ becomes a table <pipeline>.<folder>; Hive key=value folders
inside it become partitions. Files are classified by content (Parquet, NDJSON, JSON array, CSV,
lines of Python dict reprs; gzip is looked through). Columns get types and nullability (NOT NULL
when no file has a NULL or missing value). A changed schema (a column, a type or a nullability)
is recorded as a new schema version. Lines that do not parse are counted, not fatal. Data written
by sluice's own pipelines is cataloged at commit and needs no crawl.

Example: copy Parquet files into <home>/lake/analytical/mydata/trips/year=2024/ and run
  sluice crawl mydata && sluice query "SELECT count(*) FROM mydata.trips"`,
    )
    .action(async (pipeline: string, flags: CrawlFlags) => {
      const layer = flags.layer ?? 'analytical';
      if (!isLayer(layer))
        throw new UsageError(`--layer "${layer}": expected landing, staging, analytical or quarantine`);
      if (!/^[a-z][a-z0-9_]*$/.test(pipeline)) {
        throw new UsageError(`pipeline "${pipeline}": expected a lower-case name ([a-z][a-z0-9_]*)`);
      }
      const { crawl } = await import('../../engines/crawler/crawler.ts');
      const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      try {
        const result = await crawl({
          objectStore: backend.objectStore,
          catalog: backend.catalog,
          layer,
          prefix: `${pipeline}/`,
          database: pipeline,
        });
        if (flags.json) {
          printJson(result);
          return;
        }
        if (result.tables.length === 0) process.stdout.write(`no data found under ${layer}/${pipeline}/\n`);
        for (const t of result.tables) {
          process.stdout.write(
            `${pipeline}.${t.name}: ${t.change} (schema v${t.schemaVersion}), ${t.format}, ${t.columns.length} columns, ${formatCount(t.partitions)} partitions, ${formatCount(t.files)} files${t.removedPartitions ? `, ${t.removedPartitions} empty partitions removed` : ''}\n`,
          );
          const columns = t.columns.map(
            (c) =>
              `${c.name} ${c.type}${c.nullable === false ? ' NOT NULL' : ''}${c.comment ? ` (${c.comment})` : ''}`,
          );
          process.stdout.write(`  columns: ${columns.join(', ')}\n`);
          for (const note of t.notes) process.stdout.write(`  note: ${note}\n`);
        }
        for (const s of result.skipped) process.stdout.write(`skipped ${layer}/${s.key}: ${s.reason}\n`);
      } finally {
        await close();
      }
    });
}
