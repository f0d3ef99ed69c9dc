/**
 * A local stand-in for the quotable API (api.quotable.io is offline): serves quote documents from
 * a JSON file (default `examples/data/quotes/quotes.json`, 1,508 quotes of quotable's own data) on
 * 127.0.0.1 the way quotable did, for `sluice demo`, `sluice fixture-server quotes` and tests.
 *
 * - `GET /quotes/random[?limit=N]` -> `200` with a JSON array of N (default 1, at most 50) quotes
 *   drawn uniformly at random, with replacement;
 * - anything else -> `404` `{"statusCode":404,"statusMessage":"..."}`.
 *
 * Draws come from a seeded PRNG ({@link seededRandom}): the same seed and data serve the same
 * sequence of quotes. Scripted responses ({@link QuotesFixtureServer.script}) let tests make the
 * next requests fail (a status, a body that is not an array, a reset connection, a slow answer);
 * a failed response draws nothing, so the sequence of served quotes stays the seed's.
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { UsageError } from '../../core/errors.ts';
import { parseQuote, type QuotableQuote } from '../quotes/quotable.ts';

/**
 * mulberry32 (Tommy Ettinger, public domain): a 32-bit state PRNG, uniform in [0, 1). Small, fast
 * and reproducible across platforms, which is all a fixture needs (not cryptographic).
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The index of the next quote: `floor(random() * count)`. */
export function drawIndex(random: () => number, count: number): number {
  return Math.min(count - 1, Math.floor(random() * count));
}

/** A scripted answer to the next request, instead of a quote. */
export type ScriptedResponse =
  /** Answer with this status, headers (e.g. `retry-after`) and body (default a quotable-style JSON error). */
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly body?: string;
      readonly headers?: { readonly [name: string]: string };
    }
  /** Answer 200 with this body text (e.g. `{"statusCode":200}` or `not json`). */
  | { readonly kind: 'body'; readonly body: string }
  /** Destroy the connection without answering. */
  | { readonly kind: 'reset' }
  /**
   * Answer normally, but only after `ms` (a client with a shorter timeout gives up; a quote is
   * drawn only when the connection is still open then).
   */
  | { readonly kind: 'delay'; readonly ms: number };

/** One request the server handled. */
export interface FixtureRequest {
  readonly path: string;
  /** `quotes` (served), `scripted:<kind>`, `not_found`, `aborted` (the client left before a delayed answer). */
  readonly outcome: string;
}

/** A running quotes fixture server. */
export interface QuotesFixtureServer {
  /** Base URL, e.g. `http://127.0.0.1:8787` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  readonly seed: number;
  /** Quotes available. */
  readonly quoteCount: number;
  /** Every quote served in a 200 answer, in order (a `limit=N` answer adds N). */
  readonly served: QuotableQuote[];
  /** Every request handled, in order. */
  readonly requests: FixtureRequest[];
  /** Queues scripted answers for the next requests to `/quotes/random`, in order. */
  script(...responses: ScriptedResponse[]): void;
  close(): Promise<void>;
}

/** Options of {@link startQuotesFixture}. */
export interface QuotesFixtureOptions {
  /** The quotes to serve (or {@link dataFile}). */
  readonly quotes?: readonly QuotableQuote[];
  /** A JSON array of quote documents. */
  readonly dataFile?: string;
  /** PRNG seed (default 1). */
  readonly seed?: number;
  /** 0 (default) picks a free port. */
  readonly port?: number;
  readonly host?: string;
}

/**
 * Reads a JSON array of quote documents.
 * @throws {UsageError} naming the file and the first bad document.
 */
export async function loadQuotes(file: string): Promise<QuotableQuote[]> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new UsageError(`cannot read quotes from ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (!Array.isArray(data) || data.length === 0) {
    throw new UsageError(`${file} must hold a non-empty JSON array of quote documents`);
  }
  return data.map((value, index) => {
    const quote = parseQuote(value);
    if (typeof quote === 'string') throw new UsageError(`${file}: quote ${index}: ${quote}`);
    return quote;
  });
}

/** Starts the server. @throws {UsageError} without quotes; the listen error when the port is taken. */
export async function startQuotesFixture(options: QuotesFixtureOptions): Promise<QuotesFixtureServer> {
  const quotes = options.quotes ?? (options.dataFile ? await loadQuotes(options.dataFile) : undefined);
  if (!quotes || quotes.length === 0) throw new UsageError('the quotes fixture needs quotes or a data file');
  const seed = options.seed ?? 1;
  const random = seededRandom(seed);
  const served: QuotableQuote[] = [];
  const requests: FixtureRequest[] = [];
  const scripted: ScriptedResponse[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const sendJson = (
    res: http.ServerResponse,
    status: number,
    body: string,
    headers: { readonly [name: string]: string } = {},
  ) => {
    res.writeHead(status, {
      ...headers,
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  };
  const serveQuotes = (req: http.IncomingMessage, res: http.ServerResponse, url: URL, outcome: string) => {
    const limit = Math.max(1, Math.min(50, Math.trunc(Number(url.searchParams.get('limit') ?? '1')) || 1));
    const drawn: QuotableQuote[] = [];
    for (let i = 0; i < limit; i++) drawn.push(quotes[drawIndex(random, quotes.length)]!);
    served.push(...drawn);
    requests.push({ path: req.url ?? '/', outcome });
    sendJson(res, 200, JSON.stringify(drawn));
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fixture');
    if (req.method !== 'GET' || url.pathname.replace(/\/+$/, '') !== '/quotes/random') {
      requests.push({ path: req.url ?? '/', outcome: 'not_found' });
      sendJson(
        res,
        404,
        JSON.stringify({ statusCode: 404, statusMessage: 'The requested resource could not be found' }),
      );
      return;
    }
    const next = scripted.shift();
    if (!next) {
      serveQuotes(req, res, url, 'quotes');
      return;
    }
    switch (next.kind) {
      case 'status':
        requests.push({ path: req.url ?? '/', outcome: `scripted:status ${next.status}` });
        sendJson(
          res,
          next.status,
          next.body ?? JSON.stringify({ statusCode: next.status, statusMessage: 'Scripted failure' }),
          next.headers,
        );
        return;
      case 'body':
        requests.push({ path: req.url ?? '/', outcome: 'scripted:body' });
        sendJson(res, 200, next.body);
        return;
      case 'reset':
        requests.push({ path: req.url ?? '/', outcome: 'scripted:reset' });
        req.socket.destroy();
        return;
      case 'delay': {
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (res.destroyed || req.socket.destroyed) {
            requests.push({ path: req.url ?? '/', outcome: 'aborted' });
            return;
          }
          serveQuotes(req, res, url, 'scripted:delay');
        }, next.ms);
        timers.add(timer);
        return;
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    seed,
    quoteCount: quotes.length,
    served,
    requests,
    script: (...responses) => {
      scripted.push(...responses);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        timers.clear();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
