import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { type LoopbackServer, listenOnLoopback } from './listen.ts';

/** The part of kinesalite's (untyped, CommonJS) factory this harness uses. */
type KinesaliteFactory = (options: {
  createStreamMs?: number;
  deleteStreamMs?: number;
  updateStreamMs?: number;
  shardLimit?: number;
  path?: string;
}) => Server;

/** A running kinesalite server: its endpoint and an idempotent `stop()` (closes the server and its in-memory database). */
export type KinesaliteServer = LoopbackServer;

/**
 * Starts kinesalite 3.3.3 (a Kinesis Data Streams emulator) in this process: in memory, on
 * 127.0.0.1 and a free port, with streams `ACTIVE`, deleted and updated at once
 * (`createStreamMs`/`deleteStreamMs`/`updateStreamMs: 0`; the status still passes through
 * `CREATING`/`DELETING`/`UPDATING` for one timer turn, so adapters must poll as on AWS) and an
 * account shard limit of 10,000 (kinesalite's default of 10 open shards in all streams is too few
 * for the conformance suite).
 *
 * kinesalite stamps arrivals, sequence numbers, iterator ages and retention with `Date.now()` of
 * this process, so faking `Date` (vitest `vi.useFakeTimers({ toFake: ['Date'] })`) moves its clock.
 *
 * Clients need `requestHandler: new NodeHttpHandler()` (HTTP/1.1; see test/helpers and
 * TOOLCHAIN.md) or every call fails with `Protocol error`.
 */
export async function startKinesalite(): Promise<KinesaliteServer> {
  const kinesalite = createRequire(import.meta.url)('kinesalite') as KinesaliteFactory;
  const server = kinesalite({
    createStreamMs: 0,
    deleteStreamMs: 0,
    updateStreamMs: 0,
    shardLimit: 10_000,
  });
  return listenOnLoopback(server);
}
