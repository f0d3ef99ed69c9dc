import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AthenaClient } from '@aws-sdk/client-athena';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GlueClient } from '@aws-sdk/client-glue';
import { KinesisClient } from '@aws-sdk/client-kinesis';
import { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import type { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { createAwsBackend } from '../../src/backends/aws/aws-backend.ts';
import type { AwsBackendConfig } from '../../src/backends/aws/config.ts';
import { S3ObjectStore } from '../../src/backends/aws/s3-object-store.ts';
import { type Clock, systemClock } from '../../src/core/clock.ts';
import type { PipelineContext } from '../../src/core/context.ts';
import { noProgress, silentLogger } from '../../src/core/logger.ts';
import type { Backend } from '../../src/core/ports/backend.ts';
import { type DynaliteServer, startDynalite } from './dynalite.ts';
import { type FakeAthena, installFakeAthena } from './fake-athena.ts';
import { type FakeGlue, installFakeGlue } from './fake-glue.ts';
import { FakeRedshiftData } from './fake-redshift-data.ts';
import { type KinesaliteServer, startKinesalite } from './kinesalite.ts';
import { type RunningS3rver, startS3rver } from './s3rver.ts';
import { startTestWarehouse, type TestWarehouse } from './tolls.ts';

/** The Redshift part of {@link AwsStackOptions}: the backend's `redshift` config and the fake's settings. */
export interface AwsStackRedshiftOptions extends NonNullable<AwsBackendConfig['redshift']> {
  /** Label of the embedded PostgreSQL the fake runs the SQL on ({@link startTestWarehouse}). */
  readonly warehouseLabel: string;
  /** Records per `GetStatementResult` page of the fake (default: the fake's, 2). */
  readonly pageSize?: number;
}

/** Options of {@link startAwsStack}. */
export interface AwsStackOptions {
  /** `AwsBackendConfig.tablePrefix` of the backend (e.g. `'e2e-gharchive-'`); also names the temp work dir. */
  readonly tablePrefix: string;
  /** Prefix of the four layer buckets on s3rver (`<bucketPrefix><layer>`; default `tablePrefix`). */
  readonly bucketPrefix?: string;
  /** `AwsBackendConfig.streamPrefix` (default `''`). */
  readonly streamPrefix?: string;
  /** Also start kinesalite and point the backend's Kinesis endpoint at it (default false). */
  readonly kinesis?: boolean;
  /**
   * Also start an embedded PostgreSQL and the fake Redshift Data API over it, mocked on
   * `RedshiftDataClient.prototype` (COPY reads s3rver through its own S3 client), and configure the
   * backend's warehouse with it (default: no warehouse).
   */
  readonly redshift?: AwsStackRedshiftOptions;
  /** The backend's and the context's clock (default {@link systemClock}). */
  readonly clock?: Clock;
}

/** The emulators, fakes, clients and backend {@link startAwsStack} started. */
export interface AwsStack {
  /** `createAwsBackend(config, { createResources: true, clock })`. */
  readonly backend: Backend & { config: AwsBackendConfig };
  /** The backend's config: region `us-east-1`, s3rver's buckets, emulator endpoints, Glue prefix `''`. */
  readonly config: AwsBackendConfig;
  readonly clock: Clock;
  /** A fresh temp directory (removed by `close`): the default `workDir` of {@link AwsStack.ctx}. */
  readonly workDir: string;
  /** s3rver with the four layer buckets (on disk under `s3.directory`). */
  readonly s3: RunningS3rver;
  /** A plain S3 client on s3rver, to read the lake independently of sluice. */
  readonly s3Client: S3Client;
  readonly dynalite: DynaliteServer;
  /** A plain DynamoDB client on dynalite (region `us-east-1`, dummy credentials). */
  readonly dynamo: DynamoDBClient;
  /** With `kinesis: true`: kinesalite and a plain client on it (HTTP/1.1 handler, TOOLCHAIN.md). */
  readonly kinesalite?: KinesaliteServer;
  readonly kinesis?: KinesisClient;
  /** The fake Glue Data Catalog, mocked on `GlueClient.prototype` (every client the backend builds). */
  readonly glue: FakeGlue;
  /**
   * The fake Athena on `AthenaClient.prototype`: DuckDB over the files s3rver keeps for the objects
   * of `glue`'s tables (`objectSuffix: '._S3rver_object'`), answering every poll at once.
   */
  readonly athena: FakeAthena;
  /** With `redshift`: the PostgreSQL under the fake (query it with plain `pg`) and the fake itself. */
  readonly warehouse?: TestWarehouse;
  readonly redshift?: FakeRedshiftData;
  /**
   * A new pipeline context on the backend: the stack's clock, silent logger, no progress,
   * `workDir`, engine 2 threads and `'512MB'`; `overrides` replace any of these.
   */
  ctx(overrides?: Partial<PipelineContext>): PipelineContext;
  /**
   * Stops everything the stack started, in reverse order of starting (clients, backend, fakes,
   * work dir, emulators), going on when one step throws; then rejects with that error (an
   * `AggregateError` when several threw). Idempotent.
   */
  close(): Promise<void>;
}

/** {@link AwsStack} with `kinesalite`/`kinesis` and `warehouse`/`redshift` present when `O` asked for them. */
export type AwsStackFor<O extends AwsStackOptions> = AwsStack &
  (O extends { kinesis: true } ? Required<Pick<AwsStack, 'kinesalite' | 'kinesis'>> : unknown) &
  (O extends { redshift: AwsStackRedshiftOptions }
    ? Required<Pick<AwsStack, 'warehouse' | 'redshift'>>
    : unknown);

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'x', secretAccessKey: 'x' };

/** Runs `steps` last to first, each even when an earlier one threw; rethrows what they threw. */
async function runInReverse(steps: readonly (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of [...steps].reverse()) {
    try {
      await step();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} teardown steps failed`);
}

/**
 * Starts the aws backend of sluice's end-to-end tests against emulators and fakes, all on
 * 127.0.0.1 and free ports: s3rver (buckets `<bucketPrefix><layer>`), dynalite (tables created on
 * first use), optionally kinesalite and the fake Redshift Data API over PostgreSQL; the fake Glue
 * and Athena installed at class level (the backend builds its own clients); then
 * `createAwsBackend` with `createResources: true`. Start it in `beforeAll`, `close()` it in
 * `afterAll`.
 *
 * ```ts
 * let stack: AwsStack;
 * beforeAll(async () => { stack = await startAwsStack({ tablePrefix: 'e2e-x-', kinesis: true }); });
 * afterAll(() => stack?.close());
 * ```
 * @throws the first start error; everything started before it is stopped first.
 */
export async function startAwsStack<const O extends AwsStackOptions>(options: O): Promise<AwsStackFor<O>> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const clock = options.clock ?? systemClock;
  const cleanups: (() => unknown)[] = [];
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= runInReverse(cleanups);
    return closing;
  };
  /** Registers `stop` of what `starting` resolves to as soon as it has started. */
  const tracked = <T extends { stop(): Promise<void> }>(starting: Promise<T>): Promise<T> =>
    starting.then((started) => {
      cleanups.push(() => started.stop());
      return started;
    });
  const starting = [
    tracked(startS3rver({ bucketPrefix: options.bucketPrefix ?? options.tablePrefix })),
    tracked(startDynalite()),
    options.kinesis ? tracked(startKinesalite()) : undefined,
    options.redshift ? tracked(startTestWarehouse(options.redshift.warehouseLabel)) : undefined,
  ] as const;
  try {
    const [s3, dynalite, kinesalite, warehouse] = await Promise.all(starting);
    const workDir = await mkdtemp(path.join(os.tmpdir(), `sluice-aws-${options.tablePrefix}`));
    cleanups.push(() => rm(workDir, { recursive: true, force: true }));
    const glue = installFakeGlue({ client: GlueClient.prototype });
    cleanups.push(() => glue.restore());
    const athena = installFakeAthena({
      glue,
      client: AthenaClient.prototype,
      bucketDirs: Object.fromEntries(
        Object.values(s3.buckets).map((bucket) => [bucket, path.join(s3.directory, bucket)]),
      ),
      objectSuffix: '._S3rver_object',
      pollsQueued: 0,
      pollsRunning: 0,
    });
    cleanups.push(() => athena.close());
    const s3Client = s3.client();
    cleanups.push(() => s3Client.destroy());
    let redshift: FakeRedshiftData | undefined;
    let redshiftConfig: AwsBackendConfig['redshift'];
    if (options.redshift && warehouse) {
      const { workgroupName, database, copyRoleArn, pageSize } = options.redshift;
      redshiftConfig = { workgroupName, database, copyRoleArn };
      redshift = await FakeRedshiftData.start({
        connectionString: warehouse.url,
        objectStore: new S3ObjectStore(s3Client, { buckets: s3.buckets, region: s3.region }),
        buckets: s3.buckets,
        workgroupName,
        database,
        ...(pageSize === undefined ? {} : { pageSize }),
        client: RedshiftDataClient.prototype,
      });
      const fake = redshift;
      cleanups.push(() => fake.close());
    }
    const config: AwsBackendConfig = {
      region: REGION,
      buckets: s3.buckets,
      tablePrefix: options.tablePrefix,
      glueDatabasePrefix: '',
      streamPrefix: options.streamPrefix ?? '',
      ...(redshiftConfig ? { redshift: redshiftConfig } : {}),
      endpoints: {
        s3: s3.endpoint,
        dynamodb: dynalite.endpoint,
        ...(kinesalite ? { kinesis: kinesalite.endpoint } : {}),
      },
    };
    const backend = await createAwsBackend(config, { createResources: true, clock });
    cleanups.push(() => backend.close());
    const dynamo = new DynamoDBClient({
      region: REGION,
      endpoint: dynalite.endpoint,
      credentials: CREDENTIALS,
    });
    cleanups.push(() => dynamo.destroy());
    let kinesis: KinesisClient | undefined;
    if (kinesalite) {
      const client = new KinesisClient({
        region: REGION,
        endpoint: kinesalite.endpoint,
        credentials: CREDENTIALS,
        requestHandler: new NodeHttpHandler(),
      });
      cleanups.push(() => client.destroy());
      kinesis = client;
    }
    const stack: AwsStack = {
      backend,
      config,
      clock,
      workDir,
      s3,
      s3Client,
      dynalite,
      dynamo,
      ...(kinesalite && kinesis ? { kinesalite, kinesis } : {}),
      glue,
      athena,
      ...(warehouse && redshift ? { warehouse, redshift } : {}),
      ctx: (overrides = {}) => ({
        backend,
        clock,
        logger: silentLogger,
        progress: noProgress,
        workDir,
        engine: { threads: 2, memoryLimit: '512MB' },
        ...overrides,
      }),
      close,
    };
    return stack as AwsStackFor<O>;
  } catch (error) {
    // Let every start settle so that what did start is registered, then stop it.
    await Promise.allSettled(starting);
    await close().catch(() => undefined);
    throw error;
  }
}
