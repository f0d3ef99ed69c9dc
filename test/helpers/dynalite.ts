import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { type LoopbackServer, listenOnLoopback } from './listen.ts';

/** The options of `dynalite(options)` that sluice's tests use (dynalite 4.0.0 readme). */
interface DynaliteOptions {
  /** ms a table stays `CREATING` / `DELETING` / `UPDATING` (dynalite default 500). */
  createTableMs?: number;
  deleteTableMs?: number;
  updateTableMs?: number;
  /** Largest item in KiB (default 400, as DynamoDB). */
  maxItemSizeKb?: number;
}

/** A running dynalite server: its endpoint and an idempotent `stop()` (closes every connection and the in-memory store). */
export type DynaliteServer = LoopbackServer;

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
  return listenOnLoopback(server);
}
