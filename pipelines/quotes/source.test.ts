import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SourceUnavailableError, UsageError } from '../../src/core/errors.ts';
import {
  loadQuotes,
  type QuotesFixtureServer,
  startQuotesFixture,
} from '../../src/sources/http/quotes-fixture.ts';
import {
  fetchRandomQuote,
  parseQuote,
  type QuotableQuote,
  QuotesApiError,
  randomQuoteUrl,
} from '../../src/sources/quotes/quotable.ts';
import { ROOT } from '../../test/helpers/samples.ts';

const DATA = path.join(ROOT, 'examples/data/quotes/quotes.json');
let quotes: QuotableQuote[];
let servers: QuotesFixtureServer[] = [];

beforeAll(async () => {
  quotes = JSON.parse(await readFile(DATA, 'utf8')) as QuotableQuote[];
});
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function serve(seed = 7): Promise<QuotesFixtureServer> {
  const server = await startQuotesFixture({ quotes, seed });
  servers.push(server);
  return server;
}

/** A sleep that records what it was asked to wait and returns at once. */
function recordingSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return { waits, sleep: async (ms) => void waits.push(ms) };
}

describe('quotes fixture server', () => {
  it('serves quotable documents from the bundled data, one-element arrays, reproducibly per seed', async () => {
    expect(quotes).toHaveLength(1508);
    const a = await serve(7);
    const b = await serve(7);
    const c = await serve(8);
    const drawn = async (server: QuotesFixtureServer) => {
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`${server.url}/quotes/random`);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toMatch(/^application\/json/);
        const body = (await response.json()) as QuotableQuote[];
        expect(body).toHaveLength(1);
        ids.push(body[0]!._id);
      }
      return ids;
    };
    const first = await drawn(a);
    expect(await drawn(b)).toEqual(first);
    expect(await drawn(c)).not.toEqual(first);
    // What the server says it served is what the client received, and every document is a
    // document of the data file, unchanged (all nine fields).
    expect(a.served.map((q) => q._id)).toEqual(first);
    const byId = new Map(quotes.map((q) => [q._id, q]));
    for (const q of a.served) {
      expect(q).toEqual(byId.get(q._id));
      expect(Object.keys(q).sort()).toEqual(
        [
          '_id',
          'author',
          'authorId',
          'authorSlug',
          'content',
          'dateAdded',
          'dateModified',
          'length',
          'tags',
        ].sort(),
      );
    }
    // Draws spread over the data (not a fixed quote).
    expect(new Set(first).size).toBeGreaterThan(15);
  });

  it('answers ?limit=N with N quotes, and 404 for other paths', async () => {
    const server = await serve();
    const body = (await (await fetch(`${server.url}/quotes/random?limit=3`)).json()) as QuotableQuote[];
    expect(body.map((q) => q._id)).toEqual(server.served.map((q) => q._id));
    expect(body).toHaveLength(3);
    const missing = await fetch(`${server.url}/quotes`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ statusCode: 404 });
  });

  it('loads a data file and refuses a bad one, naming the quote', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-quotes-'));
    try {
      expect(await loadQuotes(DATA)).toHaveLength(1508);
      const bad = path.join(dir, 'bad.json');
      await writeFile(bad, JSON.stringify([quotes[0], { ...quotes[1], authorSlug: undefined }]));
      await expect(loadQuotes(bad)).rejects.toThrow(/quote 1: "authorSlug" is missing/);
      await writeFile(bad, '{"not": "an array"}');
      await expect(loadQuotes(bad)).rejects.toBeInstanceOf(UsageError);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('quotable client', () => {
  it('keeps the LAST element of the answered array, as the original', async () => {
    const server = await serve();
    const { sleep } = recordingSleep();
    const result = await fetchRandomQuote({ baseUrl: `${server.url}/`, sleep });
    expect(result).toMatchObject({ received: 1, attempts: 1, url: `${server.url}/quotes/random` });
    expect(result.quote).toEqual(server.served[0]);
    const [first, second] = [quotes[0]!, quotes[1]!];
    server.script({ kind: 'body', body: JSON.stringify([first, second]) });
    const two = await fetchRandomQuote({ baseUrl: server.url, sleep });
    expect(two).toMatchObject({ received: 2, quote: second });
  });

  it('retries 5xx with exponential backoff, then succeeds; a failed answer draws nothing', async () => {
    const server = await serve();
    const { sleep, waits } = recordingSleep();
    server.script({ kind: 'status', status: 500 }, { kind: 'status', status: 502 }, { kind: 'reset' });
    const result = await fetchRandomQuote({ baseUrl: server.url, retries: 3, baseDelayMs: 1000, sleep });
    expect(result.attempts).toBe(4);
    expect(waits).toEqual([1000, 2000, 4000]);
    expect(server.served).toHaveLength(1);
    expect(result.quote).toEqual(server.served[0]);
    expect(server.requests.map((r) => r.outcome)).toEqual([
      'scripted:status 500',
      'scripted:status 502',
      'scripted:reset',
      'quotes',
    ]);
  });

  it("honours a 503's Retry-After and caps every wait", async () => {
    const server = await serve();
    const { sleep, waits } = recordingSleep();
    server.script(
      { kind: 'status', status: 503, headers: { 'retry-after': '3' } },
      { kind: 'status', status: 429, headers: { 'retry-after': '120' } },
      { kind: 'status', status: 408 },
    );
    const result = await fetchRandomQuote({
      baseUrl: server.url,
      retries: 3,
      baseDelayMs: 20_000,
      maxDelayMs: 30_000,
      sleep,
    });
    expect(result.attempts).toBe(4);
    expect(waits).toEqual([3000, 30_000, 30_000]);
  });

  it('gives up on a slow answer after the timeout and retries it', async () => {
    const server = await serve();
    const { sleep, waits } = recordingSleep();
    server.script({ kind: 'delay', ms: 400 });
    const started = Date.now();
    const result = await fetchRandomQuote({ baseUrl: server.url, timeoutMs: 100, sleep });
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.attempts).toBe(2);
    expect(waits).toEqual([1000]);
    // The delayed answer found its client gone: only the retried answer drew a quote.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(server.served).toEqual([result.quote]);
    expect(server.requests.map((r) => r.outcome)).toEqual(['quotes', 'aborted']);
  });

  it('a body that is not an array of quotes is retried, then fails as SourceUnavailableError', async () => {
    const server = await serve();
    const { sleep, waits } = recordingSleep();
    server.script(
      { kind: 'body', body: '{"statusCode":200,"statusMessage":"ok"}' },
      { kind: 'body', body: '<html>proxy error</html>' },
      { kind: 'body', body: '[]' },
    );
    const error = await fetchRandomQuote({ baseUrl: server.url, sleep }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect((error as Error).name).toBe('SourceUnavailableError');
    expect((error as Error).message).toMatch(
      /failed 3 attempts; last error: expected a non-empty JSON array of quotes, got an empty array/,
    );
    expect(waits).toEqual([1000, 2000]);
    expect(server.served).toEqual([]);

    server.script(
      { kind: 'body', body: JSON.stringify([{ _id: 'x', content: 'c', author: 'a' }]) },
      { kind: 'status', status: 503 },
      { kind: 'body', body: 'not json' },
    );
    await expect(fetchRandomQuote({ baseUrl: server.url, sleep })).rejects.toThrow(/the body is not JSON/);
    server.script({ kind: 'body', body: JSON.stringify([{ _id: 'x', content: 'c', author: 'a' }]) });
    await expect(fetchRandomQuote({ baseUrl: server.url, retries: 0, sleep })).rejects.toThrow(
      /the last quote of the answer: "authorSlug" is missing/,
    );
  });

  it('a 4xx is not retried (QuotesApiError); a closed port is unavailable', async () => {
    const server = await serve();
    const { sleep, waits } = recordingSleep();
    server.script({ kind: 'status', status: 404 });
    const error = await fetchRandomQuote({ baseUrl: server.url, sleep }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuotesApiError);
    expect((error as QuotesApiError).exitCode).toBe(4);
    expect(waits).toEqual([]);
    const port = server.port;
    await server.close();
    servers = [];
    await expect(
      fetchRandomQuote({ baseUrl: `http://127.0.0.1:${port}`, retries: 1, sleep }),
    ).rejects.toThrow(/failed 2 attempts; last error: .*ECONNREFUSED/);
  });

  it('builds the endpoint URL from any base and refuses non-http URLs', () => {
    expect(randomQuoteUrl('http://127.0.0.1:8787')).toBe('http://127.0.0.1:8787/quotes/random');
    expect(randomQuoteUrl('https://api.quotable.io/')).toBe('https://api.quotable.io/quotes/random');
    expect(randomQuoteUrl('https://example.com/v1?x=1')).toBe('https://example.com/v1/quotes/random');
    expect(() => randomQuoteUrl('ftp://x')).toThrow(UsageError);
    expect(() => randomQuoteUrl('not a url')).toThrow(UsageError);
  });

  it('parseQuote accepts the documents and names what is wrong', () => {
    expect(parseQuote(quotes[0])).toEqual(quotes[0]);
    const { authorId: _omit, ...withoutAuthorId } = quotes[0]!;
    expect(parseQuote(withoutAuthorId)).toEqual(withoutAuthorId);
    expect(parseQuote({ ...quotes[0], length: '88' })).toMatch(/"length" is not a non-negative integer/);
    expect(parseQuote({ ...quotes[0], tags: 'a' })).toMatch(/"tags" is not an array of strings/);
    expect(parseQuote({ ...quotes[0], dateAdded: '2019/01/08' })).toMatch(
      /"dateAdded" is not a YYYY-MM-DD date/,
    );
    expect(parseQuote([quotes[0]])).toMatch(/expected a quote object, got an array of 1/);
  });
});
