import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';

/** The options of `dynalite(options)` that sluice's tests use (dynalite 4.0.0 readme). */
interface DynaliteOptions {
  /** ms a table stays `CREATING` / `DELETING` / `UPDATING` (dynalite default 500). */
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
  /** Largest item in KiB (default 400, as DynamoDB). */
  maxItemSizeKb?: number;
}

/** A running dynalite server. */
export interface DynaliteServer {
  /** `http://127.0.0.1:<port>`, for a `DynamoDBClient`'s `endpoint`. */
  readonly endpoint: string;
  /** Closes every connection and the in-memory store; idempotent. */
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

/**
 * Starts dynalite 4.0.0 (an in-memory DynamoDB emulator on LevelDB/memdown) on 127.0.0.1 with
 * an ephemeral port, tables `ACTIVE` at once (`createTableMs`, `deleteTableMs`, `updateTableMs`
 * 0). Supports tables, GSIs, conditional writes, Query/Scan; not TransactWriteItems, TTL or
 * Streams (`/work/shared/TOOLCHAIN.md`): `StreamSpecification` is accepted by CreateTable but
 * ignored (DescribeTable shows no `LatestStreamArn`).
 *
 * Use with `new DynamoDBClient({ region: 'us-east-1', endpoint, credentials: { accessKeyId: 'x',
 * secretAccessKey: 'x' } })`; call `client.destroy()` and then `stop()` in `afterAll`.
 */
export async function startDynalite(options: DynaliteOptions = {}): Promise<DynaliteServer> {
  const dynalite = require('dynalite') as (options: DynaliteOptions) => Server;
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, ...options });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop() {
      stopped ??= new Promise<void>((resolve, reject) => {
        server.close((error?: Error) => (error ? reject(error) : resolve()));
        // Keep-alive sockets of SDK clients would hold close() open for dynalite's 30 s timeout.
        server.closeAllConnections();
      });
      return stopped;
    },
  };
}
