import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HASHTAGS_SAMPLES } from '../../../test/helpers/samples.ts';
import { UsageError } from '../../core/errors.ts';
import { detectFormat, type ReadTweetFileOptions, readTweetFile } from './files.ts';
import type { TweetInput, TwitterFileFormat } from './types.ts';

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-twitter-files-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `content` to a new temp file and returns its path. */
async function temp(name: string, content: Buffer | string): Promise<string> {
  const file = path.join(dir, `${++counter}-${name}`);
  await writeFile(file, content);
  return file;
}

async function readAll(
  file: string,
  options: ReadTweetFileOptions = {},
): Promise<{ items: TweetInput[]; format: TwitterFileFormat | undefined }> {
  const items: TweetInput[] = [];
  let format: TwitterFileFormat | undefined;
  for await (const item of readTweetFile(file, { ...options, onFormat: (f) => (format = f) }))
    items.push(item);
  return { items, format };
}

/** A minimal valid v1.1 status. */
function status(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    created_at: 'Sat Mar 10 14:03:15 +0000 2018',
    id: Number(id),
    id_str: id,
    text: `status ${id}`,
    user: { id_str: '7', screen_name: 'someone' },
    entities: { hashtags: [] },
    lang: 'en',
    ...extra,
  };
}

function badItem(item: TweetInput | undefined): Extract<TweetInput, { kind: 'bad' }> {
  expect(item?.kind).toBe('bad');
  return item as Extract<TweetInput, { kind: 'bad' }>;
}

describe('detectFormat', () => {
  it('tells formats by content', () => {
    expect(detectFormat('[{"created_at":"Sat')).toBe('v1-array');
    expect(detectFormat('\uFEFF \n [\n  {')).toBe('v1-array');
    expect(detectFormat('{"statuses":[{"id_str":"1"}],"search_metadata":{}}')).toBe('v1-search');
    expect(detectFormat('{"search_metadata":{"count":1},"statuses":[')).toBe('v1-search');
    expect(detectFormat('{"data":[{"id":"1","text":"x"}],"includes":{}')).toBe('v2-page');
    expect(detectFormat('{"includes":{"users":[]}}')).toBe('v2-page');
    expect(detectFormat('{"errors":[{"title":"Not Found Error"}]}')).toBe('v2-page');
    // The stream sample's statuses start with other keys; a prefix cut mid-value still works.
    expect(detectFormat('{"reply_count": 0, "user": {"id_str": "1"}, "id_str": "9", "text": "cut he')).toBe(
      'v1-stream',
    );
    expect(detectFormat('{"delete":{"status":{"id":1,"id_str":"1"}}}')).toBe('v1-stream');
    expect(detectFormat('{"limit":{"track":12}}\n')).toBe('v1-stream');
    // A key nested deeper than the top level does not count.
    expect(() => detectFormat('{"other":{"data":1,"statuses":2}}')).toThrow(UsageError);
    // An empty v2 page has only meta.
    expect(detectFormat('{"meta":{"result_count":0}}')).toBe('v2-page');
  });

  it('tells the bundled samples', () => {
    const first = (file: string) => readFileSync(file, 'utf8').slice(0, 4096);
    expect(detectFormat(first(HASHTAGS_SAMPLES.v1Timeline))).toBe('v1-array');
    expect(detectFormat(first(HASHTAGS_SAMPLES.v1Stream))).toBe('v1-stream');
    expect(detectFormat(first(HASHTAGS_SAMPLES.v2Search))).toBe('v2-page');
  });

  it('throws a UsageError naming the file for anything else', () => {
    expect(() => detectFormat('{"foo":1,"bar":2}', 'x.json')).toThrow(
      /x\.json: not a known Twitter capture.*foo, bar/,
    );
    expect(() => detectFormat('id,text\n1,hello', 'x.csv')).toThrow(
      /x\.csv: not a Twitter capture: it starts with "id,text/,
    );
    expect(() => detectFormat('  \n', 'empty.json')).toThrow(/empty\.json: the file is empty/);
    try {
      detectFormat('nope', 'f');
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
    }
  });
});

describe('readTweetFile on the bundled samples', () => {
  it('v1_user_timeline_63.json: a one-line JSON array of 63 statuses, each located by index', async () => {
    // Expected from the raw file: JSON.parse sees 63 elements on one line.
    const raw = JSON.parse(readFileSync(HASHTAGS_SAMPLES.v1Timeline, 'utf8')) as { id_str: string }[];
    expect(raw).toHaveLength(63);
    const { items, format } = await readAll(HASHTAGS_SAMPLES.v1Timeline);
    expect(format).toBe('v1-array');
    expect(items.map((i) => i.kind)).toEqual(raw.map(() => 'v1'));
    expect(items.map((i) => i.location)).toEqual(
      raw.map((_, index) => ({ source: HASHTAGS_SAMPLES.v1Timeline, line: 1, index })),
    );
    expect(items.map((i) => (i.kind === 'v1' ? i.status.id_str : undefined))).toEqual(
      raw.map((s) => s.id_str),
    );
  });

  it('v1_stream_sample_72.ndjson: 72 lines, one status each', async () => {
    const lines = readFileSync(HASHTAGS_SAMPLES.v1Stream, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(72);
    const { items, format } = await readAll(HASHTAGS_SAMPLES.v1Stream);
    expect(format).toBe('v1-stream');
    expect(items.map((i) => i.kind)).toEqual(lines.map(() => 'v1'));
    expect(items.map((i) => i.location)).toEqual(
      lines.map((_, n) => ({ source: HASHTAGS_SAMPLES.v1Stream, line: n + 1 })),
    );
    expect(items.map((i) => (i.kind === 'v1' ? i.status.id_str : undefined))).toEqual(
      lines.map((l) => (JSON.parse(l) as { id_str: string }).id_str),
    );
  });

  it("v2_search_brexit_100.jsonl: one page of 100 tweets, each with the page's includes", async () => {
    const page = JSON.parse(readFileSync(HASHTAGS_SAMPLES.v2Search, 'utf8')) as {
      data: { id: string }[];
      includes: { users: unknown[] };
    };
    expect(page.data).toHaveLength(100);
    const { items, format } = await readAll(HASHTAGS_SAMPLES.v2Search);
    expect(format).toBe('v2-page');
    expect(items).toHaveLength(100);
    items.forEach((item, index) => {
      expect(item.kind).toBe('v2');
      if (item.kind !== 'v2') return;
      expect(item.tweet.id).toBe(page.data[index]?.id);
      expect(item.location).toEqual({ source: HASHTAGS_SAMPLES.v2Search, line: 1, index, member: 'data' });
      expect(item.includes.users).toHaveLength(page.includes.users.length);
    });
  });
});

describe('readTweetFile on bad input', () => {
  const good1 = JSON.stringify(status('101'));
  const truncated = JSON.stringify(status('102')).slice(0, 40);
  const noUser = JSON.stringify({ ...status('103'), user: undefined });
  const badUtf8 = Buffer.concat([
    Buffer.from('{"id_str":"104","text":"'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('"}'),
  ]);
  const deletion = '{"delete":{"status":{"id":1,"id_str":"1","user_id":3,"user_id_str":"3"}}}';
  const limit = '{"limit":{"track":12,"timestamp_ms":"1520690595660"}}';
  const noCreatedAt = JSON.stringify({ ...status('105'), created_at: undefined });
  const noScreenName = JSON.stringify(status('106', { user: { id_str: '7' } }));
  const noIdStr = JSON.stringify({ ...status('107'), id_str: undefined });
  const good2 = JSON.stringify(status('108', { text: 'héllo 🙂' }));

  /** The lines of the test file, each with its expected item (undefined for a blank line). */
  const lines: [Buffer, ((item: TweetInput | undefined) => void) | undefined][] = [
    [Buffer.from(`\uFEFF${good1}\r`), (i) => expect(i?.kind === 'v1' && i.status.id_str).toBe('101')],
    [Buffer.from(''), undefined],
    [
      Buffer.from(truncated),
      (i) => {
        const b = badItem(i);
        expect(b.reason).toMatch(/^line is not valid JSON: .*position \d+/);
        expect(b.raw).toBe(truncated);
      },
    ],
    [Buffer.from(`${noUser}\r`), (i) => expect(badItem(i).reason).toBe('v1.1 status 103 has no user')],
    [badUtf8, (i) => expect(badItem(i).reason).toBe('line is not valid UTF-8')],
    [Buffer.from(deletion), (i) => expect(i).toMatchObject({ kind: 'control', message: 'delete' })],
    [Buffer.from(limit), (i) => expect(i).toMatchObject({ kind: 'control', message: 'limit' })],
    [
      Buffer.from('42'),
      (i) => expect(badItem(i).reason).toMatch(/^line is a number, expected a JSON object/),
    ],
    [Buffer.from(noCreatedAt), (i) => expect(badItem(i).reason).toBe('v1.1 status 105 has no created_at')],
    [Buffer.from(' \t '), undefined],
    [
      Buffer.from(noScreenName),
      (i) => expect(badItem(i).reason).toBe('v1.1 status 106: its user has no screen_name'),
    ],
    [Buffer.from(noIdStr), (i) => expect(badItem(i).reason).toBe('v1.1 status has no id_str')],
    [Buffer.from(good2), (i) => expect(i?.kind === 'v1' && i.status.text).toBe('héllo 🙂')],
  ];
  // No newline after the last line: it still counts.
  const content = Buffer.concat(
    lines.flatMap(([bytes], n) => (n === 0 ? [bytes] : [Buffer.from('\n'), bytes])),
  );

  function expectLines(items: TweetInput[], file: string): void {
    const expected = lines.flatMap(([, check], n) => (check ? [{ check, line: n + 1 }] : []));
    // Counting reconciles: one item per non-blank line, none for blank lines.
    expect(items).toHaveLength(expected.length);
    expected.forEach(({ check, line }, k) => {
      check(items[k]);
      expect(items[k]?.location).toEqual({ source: file, line });
    });
  }

  it('yields one item per non-blank line, bad ones with reasons, with BOM, CRLF and blank lines', async () => {
    const file = await temp('mixed.ndjson', content);
    const { items, format } = await readAll(file);
    expect(format).toBe('v1-stream');
    expectLines(items, file);
  });

  it('reads gzip by its magic bytes, whatever the name', async () => {
    const file = await temp('mixed.ndjson', gzipSync(content));
    const { items } = await readAll(file);
    expectLines(items, file);
  });

  it('says where a truncated line ends', async () => {
    const file = await temp('cut.ndjson', `${good1}\n{"id_str":"9","text":`);
    const { items } = await readAll(file);
    expect(items).toHaveLength(2);
    const reason = badItem(items[1]).reason;
    expect(reason).toContain('Unexpected end of JSON input');
    expect(reason).toContain(
      `at position ${'{"id_str":"9","text":'.length}, the end of the line: it is truncated`,
    );
    expect(items[1]?.location).toEqual({ source: file, line: 2 });
  });

  it('reads a file whose first line is truncated line by line, and a line holding an array', async () => {
    const file = await temp('first-cut.ndjson', `{"id_str":"1","text":"cut\n[${good1},${good2}]\n${good1}\n`);
    const { items, format } = await readAll(file);
    expect(format).toBe('v1-stream');
    expect(items.map((i) => [i.kind, i.location])).toEqual([
      ['bad', { source: file, line: 1 }],
      ['v1', { source: file, line: 2, index: 0 }],
      ['v1', { source: file, line: 2, index: 1 }],
      ['v1', { source: file, line: 3 }],
    ]);
    expect(badItem(items[0]).reason).toMatch(/^line is not valid JSON: Unterminated string/);
  });

  it('reports a truncated gzip stream after everything before the damage', async () => {
    const many = Array.from({ length: 2000 }, (_, n) => JSON.stringify(status(String(1000 + n))));
    const gz = gzipSync(`${many.join('\n')}\n`);
    const file = await temp('cut.ndjson.gz', gz.subarray(0, Math.floor(gz.length / 2)));
    const { items } = await readAll(file);
    const last = badItem(items.at(-1));
    expect(last.reason).toMatch(/^the gzip stream ends early \(truncated file\)/);
    // Before it: complete lines in order, then at most one line cut by the damage.
    const good = items.filter((i) => i.kind === 'v1');
    expect(good.length).toBeGreaterThan(0);
    expect(good.map((i) => i.location.line)).toEqual(good.map((_, n) => n + 1));
    expect(items.length - good.length).toBeLessThanOrEqual(2);
  });

  it('v2 pages: data tweets flow, each errors entry and each tweet without id is quarantined', async () => {
    const includes = { users: [{ id: '1', username: 'a' }], tweets: [{ id: '50', text: 'original' }] };
    const page1 = {
      data: [{ id: '10', text: 'one', author_id: '1' }, { text: 'no id' }, { id: '12', text: 'three' }],
      includes,
      errors: [
        {
          value: '99',
          detail: 'Could not find tweet with referenced_tweets.id: [99].',
          title: 'Not Found Error',
          resource_type: 'tweet',
          parameter: 'referenced_tweets.id',
          resource_id: '99',
          type: 'https://api.twitter.com/2/problems/resource-not-found',
        },
        {
          title: 'Authorization Error',
          detail: 'Sorry, you are not authorized to see the Tweet with id: [98].',
        },
      ],
      meta: { result_count: 3 },
    };
    // The filtered stream's own line: data is one tweet.
    const streamLine = {
      data: { id: '20', text: 'live' },
      includes: {},
      matching_rules: [{ id: '1', tag: 'x' }],
    };
    const errorsOnly = {
      errors: [{ title: 'operational-disconnect', detail: 'This stream has been disconnected' }],
    };
    const empty = { meta: { result_count: 0 } };
    const file = await temp(
      'pages.jsonl',
      [page1, streamLine, errorsOnly, empty].map((p) => JSON.stringify(p)).join('\n'),
    );
    const { items, format } = await readAll(file);
    expect(format).toBe('v2-page');
    const at = (line: number, index?: number, member?: string) => ({
      source: file,
      line,
      ...(index === undefined ? {} : { index }),
      ...(member === undefined ? {} : { member }),
    });
    expect(items).toHaveLength(7);
    expect(items[0]).toEqual({ kind: 'v2', tweet: page1.data[0], includes, location: at(1, 0, 'data') });
    expect(badItem(items[1]).reason).toBe('v2 tweet has no id');
    expect(items[1]?.location).toEqual(at(1, 1, 'data'));
    expect(items[2]).toMatchObject({ kind: 'v2', tweet: { id: '12' }, location: at(1, 2, 'data') });
    const notFound = badItem(items[3]);
    expect(notFound.reason).toBe(
      'v2 error: Not Found Error: Could not find tweet with referenced_tweets.id: [99]. ' +
        '(resource_type tweet, resource_id 99, parameter referenced_tweets.id, value 99)',
    );
    expect(JSON.parse(notFound.raw)).toEqual(page1.errors[0]);
    expect(notFound.location).toEqual(at(1, 0, 'errors'));
    expect(badItem(items[4]).reason).toBe(
      'v2 error: Authorization Error: Sorry, you are not authorized to see the Tweet with id: [98].',
    );
    expect(items[4]?.location).toEqual(at(1, 1, 'errors'));
    expect(items[5]).toEqual({
      kind: 'v2',
      tweet: streamLine.data,
      includes: {},
      location: at(2, undefined, 'data'),
    });
    expect(badItem(items[6]).reason).toBe(
      'v2 error: operational-disconnect: This stream has been disconnected',
    );
    expect(items[6]?.location).toEqual(at(3, 0, 'errors'));
    // The empty page (line 4) has no tweet: nothing to yield.
  });

  it('v1.1 search responses: each status located in statuses[]', async () => {
    const response = {
      statuses: [status('1'), 5, { ...status('3'), user: 'x' }],
      search_metadata: { count: 3 },
    };
    const file = await temp('search.json', `${JSON.stringify(response)}\n`);
    const { items, format } = await readAll(file);
    expect(format).toBe('v1-search');
    expect(items.map((i) => i.kind)).toEqual(['v1', 'bad', 'bad']);
    expect(items.map((i) => i.location)).toEqual(
      [0, 1, 2].map((index) => ({ source: file, line: 1, index, member: 'statuses' })),
    );
    expect(badItem(items[1]).reason).toBe('status is a number, expected an object');
    expect(badItem(items[1]).raw).toBe('5');
    expect(badItem(items[2]).reason).toBe('v1.1 status 3 has no user');
  });

  it('skips a record over the size limit without holding it, and goes on', async () => {
    const big = JSON.stringify(status('2', { text: 'x'.repeat(5000) }));
    const file = await temp('big.ndjson', [good1, big, good2].join('\n'));
    const { items } = await readAll(file, { maxRecordBytes: 1000 });
    expect(items.map((i) => i.kind)).toEqual(['v1', 'bad', 'v1']);
    expect(badItem(items[1]).reason).toBe(
      `line is ${Buffer.byteLength(big)} bytes, over the 1000-byte limit of one record`,
    );
    expect(items[2]?.location.line).toBe(3);
  });

  it('clips the raw text of a bad item to 64 KiB', async () => {
    const long = `{"id_str":"1","text":"${'y'.repeat(100_000)}`;
    const file = await temp('long.ndjson', `${good1}\n${long}\n`);
    const { items } = await readAll(file);
    const raw = badItem(items[1]).raw;
    expect(raw.length).toBe(64 * 1024);
    expect(long.startsWith(raw)).toBe(true);
  });

  it('yields nothing for an empty file, and throws a UsageError naming a missing or unknown file', async () => {
    expect((await readAll(await temp('empty.ndjson', ''))).items).toEqual([]);
    expect((await readAll(await temp('blank.ndjson', '\n \r\n'))).items).toEqual([]);
    const missing = path.join(dir, 'missing.json');
    await expect(readAll(missing)).rejects.toThrow(UsageError);
    await expect(readAll(missing)).rejects.toThrow(missing);
    const csv = await temp('tweets.json', 'id,text\n1,hi\n');
    await expect(readAll(csv)).rejects.toThrow(
      new RegExp(`${csv.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not a Twitter capture`),
    );
  });

  it('stops with the signal', async () => {
    const file = await temp('abort.ndjson', [good1, good2].join('\n'));
    const controller = new AbortController();
    const reason = new Error('stop');
    const seen: TweetInput[] = [];
    await expect(
      (async () => {
        for await (const item of readTweetFile(file, { signal: controller.signal })) {
          seen.push(item);
          controller.abort(reason);
        }
      })(),
    ).rejects.toBe(reason);
    expect(seen).toHaveLength(1);
  });
});

describe('readTweetFile on JSON array files', () => {
  const statuses = ['1', '2', '3', '4'].map((id) =>
    status(id, { text: `t${id} "quoted" {not} [json], \\ ok` }),
  );

  it('reads a pretty-printed array (CRLF), each status located on the line it starts', async () => {
    const text = JSON.stringify(statuses, null, 2).replace(/\n/g, '\r\n');
    // Independently: with 2-space indentation each element starts on a line that is exactly "  {".
    const starts = text.split('\r\n').flatMap((l, n) => (l === '  {' ? [n + 1] : []));
    expect(starts).toHaveLength(4);
    const file = await temp('pretty.json', `\uFEFF${text}\r\n`);
    const { items, format } = await readAll(file);
    expect(format).toBe('v1-array');
    expect(items.map((i) => (i.kind === 'v1' ? i.status : i))).toEqual(statuses);
    expect(items.map((i) => i.location)).toEqual(
      starts.map((line, index) => ({ source: file, line, index })),
    );
  });

  it('quarantines bad elements one by one and goes on', async () => {
    const text = Buffer.concat([
      Buffer.from(`[${JSON.stringify(statuses[0])},\n {"id_str": "x" "oops"},\n 7,\n {"id_str":"9","text":"`),
      Buffer.from([0xc3, 0x28]),
      Buffer.from(`"},,\n${JSON.stringify(statuses[1])}]\n`),
    ]);
    const file = await temp('elements.json', text);
    const { items } = await readAll(file);
    expect(items.map((i) => i.kind)).toEqual(['v1', 'bad', 'bad', 'bad', 'bad', 'v1']);
    expect(items.map((i) => i.location)).toEqual(
      [1, 2, 3, 4, 4, 5].map((line, index) => ({ source: file, line, index })),
    );
    const position = '{"id_str": "x" "oops"}'.indexOf('"oops"');
    expect(badItem(items[1]).reason).toMatch(
      new RegExp(`^element is not valid JSON: .* at position ${position} \\(element 1 of the array\\)$`),
    );
    expect(badItem(items[1]).raw).toBe('{"id_str": "x" "oops"}');
    expect(badItem(items[2]).reason).toBe('status is a number, expected an object');
    expect(badItem(items[3]).reason).toBe('element is not valid UTF-8 (element 3 of the array)');
    expect(badItem(items[4]).reason).toBe('element 4 of the array is empty (a stray comma)');
  });

  it('keeps every complete status of a truncated array and quarantines the rest', async () => {
    const parts = statuses.map((s) => JSON.stringify(s));
    const whole = `[${parts.join(',')}]`;
    // Cut in the middle of element 2 (0-based).
    const cut = `[${parts[0]},${parts[1]},${parts[2]!.slice(0, 30)}`;
    expect(whole.startsWith(cut)).toBe(true);
    let { items } = await readAll(await temp('cut.json', cut));
    expect(items.map((i) => i.kind)).toEqual(['v1', 'v1', 'bad']);
    expect(badItem(items[2]).reason).toBe(
      'the file ends inside element 2 of the JSON array that starts on line 1 (truncated file)',
    );
    expect(badItem(items[2]).raw).toBe(parts[2]!.slice(0, 30));
    expect(items[2]?.location.index).toBe(2);

    // Cut right after a complete element, or after its comma: the element is kept, the missing ] reported.
    for (const text of [`[${parts[0]},${parts[1]}`, `[${parts[0]},${parts[1]},\n`]) {
      ({ items } = await readAll(await temp('cut.json', text)));
      expect(items.map((i) => i.kind)).toEqual(['v1', 'v1', 'bad']);
      expect(badItem(items[2]).reason).toBe(
        'the file ends inside the JSON array that starts on line 1, after 2 element(s): its closing ] is missing (truncated file)',
      );
    }
  });

  it('reads arrays one after another and says so about text outside them', async () => {
    const text = `${JSON.stringify(statuses.slice(0, 2))}\n${JSON.stringify(statuses.slice(2))}\nnot json\n`;
    const file = await temp('arrays.json', text);
    const { items } = await readAll(file);
    expect(items.map((i) => i.kind)).toEqual(['v1', 'v1', 'v1', 'v1', 'bad']);
    expect(items.map((i) => i.location)).toEqual([
      { source: file, line: 1, index: 0 },
      { source: file, line: 1, index: 1 },
      { source: file, line: 2, index: 0 },
      { source: file, line: 2, index: 1 },
      { source: file, line: 3 },
    ]);
    expect(badItem(items[4])).toMatchObject({
      raw: 'not json',
      reason: 'text outside any JSON array or object (expected [ or {)',
    });
  });

  it('reads a gzip array whose stream is truncated: statuses before the damage, then the damage', async () => {
    const many = Array.from({ length: 3000 }, (_, n) => status(String(5000 + n)));
    const gz = gzipSync(JSON.stringify(many));
    const file = await temp('cut.json.gz', gz.subarray(0, Math.floor(gz.length / 2)));
    const { items } = await readAll(file);
    const good = items.filter((i) => i.kind === 'v1');
    expect(good.length).toBeGreaterThan(100);
    expect(good.map((i) => i.location.index)).toEqual(good.map((_, n) => n));
    expect(good.map((i) => (i.kind === 'v1' ? i.status.id_str : ''))).toEqual(
      many.slice(0, good.length).map((s) => s.id_str),
    );
    const rest = items.slice(good.length);
    expect(rest.length).toBe(2); // the element cut by the damage, and the damage itself
    expect(badItem(rest[0]).reason).toMatch(
      /^the gzip stream ends early .* inside element \d+ of the JSON array/,
    );
    expect(badItem(rest[1]).reason).toMatch(
      /^the gzip stream ends early \(truncated file\).*nothing after this point/,
    );
  });

  it('reads a pretty-printed search response and v2 page one object at a time', async () => {
    const response = { statuses: statuses.slice(0, 2), search_metadata: { count: 2 } };
    const page = { data: [{ id: '77', text: 'v2' }], includes: {}, meta: { result_count: 1 } };
    const text = `${JSON.stringify(response, null, 2)}\n${JSON.stringify(page, null, 2)}\n`;
    const pageLine = text.split('\n').indexOf('{', 1) + 1;
    const file = await temp('pretty-objects.json', text);
    const { items, format } = await readAll(file);
    expect(format).toBe('v1-search');
    expect(items.map((i) => [i.kind, i.location])).toEqual([
      ['v1', { source: file, line: 1, index: 0, member: 'statuses' }],
      ['v1', { source: file, line: 1, index: 1, member: 'statuses' }],
      ['v2', { source: file, line: pageLine, index: 0, member: 'data' }],
    ]);
  });
});
