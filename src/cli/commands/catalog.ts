import type { Command } from 'commander';
import { NotFoundError, UsageError } from '../../core/errors.ts';
import { qualifiedName } from '../../core/ports/catalog.ts';
import { openContext, resolveHome } from '../context.ts';
import { formatBytes, formatCount, formatTable, printJson } from '../output.ts';

interface CatalogFlags {
  home?: string;
  json?: boolean;
}

/** `sluice catalog [table]`. */
export function registerCatalog(program: Command): void {
  program
    .command('catalog')
    .argument('[table]', 'a table <database>.<name> to show in detail')
    .description('list cataloged tables, or show one: columns with types, partitions, schema versions')
    .option('--home <dir>', 'sluice home (default $SLUICE_HOME or ./.sluice)')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, flags: CatalogFlags) => {
      const { backend, close } = await openContext({ home: resolveHome(flags.home), progress: false });
      const catalog = backend.catalog;
      try {
        if (name === undefined) {
          const tables = await catalog.listTables();
          const described = [];
          for (const t of tables) {
            const partitions = await catalog.listPartitions(t.database, t.name);
            described.push({
              ...t,
              partitionCount: partitions.length,
              rows: partitions.reduce((n, p) => n + (p.rows ?? 0), 0),
              bytes: partitions.reduce((n, p) => n + p.bytes, 0),
            });
          }
          if (flags.json) {
            printJson(described);
            return;
          }
          if (described.length === 0) {
            process.stdout.write(
              'the catalog is empty: run `sluice demo`, `sluice run <pipeline>` or `sluice crawl <pipeline>`\n',
            );
            return;
          }
          const rows = described.map((t) => ({
            table: qualifiedName(t),
            format: t.format,
            location: `${t.location.layer}/${t.location.prefix}`,
            schema: `v${t.schemaVersion}`,
            columns: t.columns.length,
            partitions: t.partitionCount,
            rows: t.rows,
            size: formatBytes(t.bytes),
          }));
          process.stdout.write(
            `${formatTable(
              Object.keys(rows[0] ?? {}).map((n) => ({ name: n })),
              rows,
            )}\n`,
          );
          return;
        }
        const [database, table] = name.split('.');
        if (!database || !table)
          throw new UsageError(`table "${name}": expected <database>.<name>, e.g. gharchive.events`);
        const t = await catalog.getTable(database, table);
        if (!t) throw new NotFoundError(`no table ${name} in the catalog (see \`sluice catalog\`)`);
        const partitions = await catalog.listPartitions(database, table);
        const versions = await catalog.listSchemaVersions(database, table);
        if (flags.json) {
          printJson({ ...t, partitions, versions });
          return;
        }
        const out: string[] = [
          `${qualifiedName(t)}: ${t.description ?? ''}`,
          `  location: ${t.location.layer}/${t.location.prefix} (${t.format}), schema v${t.schemaVersion}, managed by ${t.managedBy ?? 'pipeline'}`,
          ...(t.primaryKey ? [`  primary key: ${t.primaryKey.join(', ')}`] : []),
          '',
          formatTable(
            [{ name: 'column' }, { name: 'type' }, { name: 'nullable' }, { name: 'comment' }],
            [
              ...t.columns.map((c) => ({
                column: c.name,
                type: c.logicalType ? `${c.type} (${c.logicalType})` : c.type,
                nullable: c.nullable === false ? 'no' : 'yes',
                comment: c.comment ?? '',
              })),
              ...t.partitionKeys.map((c) => ({
                column: c.name,
                type: c.type,
                nullable: 'no',
                comment: 'partition key',
              })),
            ],
          ),
          '',
          `partitions: ${formatCount(partitions.length)}`,
          ...partitions
            .slice(-20)
            .map(
              (p) =>
                `  ${p.prefix}  ${p.files.length} files, ${formatCount(p.rows ?? 0)} rows, ${formatBytes(p.bytes)}, run ${p.runId ?? '?'}, schema v${p.schemaVersion}`,
            ),
          `schema versions: ${versions.map((v) => `v${v.version} (${v.createdAt.toISOString()}${v.createdBy ? `, ${v.createdBy}` : ''})`).join(', ')}`,
        ];
        process.stdout.write(`${out.join('\n')}\n`);
      } finally {
        await close();
      }
    });
}
