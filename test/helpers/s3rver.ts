import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { clientOptions } from '../../src/backends/aws/clients.ts';
import { LAYERS, type Layer } from '../../src/core/layer.ts';

/**
 * A running s3rver (an S3 emulator) for tests: one bucket per lake layer, data in a fresh temp
 * directory, listening on `127.0.0.1` on a free port. Start it in `beforeAll`, `stop()` it in
 * `afterAll`.
 *
 * ```ts
 * let s3: RunningS3rver;
 * beforeAll(async () => { s3 = await startS3rver(); });
 * afterAll(() => s3.stop());
 * const store = new S3ObjectStore(s3.client(), { buckets: s3.buckets, region: s3.region });
 * ```
 *
 * **Why a child process.** s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES
 * (`crypto.createCipheriv('des', ...)`, lib/controllers/bucket.js), which OpenSSL 3 (Node 18+)
 * only offers with the legacy provider: in the test process every listing that needs a second
 * page fails with `ERR_OSSL_EVP_UNSUPPORTED`. The provider can only be enabled at process start
 * (`--openssl-legacy-provider`), and setting it for all of vitest would weaken crypto for every
 * test. So the harness runs s3rver in its own `node --openssl-legacy-provider` child (~0.3 s to
 * start) and talks to it over IPC; the child exits when the parent goes away.
 *
 * **Listing order fix.** s3rver lists keys in the order it walks its storage directory (each
 * directory's entries by name, a directory's keys before its sibling files), not in S3's UTF-8
 * binary order: it returns `a/b` before `a-c` although `-` (0x2D) sorts before `/` (0x2F), and
 * it compares `start-after` as UTF-16 strings. Real S3 (general purpose buckets) lists in UTF-8
 * binary order (ListObjectsV2 API reference), and adapters rely on that, so the child replaces
 * `FilesystemStore.prototype.listObjects` with one that collects the keys under the prefix, sorts
 * them by UTF-8 bytes and applies `start-after`/delimiter/max-keys on that order. Everything else
 * is stock s3rver.
 *
 * **Client settings** ({@link RunningS3rver.client} applies them): path-style addressing and
 * checksums only when required (`clientOptions(config, 's3')`), else streamed uploads are stored
 * with their aws-chunked envelope (TOOLCHAIN.md). s3rver accepts the credentials
 * `S3RVER`/`S3RVER`, which `clientOptions` sets for an emulator endpoint.
 *
 * **Events.** s3rver implements no bucket notification configuration, but emits an S3 event
 * (`{ Records: [...] }`, eventVersion 2.0, eventName `ObjectCreated:Put|Post|Copy` or
 * `ObjectRemoved:Delete`) for each write; the child forwards them and
 * {@link RunningS3rver.server} re-emits them as `'event'`, for tests that simulate S3 notifying
 * a Lambda function.
 */
export interface RunningS3rver {
  /** `http://127.0.0.1:<port>`: the S3 endpoint for SDK clients. */
  readonly endpoint: string;
  /** The region clients should use (s3rver ignores it; tokens are minted for `us-east-1`). */
  readonly region: string;
  /** The bucket of each layer (all created, empty, when `startS3rver` resolves). */
  readonly buckets: Readonly<Record<Layer, string>>;
  /** The s3rver storage directory (removed by `stop`). */
  readonly directory: string;
  /** Handle on the child process: emits `'event'` with every S3 event record envelope s3rver emits. */
  readonly server: S3rverProcess;
  /** `{ region, endpoints: { s3: endpoint } }`, to pass to `clientOptions` or an AWS backend config. */
  readonly config: { readonly region: string; readonly endpoints: Readonly<Record<string, string>> };
  /** A new S3Client configured for this emulator (path style, WHEN_REQUIRED checksums, dummy credentials). */
  client(): S3Client;
  /** Stops the server (SIGKILL after 5 s) and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/** The s3rver child process as seen from the test: its pid and forwarded S3 events. */
export interface S3rverProcess extends EventEmitter {
  /** Pid of the child running s3rver. */
  readonly pid: number;
  on(event: 'event', listener: (event: { Records: Record<string, unknown>[] }) => void): this;
}

/** Options of {@link startS3rver}. */
export interface S3rverOptions {
  /**
   * Bucket names by layer; missing layers get `<bucketPrefix><layer>`. Names must be valid S3
   * bucket names (3-63 lowercase letters, digits, `-`, `.`).
   */
  readonly buckets?: Partial<Record<Layer, string>>;
  /** Prefix of default bucket names (default `sluice-test-`). */
  readonly bucketPrefix?: string;
  /** Milliseconds to wait for the server to listen (default 20,000). */
  readonly startTimeoutMs?: number;
}

/**
 * Program of the child process (CommonJS, run with `node --openssl-legacy-provider -e`). Reads
 * its settings from `SLUICE_S3RVER_SETTINGS` (JSON: s3rver module path, directory, buckets).
 */
const CHILD_PROGRAM = `
'use strict';
const path = require('node:path');
const settings = JSON.parse(process.env.SLUICE_S3RVER_SETTINGS);
const S3rver = require(settings.s3rver);
const lib = path.dirname(settings.s3rver);
const FilesystemStore = require(path.join(lib, 'stores', 'filesystem.js'));
const S3Object = require(path.join(lib, 'models', 'object.js'));
const { walk } = require(path.join(lib, 'utils.js'));

const OBJECT_SUFFIX = '._S3rver_object';
const byBytes = (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

// S3 lists keys in UTF-8 binary order; s3rver walks directories (see test/helpers/s3rver.ts).
FilesystemStore.prototype.listObjects = async function listObjects(bucket, options) {
  const { delimiter = '', startAfter = '', prefix = '', maxKeys = Infinity } = options;
  const bucketPath = this.getBucketPath(bucket);
  const prefixPath = bucketPath + '/' + prefix;
  const all = [];
  const it = walk(bucketPath, (dirPath) => dirPath.startsWith(prefixPath) || prefixPath.startsWith(dirPath + '/'));
  for (const keyPath of it) {
    if (!keyPath.endsWith(OBJECT_SUFFIX)) continue;
    const key = keyPath.slice(bucketPath.length + 1, -OBJECT_SUFFIX.length);
    if (key.startsWith(prefix) && byBytes(key, startAfter) > 0) all.push(key);
  }
  all.sort(byBytes);
  const keys = [];
  const commonPrefixes = new Set();
  let isTruncated = false;
  for (const key of all) {
    if (delimiter) {
      const idx = key.slice(prefix.length).indexOf(delimiter);
      if (idx !== -1) {
        commonPrefixes.add(key.slice(0, prefix.length + idx + delimiter.length));
        continue;
      }
    }
    if (keys.length >= maxKeys) {
      isTruncated = true;
      break;
    }
    keys.push(key);
  }
  const metadata = await Promise.all(
    keys.map((key) => this.getMetadata(bucket, key).catch((err) => { if (err.code === 'ENOENT') return undefined; throw err; })),
  );
  return {
    objects: keys.flatMap((key, i) => (metadata[i] === undefined ? [] : [new S3Object(bucket, key, null, metadata[i])])),
    commonPrefixes: [...commonPrefixes].sort(byBytes),
    isTruncated,
  };
};

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  silent: true,
  directory: settings.directory,
  configureBuckets: settings.buckets.map((name) => ({ name })),
});
server.on('event', (event) => {
  if (process.connected) process.send({ type: 'event', event });
});
server.run().then(
  (address) => process.send({ type: 'ready', port: address.port }),
  (error) => {
    process.send({ type: 'failed', message: String((error && error.stack) || error) });
    process.exit(1);
  },
);
const shutdown = () => {
  server.close().catch(() => {}).finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('message', (message) => { if (message && message.type === 'stop') shutdown(); });
process.on('disconnect', shutdown);
`;

/**
 * Starts s3rver in a child process (see {@link RunningS3rver} for why and what is patched) with
 * the four layer buckets created, in a new temp directory, on `127.0.0.1` port 0.
 * @throws {Error} with the child's stderr when it does not start within `startTimeoutMs`.
 */
export async function startS3rver(options: S3rverOptions = {}): Promise<RunningS3rver> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const bucketPrefix = options.bucketPrefix ?? 'sluice-test-';
  const buckets = Object.fromEntries(
    LAYERS.map((layer) => [layer, options.buckets?.[layer] ?? `${bucketPrefix}${layer}`]),
  ) as Record<Layer, string>;
  const directory = await mkdtemp(join(tmpdir(), 'sluice-s3rver-'));
  const s3rverMain = createRequire(import.meta.url).resolve('s3rver');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SLUICE_S3RVER_SETTINGS: JSON.stringify({
      s3rver: s3rverMain,
      directory,
      buckets: Object.values(buckets),
    }),
  };
  // The flag goes on the command line; inherited NODE_OPTIONS (test runners' hooks) stay out.
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD_PROGRAM], {
    cwd: dirname(s3rverMain),
    env,
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const server = Object.assign(new EventEmitter(), { pid: child.pid ?? -1 }) as S3rverProcess;
  child.on('message', (message: { type?: string; event?: unknown }) => {
    if (message?.type === 'event') server.emit('event', message.event);
  });

  let port: number;
  try {
    port = await waitReady(child, options.startTimeoutMs ?? 20_000, () => stderr);
  } catch (error) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw error;
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const region = 'us-east-1';
  const config = { region, endpoints: { s3: endpoint } };
  let stopped: Promise<void> | undefined;
  return {
    endpoint,
    region,
    buckets,
    directory,
    server,
    config,
    client: () => new S3Client(clientOptions(config, 's3')),
    stop: () => {
      stopped ??= stopChild(child).then(() => rm(directory, { recursive: true, force: true }));
      return stopped;
    },
  };
}

/** Resolves with the port from the child's `ready` message; rejects on failure, exit or timeout. */
function waitReady(child: ChildProcess, timeoutMs: number, stderr: () => string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const done = (error: Error | undefined, port?: number) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
      if (error) reject(error);
      else resolve(port as number);
    };
    const onMessage = (message: { type?: string; port?: number; message?: string }) => {
      if (message?.type === 'ready' && typeof message.port === 'number') done(undefined, message.port);
      else if (message?.type === 'failed') done(new Error(`s3rver failed to start: ${message.message}`));
    };
    const onExit = (code: number | null, signal: string | null) =>
      done(new Error(`s3rver exited before listening (code ${code}, signal ${signal}): ${stderr()}`));
    const onError = (error: Error) => done(new Error(`cannot spawn s3rver: ${error.message}`));
    const timer = setTimeout(
      () => done(new Error(`s3rver did not listen within ${timeoutMs} ms: ${stderr()}`)),
      timeoutMs,
    );
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.on('error', onError);
  });
}

/** Asks the child to close its server and exit; SIGKILLs it after 5 s. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    if (child.connected) child.send({ type: 'stop' });
    else child.kill('SIGTERM');
  });
}
