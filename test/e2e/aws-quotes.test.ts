import path from 'node:path';
import { type AttributeValue, QueryCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quotesQueries, RAW_TABLE } from '../../pipelines/quotes/definition.ts';
import { pollSimulated } from '../../pipelines/quotes/poll.ts';
import { transformStep } from '../../pipelines/quotes/transform.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { bindNamedQuery } from '../../src/core/query.ts';
import { RunLog } from '../../src/core/run.ts';
import { type QuotesFixtureServer, startQuotesFixture } from '../../src/sources/http/quotes-fixture.ts';
import type { QuotableQuote } from '../../src/sources/quotes/quotable.ts';
import { type AwsStack, startAwsStack } from '../helpers/aws-stack.ts';
import { fakeClock } from '../helpers/context.ts';
import { ROOT } from '../helpers/samples.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const DATA = path.join(ROOT, 'examples/data/quotes/quotes.json');
const DAY = '2024-01-01';
const START = new Date(`${DAY}T00:00:00.000Z`);
const POLLS = 1440;
const SEED = 42;
const TABLE_PREFIX = 'e2e-quotes-';

/** One polled document with the simulated minute it was polled at (ISO, UTC). */
interface Polled {
  readonly quote: QuotableQuote;
  readonly at: string;
}

interface AggRow {
  quote_id: string;
  quote_text: string;
  author: string;
  quote_count: number;
  first_ingestion: string;
  last_ingestion: string;
}

/** quotes_agg from the polled documents in plain JS: GROUP BY id, text and author; most drawn first. */
function expectedAgg(polled: readonly Polled[]): AggRow[] {
  const groups = new Map<string, AggRow>();
  for (const { quote, at } of polled) {
    const key = JSON.stringify([quote._id, quote.content, quote.author]);
    const row = groups.get(key);
    if (row) {
      row.quote_count++;
      if (at < row.first_ingestion) row.first_ingestion = at;
      if (at > row.last_ingestion) row.last_ingestion = at;
    } else {
      groups.set(key, {
        quote_id: quote._id,
        quote_text: quote.content,
        author: quote.author,
        quote_count: 1,
        first_ingestion: at,
        last_ingestion: at,
      });
    }
  }
  return [...groups.values()].sort(
    (a, b) =>
      b.quote_count - a.quote_count ||
      a.first_ingestion.localeCompare(b.first_ingestion) ||
      (a.quote_id < b.quote_id ? -1 : 1),
  );
}

/** The original's statistics of quote_count (numpy amin, amax, ptp, var, std: population). */
function expectedStatistics(agg: readonly AggRow[]) {
  const counts = agg.map((r) => r.quote_count);
  const n = counts.length;
  const mean = counts.reduce((a, b) => a + b, 0) / n;
  const variance = counts.reduce((sum, c) => sum + (c - mean) ** 2, 0) / n;
  const max = Math.max(...counts);
  const min = Math.min(...counts);
  return { min, max, range: max - min, variance, standardDeviation: Math.sqrt(variance), distinctQuotes: n };
}

/** A DynamoDB attribute value as plain JSON (S, N, L, M, NULL), read independently of sluice. */
function plain(value: AttributeValue): unknown {
  if (value.S !== undefined) return value.S;
  if (value.N !== undefined) return Number(value.N);
  if (value.NULL) return null;
  if (value.BOOL !== undefined) return value.BOOL;
  if (value.L) return value.L.map(plain);
  if (value.M) return Object.fromEntries(Object.entries(value.M).map(([k, v]) => [k, plain(v)]));
  if (value.SS) return [...value.SS];
  throw new Error(`unexpected attribute ${JSON.stringify(value)}`);
}

/** Athena prints timestamps as `2024-01-01 00:07:00.000`; the engine hands them back as ISO. */
const iso = (value: unknown) => new Date(String(value).replace(' ', 'T').replace(/(Z)?$/, 'Z')).toISOString();

describe('quotes on the aws backend (dynalite, s3rver, fake Glue and Athena)', () => {
  let stack: AwsStack;
  let s3: AwsStack['s3'];
  let fixture: QuotesFixtureServer;
  let glue: AwsStack['glue'];
  let athena: AwsStack['athena'];
  let backend: AwsStack['backend'];
  let ctx: PipelineContext;
  let s3Client: AwsStack['s3Client'];
  let dynamo: AwsStack['dynamo'];
  /** The transform's "now": noon of the day after (when the daily schedule runs). */
  const clock = fakeClock(new Date('2024-01-02T12:00:00.000Z'));

  beforeAll(async () => {
    [stack, fixture] = await Promise.all([
      startAwsStack({ tablePrefix: TABLE_PREFIX, clock }),
      startQuotesFixture({ dataFile: DATA, seed: SEED }),
    ]);
    ({ s3, glue, athena, backend, s3Client, dynamo } = stack);
    ctx = stack.ctx({ engine: { threads: 1, memoryLimit: '256MB' } });
  }, 60_000);

  afterAll(async () => {
    await Promise.all([stack?.close(), fixture?.close()]);
  });

  async function query(sql: string, namedQueries = quotesQueries): Promise<Record<string, unknown>[]> {
    const engine = await backend.openQueryEngine({ namedQueries });
    try {
      return (await engine.query(sql)).rows;
    } finally {
      await engine.close();
    }
  }

  /** Every item of the day's quotes_raw partition, with a plain DynamoDB client (paged). */
  async function rawItems(date: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let start: Record<string, AttributeValue> | undefined;
    do {
      const out = await dynamo.send(
        new QueryCommand({
          TableName: `${TABLE_PREFIX}${RAW_TABLE}`,
          KeyConditionExpression: 'ingested_date = :d',
          ExpressionAttributeValues: { ':d': { S: date } },
          ...(start ? { ExclusiveStartKey: start } : {}),
        }),
      );
      for (const item of out.Items ?? []) items.push(plain({ M: item }) as Record<string, unknown>);
      start = out.LastEvaluatedKey;
    } while (start);
    return items;
  }

  async function analyticalKeys(prefix: string): Promise<string[]> {
    const out = await s3Client.send(
      new ListObjectsV2Command({ Bucket: s3.buckets.analytical, Prefix: prefix }),
    );
    return (out.Contents ?? []).map((o) => o.Key ?? '').sort();
  }

  let polled: Polled[] = [];
  let agg: AggRow[] = [];
  let firstKeys: string[] = [];

  it('polls a simulated day into quotes_raw on DynamoDB: one item per poll, the documents served', async () => {
    const summary = await pollSimulated(ctx, { apiUrl: fixture.url, start: START, polls: POLLS });
    expect(summary).toMatchObject({
      polls: POLLS,
      stored: POLLS,
      requests: POLLS,
      first: `${DAY}T00:00:00.000Z`,
      last: `${DAY}T23:59:00.000Z`,
      days: [{ date: DAY, rows: POLLS }],
      exitCode: 0,
    });
    expect(fixture.served).toHaveLength(POLLS);
    polled = fixture.served.map((quote, i) => ({
      quote,
      at: new Date(START.getTime() + i * 60_000).toISOString(),
    }));

    // What dynalite holds, read with a plain client: the original's pull_quote item per poll.
    const raw = await rawItems(DAY);
    expect(raw).toEqual(
      polled.map(({ quote: q, at }) => ({
        ingested_date: DAY,
        ingested_at: at,
        quote_id: q._id,
        content: q.content,
        author: q.author,
        tag_list: [...q.tags],
        author_slug: q.authorSlug,
        character_count: q.length,
        added_date: q.dateAdded,
        modified_date: q.dateModified,
      })),
    );
    expect(summary.distinctQuotes).toBe(new Set(polled.map((p) => p.quote._id)).size);
  }, 60_000);

  it('transforms the day into quotes_fact / quotes_agg Parquet on S3 and Glue partitions, with the statistics of the original', async () => {
    expect(polled).toHaveLength(POLLS);
    agg = expectedAgg(polled);
    const stats = expectedStatistics(agg);
    // The seed's day has ties for the top count: the earliest drawn of them is the top quote.
    expect(agg.filter((r) => r.quote_count === stats.max).length).toBeGreaterThan(1);

    const result = await transformStep(ctx, { date: DAY, pageSize: 500 });
    if (result.status !== 'published') throw new Error(`not published: ${result.status}`);
    expect(result).toMatchObject({ rawRows: POLLS, pages: 3 });
    expect(result.fact.rows).toBe(POLLS);
    expect(result.agg.rows).toBe(agg.length);

    const s = result.statistics;
    expect({
      min: s.min,
      max: s.max,
      range: s.range,
      distinctQuotes: s.distinctQuotes,
      polls: s.polls,
    }).toEqual({
      min: stats.min,
      max: stats.max,
      range: stats.range,
      distinctQuotes: stats.distinctQuotes,
      polls: POLLS,
    });
    expect(s.variance).toBeCloseTo(stats.variance, 12);
    expect(s.standardDeviation).toBeCloseTo(stats.standardDeviation, 12);
    expect(s.topQuote).toEqual({
      quoteId: agg[0]!.quote_id,
      quoteText: agg[0]!.quote_text,
      author: agg[0]!.author,
      quoteCount: stats.max,
    });
    expect(result.checks.filter((c) => c.status !== 'pass')).toEqual([]);

    // S3 (plain listing): one Snappy Parquet object per table under dt=<day>/.
    firstKeys = [
      ...(await analyticalKeys('quotes/quotes_fact/')),
      ...(await analyticalKeys('quotes/quotes_agg/')),
    ];
    expect(firstKeys).toEqual([
      `quotes/quotes_fact/dt=${DAY}/part-${DAY}_0.parquet`,
      `quotes/quotes_agg/dt=${DAY}/part-${DAY}_0.parquet`,
    ]);
    for (const key of firstKeys) {
      const object = await s3Client.send(new GetObjectCommand({ Bucket: s3.buckets.analytical, Key: key }));
      const bytes = Buffer.from(await object.Body!.transformToByteArray());
      expect(bytes.subarray(0, 4).toString('latin1')).toBe('PAR1');
      expect(bytes.subarray(-4).toString('latin1')).toBe('PAR1');
    }

    // Glue (fake): both tables with the partition key dt, one partition of the day each.
    for (const [table, rows] of [
      ['quotes_fact', POLLS],
      ['quotes_agg', agg.length],
    ] as const) {
      const t = glue.table('quotes', table);
      expect(t?.PartitionKeys?.map((k) => [k.Name, k.Type])).toEqual([['dt', 'date']]);
      expect(t?.StorageDescriptor?.Location).toBe(`s3://${s3.buckets.analytical}/quotes/${table}/`);
      const partitions = glue.partitions('quotes', table);
      expect(partitions.map((p) => p.Values)).toEqual([[DAY]]);
      expect(partitions[0]?.StorageDescriptor?.Location).toBe(
        `s3://${s3.buckets.analytical}/quotes/${table}/dt=${DAY}/`,
      );
      expect(partitions[0]?.Parameters?.numRows).toBe(String(rows));
    }
    const factColumns = glue.table('quotes', 'quotes_fact')?.StorageDescriptor?.Columns ?? [];
    expect(Object.fromEntries(factColumns.map((c) => [c.Name, c.Type]))).toEqual({
      quote_id: 'string',
      quote_text: 'string',
      author: 'string',
      author_slug: 'string',
      tag_list: 'array<string>',
      character_count: 'int',
      added_date: 'date',
      modified_date: 'date',
      ingested_date: 'date',
      ingested_at: 'timestamp',
    });

    // Athena (the fake, over the objects s3rver holds): the fact is the polls, the agg the groups.
    const fact = await query(
      `SELECT quote_id, quote_text, author, character_count, ingested_at FROM quotes.quotes_fact
        WHERE dt = DATE '${DAY}' ORDER BY ingested_at`,
    );
    expect(fact.map((r) => ({ ...r, ingested_at: iso(r.ingested_at) }))).toEqual(
      polled.map(({ quote, at }) => ({
        quote_id: quote._id,
        quote_text: quote.content,
        author: quote.author,
        character_count: quote.length,
        ingested_at: at,
      })),
    );
    const aggRows = await query(
      `SELECT quote_id, quote_text, author, quote_count, first_ingestion, last_ingestion
         FROM quotes.quotes_agg WHERE dt = DATE '${DAY}'
        ORDER BY quote_count DESC, first_ingestion, quote_id`,
    );
    expect(
      aggRows.map((r) => ({
        ...r,
        quote_count: Number(r.quote_count),
        first_ingestion: iso(r.first_ingestion),
        last_ingestion: iso(r.last_ingestion),
      })),
    ).toEqual(agg);

    // The statistics as stored metrics (sluice.quality_metrics, Parquet on S3 + Glue), through Athena.
    const metrics = await query(
      `SELECT metric, value, text FROM sluice.quality_metrics
        WHERE pipeline = 'quotes' AND table_name = 'quotes_agg' AND unit = '${DAY}' AND run_id = '${result.runId}'`,
    );
    const byMetric = Object.fromEntries(metrics.map((m) => [m.metric, m.value ?? m.text]));
    expect(byMetric).toMatchObject({
      top_quote: agg[0]!.quote_text,
      top_quote_author: agg[0]!.author,
      top_quote_id: agg[0]!.quote_id,
      quote_count_min: stats.min,
      quote_count_max: stats.max,
      quote_count_range: stats.range,
      distinct_quotes: stats.distinctQuotes,
      polls: POLLS,
    });
    expect(Number(byMetric.quote_count_variance)).toBeCloseTo(stats.variance, 12);
    expect(Number(byMetric.quote_count_stddev)).toBeCloseTo(stats.standardDeviation, 12);

    // Run log in DynamoDB: the poll run and the transform.
    const runs = await (await RunLog.open(backend.kv, clock)).list({ pipeline: 'quotes' });
    expect(runs.map((r) => [r.step, r.status, r.counts?.read]).sort()).toEqual([
      ['poll', 'succeeded', POLLS],
      ['transform', 'succeeded', POLLS],
    ]);
  }, 60_000);

  it('the named query quotes.top_quotes runs on the fake Athena: the most drawn quotes first', async () => {
    expect(agg.length).toBeGreaterThan(0);
    const top = agg.slice(0, 10).map((r) => ({
      dt: DAY,
      quote_id: r.quote_id,
      quote_text: r.quote_text,
      author: r.author,
      quote_count: r.quote_count,
      first_ingestion: r.first_ingestion,
      last_ingestion: r.last_ingestion,
    }));
    const normalize = (rows: Record<string, unknown>[]) =>
      rows.map((r) => ({
        ...r,
        dt: String(r.dt).slice(0, 10),
        quote_count: Number(r.quote_count),
        first_ingestion: iso(r.first_ingestion),
        last_ingestion: iso(r.last_ingestion),
      }));
    // By name, inlined by the engine with its defaults (every day, 10 rows).
    expect(normalize(await query('SELECT * FROM quotes.top_quotes'))).toEqual(top);
    const ran = [...athena.executions.values()].map((e) => [e.input.QueryString ?? '', e.state]);
    expect(ran.at(-1)?.[0]).toMatch(/FROM quotes\.quotes_agg/);
    expect(ran.at(-1)?.[1]).toBe('SUCCEEDED');
    // Bound to the day with a smaller limit.
    const bound = bindNamedQuery(quotesQueries[0]!, { date: DAY, limit: '3' });
    expect(normalize(await query(bound))).toEqual(top.slice(0, 3));
  }, 60_000);

  it("re-running the day's transform replaces its partitions: the same objects, rows and statistics", async () => {
    const again = await transformStep(ctx, { date: DAY });
    if (again.status !== 'published') throw new Error(`not published: ${again.status}`);
    expect(again.statistics.distinctQuotes).toBe(agg.length);
    expect([
      ...(await analyticalKeys('quotes/quotes_fact/')),
      ...(await analyticalKeys('quotes/quotes_agg/')),
    ]).toEqual(firstKeys);
    expect(glue.partitions('quotes', 'quotes_fact')).toHaveLength(1);
    expect(glue.partitions('quotes', 'quotes_agg')).toHaveLength(1);
    const [counts] = await query(
      `SELECT (SELECT count(*) FROM quotes.quotes_fact) AS fact,
              (SELECT sum(quote_count) FROM quotes.quotes_agg) AS polls,
              (SELECT count(*) FROM quotes.quotes_agg) AS groups`,
    );
    expect({
      fact: Number(counts?.fact),
      polls: Number(counts?.polls),
      groups: Number(counts?.groups),
    }).toEqual({
      fact: POLLS,
      polls: POLLS,
      groups: agg.length,
    });
  }, 60_000);
});
