import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand } from '@aws-sdk/client-kinesis';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAnalytical } from '../../pipelines/hashtags/analytical.ts';
import { hashtagsQueries } from '../../pipelines/hashtags/definition.ts';
import { newRunId, runHashtags } from '../../pipelines/hashtags/run.ts';
import { deleteStaging, processStaging } from '../../pipelines/hashtags/staging.ts';
import { systemClock } from '../../src/core/clock.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { RunLog, type RunRecord } from '../../src/core/run.ts';
import { type AwsStack, startAwsStack } from '../helpers/aws-stack.ts';
import { HASHTAGS_SAMPLES } from '../helpers/samples.ts';
import {
  type ExpectedRecord,
  expectedRows,
  expectedV1Records,
  iso,
  multiset,
  readJsonArray,
  sha1Base64,
} from '../helpers/tweets.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const TABLE_PREFIX = 'e2e-hashtags-';
const STREAM_PREFIX = 'e2e-';

/** The landing record fields the producer should have sent for `record`, in CSV column order. */
function landingFields(record: ExpectedRecord): string[] {
  return [
    record.created,
    record.tweet_id,
    record.user_name,
    String(record.rt_count),
    record.hashtags.join(' '),
    record.text,
  ];
}

describe('hashtags on the aws backend (kinesalite, s3rver, dynalite, fake Glue and Athena)', () => {
  const statuses = readJsonArray(HASHTAGS_SAMPLES.v1Timeline);
  const records = expectedV1Records(statuses);
  const rows = expectedRows(records);
  /** mentions per hashtag (one per record carrying it), distinct tweets and users, from the raw capture. */
  const topHashtags = (() => {
    const byTag = new Map<string, { mentions: number; tweets: Set<string>; users: Set<string> }>();
    for (const row of rows) {
      const entry = byTag.get(row.hashtag) ?? { mentions: 0, tweets: new Set(), users: new Set() };
      entry.mentions++;
      entry.tweets.add(row.tweet_id);
      entry.users.add(row.user_name);
      byTag.set(row.hashtag, entry);
    }
    return Object.fromEntries(
      [...byTag].map(([tag, e]) => [
        tag,
        { mentions: e.mentions, tweets: e.tweets.size, users: e.users.size },
      ]),
    );
  })();

  let stack: AwsStack;
  let s3: AwsStack['s3'];
  let glue: AwsStack['glue'];
  let athena: AwsStack['athena'];
  let backend: AwsStack['backend'];
  let ctx: PipelineContext;
  let s3Client: AwsStack['s3Client'];
  let dynamo: AwsStack['dynamo'];
  let kinesis: NonNullable<AwsStack['kinesis']>;
  let first: Awaited<ReturnType<typeof runHashtags>>;

  beforeAll(async () => {
    const started = await startAwsStack({
      tablePrefix: TABLE_PREFIX,
      streamPrefix: STREAM_PREFIX,
      kinesis: true,
    });
    stack = started;
    ({ s3, glue, athena, backend, s3Client, dynamo, kinesis } = started);
    ctx = stack.ctx();
    first = await runHashtags(ctx, {
      source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v1Timeline] },
      consumerMaxMs: 60_000,
    });
  }, 60_000);

  afterAll(() => stack?.close());

  async function keys(bucket: string, prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3Client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const o of page.Contents ?? []) out.push(o.Key ?? '');
      token = page.NextContinuationToken;
    } while (token);
    return out;
  }

  async function query(sql: string): Promise<Record<string, unknown>[]> {
    const engine = await backend.openQueryEngine({ namedQueries: hashtagsQueries });
    try {
      return (await engine.query(sql)).rows as Record<string, unknown>[];
    } finally {
      await engine.close();
    }
  }

  async function stepRecords(runId: string): Promise<Record<string, RunRecord>> {
    const runs = await RunLog.open(backend.kv, systemClock);
    const list = (await runs.list({ pipeline: 'hashtags' })).filter((r) => r.runId === runId);
    return Object.fromEntries(list.map((r) => [r.step, r]));
  }

  it('the capture derivation: 63 statuses, 15 kept, 18 hashtag rows', () => {
    expect(statuses).toHaveLength(63);
    expect(records).toHaveLength(15);
    expect(rows).toHaveLength(18);
  });

  it('counts reconcile stage by stage and in the run log on DynamoDB', async () => {
    const filtered = statuses.length - records.length;
    const p = first.produce.counts;
    expect(p).toMatchObject({ read: 63, loaded: 15, filtered, quarantined: 0, duplicates: 0 });
    expect(p.read).toBe(p.loaded + p.duplicates + p.quarantined + (p.filtered ?? 0));
    expect(first.land.counts).toEqual({ read: 15, loaded: 15, duplicates: 0, quarantined: 0 });
    expect(first.land.stoppedBecause).toBe('drained');
    expect(first.staging.counts).toMatchObject({ read: 15, loaded: 15, duplicates: 0, quarantined: 0 });
    expect(first.staging.rows).toBe(rows.length);
    expect(first.analytical?.counts).toEqual({ read: 18, loaded: 18, duplicates: 0, quarantined: 0 });
    expect(first.stream).toMatchObject({
      name: 'hashtags-tweets',
      created: true,
      deleted: true,
      unconsumed: 0,
    });
    // The Kinesis stream (with the prefix) is gone from kinesalite.
    await expect(
      kinesis.send(new DescribeStreamCommand({ StreamName: `${STREAM_PREFIX}hashtags-tweets` })),
    ).rejects.toMatchObject({ name: 'ResourceNotFoundException' });

    const steps = await stepRecords(first.runId);
    expect(Object.keys(steps).sort()).toEqual(['analytical', 'land', 'produce', 'staging']);
    for (const record of Object.values(steps)) expect(record.status).toBe('succeeded');
    expect(steps.produce?.counts).toEqual({ read: 63, loaded: 15, duplicates: 0, quarantined: 0, filtered });
    expect(steps.land?.counts).toEqual({ read: 15, loaded: 15, duplicates: 0, quarantined: 0 });
    expect(steps.analytical?.counts).toMatchObject({ read: 18, loaded: 18 });
  });

  it('landing CSV in the landing bucket holds exactly the records sent (plain S3 client)', async () => {
    const landed = await keys(s3.buckets.landing, 'hashtags/');
    expect(landed).toEqual(first.land.landed.map((l) => l.key));
    const lines: string[][] = [];
    for (const key of landed) {
      expect(key).toMatch(/^hashtags\/\d{4}\/\d{2}\/\d{2}\/hashtags-tweets-\d{6}-\d+\.csv$/);
      const object = await s3Client.send(new GetObjectCommand({ Bucket: s3.buckets.landing, Key: key }));
      const text = await object.Body!.transformToString('utf8');
      lines.push(...(parse(text, { relax_column_count: true }) as string[][]));
    }
    expect(lines).toHaveLength(records.length);
    for (const line of lines) {
      expect(line).toHaveLength(8);
      expect(line[0]).toMatch(/^\d+$/); // a kinesalite sequence number
      expect(line[1]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
    expect(multiset(lines.map((l) => l.slice(2)))).toEqual(multiset(records.map(landingFields)));
  });

  it('hashtag_data (Parquet in the analytical bucket, through the fake Athena) holds exactly the derived rows', async () => {
    const data = await query('SELECT * FROM hashtags.hashtag_data ORDER BY hash_id');
    const comparable = data.map((r) => ({
      tweet_id: r.tweet_id,
      user_name: r.user_name,
      rt_count: Number(r.rt_count),
      hashtag: r.hashtag,
      created: iso(r.created),
    }));
    expect(multiset(comparable)).toEqual(multiset(rows));
    for (const row of data) {
      expect(row.hash_id).toBe(sha1Base64(String(row.record_id), String(row.tweet_id), String(row.hashtag)));
    }
    expect(new Set(data.map((r) => r.record_id)).size).toBe(records.length);

    const objects = await keys(s3.buckets.analytical, 'hashtags/hashtag_data/');
    expect(objects.length).toBeGreaterThan(0);
    for (const key of objects) {
      expect(key).toMatch(/^hashtags\/hashtag_data\/year=\d{4}\/month=\d{2}\/day=\d{2}\/.+\.parquet$/);
    }
  });

  it('Glue holds hashtags.staging / hashtag_data / data_update_log with the partitions of the arrival date', async () => {
    const [arrival] = await query('SELECT min(time_stamp) AS t FROM hashtags.hashtag_data');
    const day = iso(arrival?.t).slice(0, 10).split('-');
    for (const name of ['staging', 'hashtag_data', 'data_update_log']) {
      const table = glue.table('hashtags', name);
      expect(table?.PartitionKeys?.map((k) => k.Name)).toEqual(['year', 'month', 'day']);
    }
    const partitions = glue.partitions('hashtags', 'hashtag_data');
    expect(partitions.map((p) => p.Values)).toEqual([day]);
    const [partition] = partitions;
    const prefix = `hashtags/hashtag_data/year=${day[0]}/month=${day[1]}/day=${day[2]}/`;
    expect(partition?.StorageDescriptor?.Location).toBe(`s3://${s3.buckets.analytical}/${prefix}`);
    const files = JSON.parse(partition?.Parameters?.['sluice:files'] ?? '[]') as { key: string }[];
    expect(files.map((f) => f.key).sort()).toEqual((await keys(s3.buckets.analytical, prefix)).sort());
    expect(partition?.Parameters?.numRows).toBe(String(rows.length));

    const log = await query(
      `SELECT table_name, records_inserted FROM hashtags.data_update_log WHERE run_id = '${first.runId}' ORDER BY table_name`,
    );
    expect(log.map((r) => [r.table_name, Number(r.records_inserted)])).toEqual([
      ['hashtag_data', 18],
      ['staging', 18],
    ]);
  });

  it('named query hashtags.top_hashtags on the fake Athena equals the counts derived from the capture', async () => {
    const result = await query('SELECT * FROM hashtags.top_hashtags');
    const got = Object.fromEntries(
      result.map((r) => [
        String(r.hashtag),
        { mentions: Number(r.mentions), tweets: Number(r.tweets), users: Number(r.users) },
      ]),
    );
    expect(got).toEqual(topHashtags);
    expect(result[0]).toMatchObject({ hashtag: 'Turkey' });
    expect(Number(result[0]?.mentions)).toBe(3);
    // What reached "Athena" is the named query inlined (no unresolved parameter).
    const statements = [...athena.executions.values()].map((e) => e.input.QueryString ?? '');
    const inlined = statements.find((s) => s.includes('spelling_rank'));
    expect(inlined).toBeDefined();
    expect(inlined).not.toMatch(/\$since|\$until|\$limit/);

    // The dashboard snapshot in DynamoDB (plain client) holds the same counts.
    const item = await dynamo.send(
      new GetItemCommand({
        TableName: `${TABLE_PREFIX}sluice_dashboards`,
        Key: { pipeline: { S: 'hashtags' } },
      }),
    );
    const top = item.Item?.queries?.M?.top_hashtags?.L ?? [];
    expect(Object.fromEntries(top.map((r) => [r.M?.hashtag?.S, Number(r.M?.mentions?.N)]))).toEqual(
      Object.fromEntries(Object.entries(topHashtags).map(([tag, c]) => [tag, c.mentions])),
    );
  });

  it('is idempotent: the same capture is skipped, and re-staging its landing objects loads no row twice', async () => {
    const before = await keys(s3.buckets.analytical, 'hashtags/hashtag_data/');
    const again = await runHashtags(ctx, {
      source: { kind: 'replay', files: [HASHTAGS_SAMPLES.v1Timeline] },
      consumerMaxMs: 60_000,
    });
    expect(again.produce.files).toHaveLength(1);
    expect(again.produce.files[0]).toMatchObject({ status: 'skipped', previousRun: first.runId });
    expect(again.produce.counts).toMatchObject({ read: 0, loaded: 0, filtered: 0, quarantined: 0 });
    expect(again.land.landed).toEqual([]);
    expect(again.analytical).toBeNull();
    expect(await keys(s3.buckets.analytical, 'hashtags/hashtag_data/')).toEqual(before);

    // The first run's landing objects staged again: the merge on hash_id inserts nothing.
    const runId = newRunId(systemClock.now());
    await deleteStaging(ctx, runId);
    const staged = await processStaging(ctx, {
      runId,
      selection: { keys: first.land.landed.map((l) => l.key) },
    });
    expect(staged.rows).toBe(rows.length);
    const reloaded = await loadAnalytical(ctx, { runId });
    expect(reloaded.counts).toEqual({ read: 18, loaded: 0, duplicates: 18, quarantined: 0 });
    expect(reloaded.counts.read).toBe(reloaded.counts.loaded + reloaded.counts.duplicates);
    // The writer still publishes its unit's (empty) file: no row is added, the partition counts 18.
    const after = await keys(s3.buckets.analytical, 'hashtags/hashtag_data/');
    expect(after.filter((k) => before.includes(k))).toEqual(before);
    const [partition] = glue.partitions('hashtags', 'hashtag_data');
    const files = JSON.parse(partition?.Parameters?.['sluice:files'] ?? '[]') as {
      key: string;
      rows: number;
    }[];
    expect(files.map((f) => f.key).sort()).toEqual(after);
    for (const f of files) expect(f.rows).toBe(before.includes(f.key) ? 18 : 0);
    const [count] = await query(
      'SELECT count(*) AS n, count(DISTINCT hash_id) AS ids FROM hashtags.hashtag_data',
    );
    expect({ n: Number(count?.n), ids: Number(count?.ids) }).toEqual({ n: 18, ids: 18 });
    expect(glue.partitions('hashtags', 'hashtag_data')).toHaveLength(1);
  });
});
