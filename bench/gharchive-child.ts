/**
 * One measured transform, in its own process so peak RSS is its own.
 * argv: sluice|baseline <input .json.gz> <work dir>; prints one JSON line {seconds, rows, maxRssBytes}.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { transformHour } from '../pipelines/gharchive/transform.ts';
import { createLocalBackend } from '../src/backends/local/local-backend.ts';
import { systemClock } from '../src/core/clock.ts';
import { noProgress, silentLogger } from '../src/core/logger.ts';
import { DuckDb, quoteString } from '../src/engines/duckdb/duckdb.ts';

const [mode, input, work] = process.argv.slice(2) as [string, string, string];
const threads = Number(process.env.BENCH_THREADS ?? 2);
let seconds: number;
let rows: number;

if (mode === 'sluice') {
  const backend = createLocalBackend(work);
  const landing = { layer: 'landing' as const, key: 'gharchive/date=2024-01-01/2024-01-01-15.json.gz' };
  await mkdir(path.dirname(path.join(work, 'lake/landing', landing.key)), { recursive: true });
  await copyFile(input, path.join(work, 'lake/landing', landing.key));
  const ctx = {
    backend,
    clock: systemClock,
    logger: silentLogger,
    progress: noProgress,
    workDir: path.join(work, 'tmp'),
    engine: {
      threads,
      ...(process.env.SLUICE_DUCKDB_MEMORY_LIMIT
        ? { memoryLimit: process.env.SLUICE_DUCKDB_MEMORY_LIMIT }
        : {}),
    },
  };
  const started = performance.now();
  const result = await transformHour(ctx, { landing, unit: '2024-01-01-15', runId: 'bench' });
  seconds = (performance.now() - started) / 1000;
  rows = result.counts.loaded;
  await backend.close();
} else {
  // The baseline: one DuckDB statement, the fastest way TOOLCHAIN.md found (payload as JSON).
  const db = await DuckDb.open({ threads });
  const out = path.join(work, 'baseline-out');
  const sql = `COPY (
    SELECT DISTINCT ON (id)
      CAST(id AS BIGINT) AS id, type,
      TRY_CAST(actor->>'$.id' AS BIGINT) AS actor_id, actor->>'$.login' AS actor_login,
      actor->>'$.display_login' AS actor_display_login, actor->>'$.gravatar_id' AS actor_gravatar_id,
      actor->>'$.url' AS actor_url, actor->>'$.avatar_url' AS actor_avatar_url,
      TRY_CAST(repo->>'$.id' AS BIGINT) AS repo_id, repo->>'$.name' AS repo_name, repo->>'$.url' AS repo_url,
      TRY_CAST(org->>'$.id' AS BIGINT) AS org_id, org->>'$.login' AS org_login, org->>'$.gravatar_id' AS org_gravatar_id,
      org->>'$.url' AS org_url, org->>'$.avatar_url' AS org_avatar_url,
      payload, public, created_at::TIMESTAMP AS created_at,
      strftime(created_at, '%Y') AS year, strftime(created_at, '%m') AS month, strftime(created_at, '%d') AS dayofmonth
    FROM read_ndjson(${quoteString(input)}, columns = {id: 'VARCHAR', type: 'VARCHAR', actor: 'JSON', repo: 'JSON',
      org: 'JSON', payload: 'JSON', public: 'BOOLEAN', created_at: 'TIMESTAMPTZ'})
  ) TO ${quoteString(out)} (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (year, month, dayofmonth), RETURN_STATS)`;
  const started = performance.now();
  const stats = await db.all(sql);
  seconds = (performance.now() - started) / 1000;
  rows = stats.rows.reduce((n, r) => n + Number(r.count), 0);
  db.close();
}
process.stdout.write(
  `${JSON.stringify({ seconds, rows, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`,
);
