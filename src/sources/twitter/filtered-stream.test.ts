import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT } from '../../../test/helpers/samples.ts';
import {
  KEEP_ALIVE,
  OPERATIONAL_DISCONNECT,
  type StreamStep,
  splitInsideDelimiter,
  splitInsideMultibyte,
  splitLine,
  startTwitterApiServer,
  type TwitterApiServer,
} from '../../../test/helpers/twitter-api-server.ts';
import { describeError, SourceUnavailableError, UsageError } from '../../core/errors.ts';
import {
  bearerTokenFromEnv,
  DEFAULT_EXPANSIONS,
  DEFAULT_TWEET_FIELDS,
  FilteredStreamClient,
  type FilteredStreamClientOptions,
  reconnectDelayMs,
  StreamLineDecoder,
  type StreamOptions,
  TwitterAuthError,
} from './filtered-stream.ts';
import type { TweetInput, V2Includes, V2Tweet } from './types.ts';

// Real v2 tweets: one recent-search page of 100 (twarc2), see examples/data/hashtags/PROVENANCE.md.
const PAGE = JSON.parse(
  readFileSync(path.join(ROOT, 'examples/data/hashtags/v2_search_brexit_100.jsonl'), 'utf8').split('\n')[0]!,
) as { data: V2Tweet[]; includes: { users: { id: string }[]; tweets: V2Tweet[] } };
const TWEETS = PAGE.data;
const MULTIBYTE = TWEETS.find((t) => /[\u0080-\uffff]/.test(JSON.stringify(t)))!;

/** The stream line X would send for `tweet`: the tweet, its author and retweeted tweet in `includes`. */
function streamMessage(tweet: V2Tweet): { data: V2Tweet; includes: V2Includes; matching_rules: unknown[] } {
  const refs = (tweet.referenced_tweets ?? []).map((r) => PAGE.includes.tweets.find((t) => t.id === r.id));
  const tweets = refs.filter((t): t is V2Tweet => t !== undefined);
  const authorIds = new Set([tweet.author_id, ...tweets.map((t) => t.author_id)]);
  const users = PAGE.includes.users.filter((u) => authorIds.has(u.id));
  return {
    data: tweet,
    includes: { users, ...(tweets.length > 0 ? { tweets } : {}) },
    matching_rules: [{ id: '1600000000000000001', tag: 'brexit' }],
  };
}

let server: TwitterApiServer;
let sleeps: number[];
let logs: string[];

const logger = {
  info: (fields: Record<string, unknown>, message?: string) => logs.push(JSON.stringify({ fields, message })),
  warn: (fields: Record<string, unknown>, message?: string) => logs.push(JSON.stringify({ fields, message })),
};

beforeEach(async () => {
  server = await startTwitterApiServer();
  sleeps = [];
  logs = [];
});

afterEach(async () => {
  await server.close();
});

function client(overrides: Partial<FilteredStreamClientOptions> = {}): FilteredStreamClient {
  return new FilteredStreamClient({
    bearerToken: server.token,
    baseUrl: server.url,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    logger,
    stallTimeoutMs: 5_000,
    ...overrides,
  });
}

/**
 * Iterates `stream()` until `count` items arrived, then aborts its signal and keeps iterating: the
 * iterator must then end by itself (a hang here fails the test by timeout).
 */
async function take(
  c: FilteredStreamClient,
  count: number,
  options: Omit<StreamOptions, 'signal'> = {},
): Promise<TweetInput[]> {
  const controller = new AbortController();
  const items: TweetInput[] = [];
  for await (const item of c.stream({ ...options, signal: controller.signal })) {
    items.push(item);
    if (items.length >= count) controller.abort();
    expect(items.length).toBeLessThanOrEqual(count);
  }
  return items;
}

const lines = (tweets: readonly V2Tweet[]): StreamStep[] => tweets.map((t) => ({ line: streamMessage(t) }));
const SOURCE = () => `stream:${server.url}/2/tweets/search/stream`;
const v2 = (tweet: V2Tweet, line: number): TweetInput => ({
  kind: 'v2',
  tweet,
  includes: streamMessage(tweet).includes,
  location: { source: SOURCE(), line },
});
const streamRequests = () => server.requests.filter((r) => r.path === '/2/tweets/search/stream');
const rulePosts = () =>
  server.requests.filter((r) => r.path === '/2/tweets/search/stream/rules' && r.method === 'POST');

describe('bearerTokenFromEnv', () => {
  it('reads TWITTER_BEARER_TOKEN, else X_BEARER_TOKEN, else undefined', () => {
    expect(bearerTokenFromEnv({ TWITTER_BEARER_TOKEN: ' abc ', X_BEARER_TOKEN: 'x' })).toBe('abc');
    expect(bearerTokenFromEnv({ X_BEARER_TOKEN: 'x' })).toBe('x');
    expect(bearerTokenFromEnv({ TWITTER_BEARER_TOKEN: '  ', X_BEARER_TOKEN: 'x' })).toBe('x');
    expect(bearerTokenFromEnv({})).toBeUndefined();
  });

  it('a client needs a token', () => {
    expect(() => new FilteredStreamClient({ bearerToken: ' ' })).toThrow(UsageError);
    expect(() => new FilteredStreamClient({ bearerToken: 't', baseUrl: 'ftp://x' })).toThrow(UsageError);
  });
});

describe('reconnectDelayMs (handling-disconnections page)', () => {
  it('is linear for network errors, exponential for HTTP errors and 429, with the documented caps', () => {
    expect([1, 2, 3, 64, 65, 100].map((n) => reconnectDelayMs('network', n))).toEqual([
      250, 500, 750, 16_000, 16_000, 16_000,
    ]);
    expect([1, 2, 3, 7, 8, 20].map((n) => reconnectDelayMs('http', n))).toEqual([
      5_000, 10_000, 20_000, 320_000, 320_000, 320_000,
    ]);
    expect([1, 2, 3, 4, 5, 6].map((n) => reconnectDelayMs('rate-limit', n))).toEqual([
      60_000, 120_000, 240_000, 480_000, 900_000, 900_000,
    ]);
  });
});

describe('rules', () => {
  it('syncRules adds exactly the missing rules, then does nothing when run again', async () => {
    const c = client();
    const wanted = [{ value: '#brexit lang:en', tag: 'brexit' }, { value: '#peoplesvote' }];
    const first = await c.syncRules(wanted);
    expect(first.deleted).toEqual([]);
    expect(first.added.map((r) => [r.value, r.tag])).toEqual([
      ['#brexit lang:en', 'brexit'],
      ['#peoplesvote', undefined],
    ]);
    expect(server.rules().map(({ value, tag }) => ({ value, tag }))).toEqual([
      { value: '#brexit lang:en', tag: 'brexit' },
      { value: '#peoplesvote', tag: undefined },
    ]);
    expect(rulePosts().map((r) => r.body)).toEqual([{ add: wanted }]);

    const again = await c.syncRules(wanted);
    expect(again).toEqual({ added: [], deleted: [], kept: server.rules() });
    expect(rulePosts()).toHaveLength(1);
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /2/tweets/search/stream/rules',
      'POST /2/tweets/search/stream/rules',
      'GET /2/tweets/search/stream/rules',
    ]);
  });

  it('syncRules deletes exactly the unwanted rules (and re-tags by delete + add)', async () => {
    const [keep, drop, retag] = server.seedRules([
      { value: 'keep me', tag: 'a' },
      { value: 'drop me' },
      { value: 'retag me', tag: 'old' },
    ]);
    const result = await client().syncRules([
      { value: 'keep me', tag: 'a' },
      { value: 'retag me', tag: 'new' },
      { value: 'add me' },
    ]);
    expect(result.kept).toEqual([keep]);
    expect(result.deleted).toEqual([drop, retag]);
    expect(rulePosts().map((r) => r.body)).toEqual([
      { delete: { ids: [drop!.id, retag!.id] } },
      { add: [{ value: 'retag me', tag: 'new' }, { value: 'add me' }] },
    ]);
    expect(server.rules().map(({ value, tag }) => [value, tag])).toEqual([
      ['keep me', 'a'],
      ['retag me', 'new'],
      ['add me', undefined],
    ]);
    await client().syncRules([{ value: 'keep me', tag: 'a' }]);
    expect(server.rules().map((r) => r.value)).toEqual(['keep me']);
    expect(await client().getRules()).toEqual(server.rules());
  });

  it('refuses a wanted value listed twice with different tags, before any request', async () => {
    await expect(client().syncRules([{ value: 'x', tag: 'a' }, { value: 'x' }])).rejects.toThrow(UsageError);
    expect(server.requests).toEqual([]);
  });

  it('addRules with dryRun validates without storing; duplicates are not errors', async () => {
    const c = client();
    const wouldAdd = await c.addRules([{ value: 'dry' }], { dryRun: true });
    expect(wouldAdd.map((r) => r.value)).toEqual(['dry']);
    expect(server.rules()).toEqual([]);
    expect(rulePosts()[0]?.query).toEqual({ dry_run: 'true' });
    await c.addRules([{ value: 'once' }]);
    expect(await c.addRules([{ value: 'once' }])).toEqual([]);
    expect(server.rules().map((r) => r.value)).toEqual(['once']);
    expect(await c.deleteRules([server.rules()[0]!.id, '42'])).toEqual({ deleted: 1, notDeleted: 1 });
  });

  it.each([400, 200] as const)(
    'an invalid rule (HTTP %i) is a UsageError naming the rule',
    async (status) => {
      await server.close();
      server = await startTwitterApiServer({ invalidRulesStatus: status });
      const error = await client()
        .addRules([{ value: 'ok rule' }, { value: 'from: brexit' }])
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toContain('rule "from: brexit"');
      expect((error as Error).message).toContain('Operator is missing its value');
      expect((error as Error).message).not.toContain('ok rule');
      expect(server.rules()).toEqual([]);
    },
  );

  it('a refused token is a non-retryable TwitterAuthError that does not show the token', async () => {
    const secret = 'AAAAAAAAAAAAAAAAAAAAAwrongToken%3DnotTheServerOne';
    const c = client({ bearerToken: secret });
    for (const call of [
      () => c.getRules(),
      () => c.syncRules([{ value: 'x' }]),
      () => c.addRules([{ value: 'x' }]),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TwitterAuthError);
      expect((error as TwitterAuthError).retryable).toBe(false);
      expect((error as TwitterAuthError).status).toBe(401);
      expect((error as Error).message).toMatch(/HTTP 401.*invalid/);
      expect(describeError(error)).not.toContain(secret);
    }
    expect(
      server.requests.every((r) => !r.authorized && r.headers.authorization === 'Bearer [redacted]'),
    ).toBe(true);
  });
});

describe('stream', () => {
  it('yields exactly the tweets sent, skipping keep-alives, with the documented query and bearer header', async () => {
    const steps: StreamStep[] = [KEEP_ALIVE];
    TWEETS.forEach((tweet, i) => {
      steps.push({ line: streamMessage(tweet) });
      if (i % 10 === 0) steps.push(KEEP_ALIVE, KEEP_ALIVE);
    });
    server.script({ steps });
    const items = await take(client(), TWEETS.length);
    expect(items).toEqual(TWEETS.map((t, i) => v2(t, i + 1)));
    expect(sleeps).toEqual([]);
    const [request] = streamRequests();
    expect(streamRequests()).toHaveLength(1);
    expect(request?.method).toBe('GET');
    expect(request?.query).toEqual({
      'tweet.fields': 'created_at,lang,public_metrics,entities,referenced_tweets,author_id,note_tweet',
      expansions: 'author_id,referenced_tweets.id,referenced_tweets.id.author_id',
      'user.fields': 'username',
    });
    expect(request?.headers.authorization).toBe('Bearer [redacted]');
    expect(request?.authorized).toBe(true);
    await server.whenStreamsClosed();
    expect(server.openStreams).toBe(0);
  });

  it('sends the fields and expansions asked for', async () => {
    server.script({ steps: lines(TWEETS.slice(0, 1)) });
    await take(client(), 1, {
      tweetFields: ['id', 'text'],
      expansions: [],
      userFields: ['username', 'name'],
    });
    expect(streamRequests()[0]?.query).toEqual({ 'tweet.fields': 'id,text', 'user.fields': 'username,name' });
    expect(DEFAULT_TWEET_FIELDS).toContain('note_tweet');
    expect(DEFAULT_EXPANSIONS).toContain('referenced_tweets.id.author_id');
  });

  it('reassembles lines split across chunks, inside a UTF-8 character and inside \\r\\n', async () => {
    const [a, b, c] = TWEETS;
    server.script({
      steps: [
        ...splitLine(streamMessage(a!), 7),
        ...splitInsideMultibyte(streamMessage(MULTIBYTE)),
        ...splitInsideDelimiter(streamMessage(b!)),
        ...splitLine(streamMessage(c!), 1),
      ],
    });
    const items = await take(client(), 4);
    expect(items).toEqual([v2(a!, 1), v2(MULTIBYTE, 2), v2(b!, 3), v2(c!, 4)]);
  });

  it('StreamLineDecoder gives the same lines for every chunking of the body', () => {
    const text = `${JSON.stringify(streamMessage(MULTIBYTE))}\r\n\r\n{"x":"é😀€"}\r\n\r\n`;
    const bytes = Buffer.from(text, 'utf8');
    const expected = text.split('\r\n').slice(0, -1);
    for (let at = 0; at <= bytes.length; at++) {
      const decoder = new StreamLineDecoder();
      const got = [...decoder.push(bytes.subarray(0, at)), ...decoder.push(bytes.subarray(at))];
      expect(got).toEqual(expected);
      expect(decoder.end()).toBe('');
    }
    const decoder = new StreamLineDecoder();
    const byByte = [...bytes].flatMap((byte) => decoder.push(Uint8Array.of(byte)));
    expect(byByte).toEqual(expected);
    decoder.push(Buffer.from('{"partial'));
    expect(decoder.end()).toBe('{"partial');
  });

  it('turns unreadable lines and error-only lines into bad items, with their line', async () => {
    server.script({
      steps: [
        { raw: 'this is not json\r\n' },
        KEEP_ALIVE,
        { line: { errors: [{ title: 'Invalid Request', detail: 'The field foo is unknown' }] } },
        { line: [1, 2] },
        { line: { meta: {} } },
        { line: { data: 'not a tweet' } },
        { line: streamMessage(TWEETS[0]!) },
      ],
    });
    const items = await take(client(), 6);
    expect(items.map((i) => i.kind)).toEqual(['bad', 'bad', 'bad', 'bad', 'bad', 'v2']);
    expect(items.map((i) => i.location.line)).toEqual([1, 2, 3, 4, 5, 6]);
    const bad = items.filter((i) => i.kind === 'bad');
    expect(bad.map((i) => i.reason)).toEqual([
      expect.stringMatching(/^not JSON: /),
      'stream error: Invalid Request: The field foo is unknown',
      'not a JSON object',
      'line has neither `data` (a tweet) nor `errors`',
      '`data` is not a tweet object',
    ]);
    expect(bad[0]).toMatchObject({ raw: 'this is not json', location: { source: SOURCE(), line: 1 } });
    expect(sleeps).toEqual([]);
  });

  it('reconnects on an operational-disconnect error instead of yielding it', async () => {
    const [a, b] = TWEETS;
    server.script(
      { steps: [{ line: OPERATIONAL_DISCONNECT }], end: 'close' },
      { steps: [{ line: streamMessage(a!) }, { line: OPERATIONAL_DISCONNECT }], end: 'stall' },
      { steps: [{ line: streamMessage(b!) }] },
    );
    const items = await take(client(), 2);
    expect(items).toEqual([v2(a!, 2), v2(b!, 4)]);
    // A disconnect before any data backs off like an HTTP error; after data, reconnect at once.
    expect(sleeps).toEqual([5_000, 0]);
    expect(logs.join('\n')).toContain(
      'operational disconnect: operational-disconnect: This stream has been disconnected',
    );
  });

  it('backs off linearly on network errors and stalls, and resets after a connection that delivered data', async () => {
    const [a, b] = TWEETS;
    server.script(
      { end: 'close' }, // headers, then a clean end without data
      { end: 'destroy' }, // connection reset
      { end: 'stall' }, // headers, then nothing
      { noHeaders: true }, // no response at all
      { steps: [KEEP_ALIVE, { line: streamMessage(a!) }], end: 'destroy' },
      { end: 'close' },
      { steps: [{ line: streamMessage(b!) }] },
    );
    const items = await take(client({ stallTimeoutMs: 200 }), 2);
    expect(items).toEqual([v2(a!, 1), v2(b!, 2)]);
    expect(sleeps).toEqual([250, 500, 750, 1_000, 0, 250]);
    expect(streamRequests()).toHaveLength(7);
    const reasons = logs
      .map((l) => JSON.parse(l) as { fields: { reason?: string } })
      .map((l) => l.fields.reason);
    expect(reasons.filter(Boolean)).toEqual([
      'the server closed the stream',
      expect.stringMatching(/^connection lost: /),
      'stalled: no data or keep-alive for 200 ms',
      'no response within 200 ms',
      expect.stringMatching(/^connection lost: /),
      'the server closed the stream',
    ]);
  });

  it('yields a line cut by a disconnection as a bad item and goes on after reconnecting', async () => {
    const [a, b] = TWEETS;
    const partial = `${JSON.stringify(streamMessage(b!))}`.slice(0, 40);
    server.script(
      { steps: [{ line: streamMessage(a!) }, { raw: partial }], end: 'destroy' },
      { steps: [{ line: streamMessage(b!) }] },
    );
    const items = await take(client(), 3);
    expect(items[0]).toEqual(v2(a!, 1));
    expect(items[1]).toMatchObject({ kind: 'bad', raw: partial, location: { line: 2 } });
    expect(items[1]?.kind === 'bad' && items[1].reason).toMatch(/^incomplete line/);
    expect(items[2]).toEqual(v2(b!, 3));
    expect(sleeps).toEqual([0]);
  });

  it('backs off exponentially from 5 s to 320 s on HTTP 5xx, and resets after success', async () => {
    const [a, b] = TWEETS;
    const unavailable = { status: 503 } as const;
    server.script(
      ...Array.from({ length: 9 }, () => unavailable),
      { steps: [{ line: streamMessage(a!) }], end: 'close' },
      { status: 500 },
      { steps: [{ line: streamMessage(b!) }] },
    );
    const items = await take(client(), 2);
    expect(items).toEqual([v2(a!, 1), v2(b!, 2)]);
    expect(sleeps).toEqual([
      5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 320_000, 320_000, 0, 5_000,
    ]);
    expect(logs.join('\n')).toContain(
      'HTTP 503 Service Unavailable (Service Unavailable: Service Unavailable)',
    );
  });

  it('backs off from 60 s doubling on 429, never reconnecting before x-rate-limit-reset', async () => {
    const now = 1_700_000_000_000;
    const resetIn = (seconds: number) => ({ 'x-rate-limit-reset': String(now / 1000 + seconds) });
    server.script(
      { status: 429 },
      { status: 429 },
      { status: 429, headers: resetIn(600) },
      { status: 429, headers: resetIn(10) },
      { steps: [{ line: streamMessage(TWEETS[0]!) }] },
    );
    await take(client({ now: () => now }), 1);
    expect(sleeps).toEqual([60_000, 120_000, 600_000, 480_000]);
    expect(logs.join('\n')).toContain(
      'ConnectionException: This stream is currently at the maximum allowed connection limit',
    );
  });

  it('gives up after maxReconnects consecutive failures with a SourceUnavailableError', async () => {
    server.script({ status: 503 }, { status: 502 }, { status: 503 });
    const error = await take(client(), 1, { maxReconnects: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect((error as SourceUnavailableError).retryable).toBe(true);
    expect((error as Error).message).toContain(
      '3 connection attempts in a row failed (2 reconnections allowed)',
    );
    expect((error as Error).message).toContain('last: HTTP 503');
    expect(sleeps).toEqual([5_000, 10_000]);
  });

  it('caps the linear network backoff at 16 s (connection refused)', async () => {
    const closed = await unusedPort();
    const c = client({ baseUrl: `http://127.0.0.1:${closed}` });
    const error = await take(c, 1, { maxReconnects: 70 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect((error as Error).message).toContain('71 connection attempts in a row failed');
    expect(describeError(error)).toContain('ECONNREFUSED');
    expect(sleeps).toEqual(Array.from({ length: 70 }, (_, i) => Math.min(250 * (i + 1), 16_000)));
  });

  it('does not retry 401 or 403, and says why without the token', async () => {
    const wrong = 'AAAAAAAAAAAAAAAAAAAAAnotAcceptedByTheServer%3D';
    const refused = await take(client({ bearerToken: wrong }), 1).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TwitterAuthError);
    expect((refused as Error).message).toContain('the bearer token is invalid or revoked');
    expect(describeError(refused)).not.toContain(wrong);
    server.script({ status: 403 });
    const forbidden = await take(client(), 1).catch((e: unknown) => e);
    expect(forbidden).toMatchObject({ name: 'TwitterAuthError', status: 403, retryable: false });
    expect((forbidden as Error).message).toContain('lacks access');
    expect(streamRequests()).toHaveLength(2);
    expect(sleeps).toEqual([]);
  });

  it('reports a 400 (bad fields) as a UsageError without retrying', async () => {
    server.script({
      status: 400,
      body: { title: 'Invalid Request', detail: 'One or more parameters to your request was invalid.' },
    });
    await expect(take(client(), 1, { tweetFields: ['nope'] })).rejects.toThrow(UsageError);
    expect(sleeps).toEqual([]);
  });

  it('ends when the signal aborts during a backoff wait, or before starting', async () => {
    server.script({ status: 503 });
    const controller = new AbortController();
    const c = client({
      sleep: (ms) => {
        sleeps.push(ms);
        controller.abort();
        return new Promise(() => {}); // never resolves: only the abort can end the wait
      },
    });
    const items: TweetInput[] = [];
    for await (const item of c.stream({ signal: controller.signal })) items.push(item);
    expect(items).toEqual([]);
    expect(sleeps).toEqual([5_000]);

    const before = server.requests.length;
    for await (const item of c.stream({ signal: AbortSignal.abort() })) items.push(item);
    expect(items).toEqual([]);
    expect(server.requests.length).toBe(before);
  });

  it('ends when the signal aborts while waiting for data, and closes the connection', async () => {
    server.script({ steps: [KEEP_ALIVE] }); // then silence
    const controller = new AbortController();
    const c = new FilteredStreamClient({
      bearerToken: server.token,
      baseUrl: server.url,
      stallTimeoutMs: 60_000,
    });
    const done = (async () => {
      for await (const _ of c.stream({ signal: controller.signal })) throw new Error('no item expected');
    })();
    while (server.openStreams === 0) await new Promise((resolve) => setImmediate(resolve));
    controller.abort();
    await done;
    await server.whenStreamsClosed();
    expect(server.streamConnections).toBe(1);
  });

  it('closes the connection when the consumer stops iterating', async () => {
    server.script({ steps: lines(TWEETS.slice(0, 5)) });
    const got: TweetInput[] = [];
    for await (const item of client().stream()) {
      got.push(item);
      if (got.length === 2) break;
    }
    expect(got).toEqual([v2(TWEETS[0]!, 1), v2(TWEETS[1]!, 2)]);
    await server.whenStreamsClosed();
    expect(server.openStreams).toBe(0);
  });

  it('never puts the token in logs, errors, bad items or the client object', async () => {
    const token = server.token;
    server.script(
      { status: 503, body: { title: 'Service Unavailable', detail: `echo Bearer ${token}` } },
      {
        steps: [{ raw: `oops ${token}\r\n` }, { line: { errors: [{ title: 'Weird', detail: token }] } }],
        end: 'close',
      },
      { end: 'destroy' },
      { status: 500, body: `<html>${token}</html>` },
      { status: 503 },
    );
    const c = client();
    const items: TweetInput[] = [];
    const error = await (async () => {
      for await (const item of c.stream({ maxReconnects: 2 })) items.push(item);
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SourceUnavailableError);
    expect(items.map((i) => i.kind)).toEqual(['bad', 'bad']);
    await c.addRules([{ value: 'from: x' }]).catch((e: unknown) => logs.push(describeError(e)));
    const everything = [
      ...logs,
      describeError(error),
      JSON.stringify(items),
      inspect(c, { depth: 5, showHidden: true }),
      JSON.stringify(c),
    ].join('\n');
    expect(logs.length).toBeGreaterThan(3);
    expect(everything).toContain('[redacted]');
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(decodeURIComponent(token));
  });
});

/** A port nothing listens on (bound then released). */
async function unusedPort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
