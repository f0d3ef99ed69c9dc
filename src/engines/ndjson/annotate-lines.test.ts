import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { annotateNdjson, explainRejectedLine, LINE_FIELD, readAnnotatedLines } from './annotate-lines.ts';

let dir: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'sluice-annotate-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes `content` under `name` (in its own folder), annotates it, and returns the result and output. */
async function annotate(name: string, content: Buffer | string) {
  const folder = path.join(dir, String(++counter));
  await mkdir(folder);
  const input = path.join(folder, name);
  const output = path.join(folder, 'annotated.ndjson');
  await writeFile(input, content);
  const result = await annotateNdjson(input, output);
  return { result, output, text: await readFile(output, 'utf8'), bytes: await readFile(output) };
}

/** Physical lines of `text` split on `\n`, without the empty piece after a final newline. */
function physicalLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** Every annotated line starting with `{` parses, carries its 1-based number, and otherwise equals the original. */
function expectAnnotatedMatches(annotatedText: string, originalLines: readonly string[]): void {
  const out = physicalLines(annotatedText);
  expect(out).toHaveLength(originalLines.length);
  originalLines.forEach((original, i) => {
    const line = out[i] ?? '';
    if (original.trim().startsWith('{')) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      expect(parsed[LINE_FIELD]).toBe(i + 1);
      const { [LINE_FIELD]: _, ...rest } = parsed;
      expect(rest).toEqual(JSON.parse(original));
    } else if (original.trim() === '') {
      expect(line.trim()).toBe('');
    } else {
      expect(line).toBe(original);
    }
  });
}

async function collect(annotatedPath: string, wanted: number[]) {
  const out: { line: number; raw: Buffer }[] = [];
  for await (const item of readAnnotatedLines(annotatedPath, new Set(wanted))) out.push(item);
  return out;
}

describe('annotateNdjson', () => {
  const records = [{ a: 1 }, { b: 'two', nested: { c: [1, 2, 3] } }, { unicode: 'é漢🙂' }];
  const ndjson = records.map((r) => `${JSON.stringify(r)}\n`).join('');

  it('detects gzip by its magic bytes, not its name', async () => {
    const plainNamedGz = await annotate('data.json.gz', ndjson);
    expect(plainNamedGz.result.gzip).toBe(false);
    expect(plainNamedGz.result.lines).toBe(3);
    expectAnnotatedMatches(plainNamedGz.text, physicalLines(ndjson));

    const gzipNamedNdjson = await annotate('data.ndjson', gzipSync(ndjson));
    expect(gzipNamedNdjson.result.gzip).toBe(true);
    expect(gzipNamedNdjson.result.lines).toBe(3);
    expectAnnotatedMatches(gzipNamedNdjson.text, physicalLines(ndjson));
    expect(gzipNamedNdjson.text).toBe(plainNamedGz.text);
  });

  it('reports compressed and decompressed byte counts', async () => {
    const compressed = gzipSync(ndjson);
    const { result } = await annotate('x.gz', compressed);
    expect(result.bytesIn).toBe(compressed.length);
    expect(result.bytesDecompressed).toBe(Buffer.byteLength(ndjson));
    const plain = await annotate('x.ndjson', ndjson);
    expect(plain.result.bytesIn).toBe(Buffer.byteLength(ndjson));
    expect(plain.result.bytesDecompressed).toBe(Buffer.byteLength(ndjson));
  });

  it('counts physical lines including blank and whitespace-only ones', async () => {
    const content = '{"a":1}\n\n   \n{"a":2}\n\t\n{"a":3}\n';
    const { result, text } = await annotate('blank.ndjson', content);
    expect(result.lines).toBe(6);
    expect(result.blankLines).toBe(3);
    expect(result.lastLineUnterminated).toBe(false);
    expectAnnotatedMatches(text, physicalLines(content));
    expect(result.damage).toBeUndefined();
  });

  it('handles CRLF line ends: numbers stay right and the JSON still parses', async () => {
    const lines = ['{"a":1}', '', '{"a":2}', 'not json', '{"a":3}'];
    const content = lines.map((l) => `${l}\r\n`).join('');
    const { result, text } = await annotate('crlf.ndjson', content);
    expect(result.lines).toBe(5);
    expect(result.blankLines).toBe(1);
    const out = physicalLines(text);
    expect(out).toHaveLength(5);
    expect((JSON.parse(out[0] ?? '') as Record<string, unknown>)[LINE_FIELD]).toBe(1);
    expect((JSON.parse(out[2] ?? '') as Record<string, unknown>)[LINE_FIELD]).toBe(3);
    expect((JSON.parse(out[4] ?? '') as Record<string, unknown>)[LINE_FIELD]).toBe(5);
    expect(out[3]).toBe('not json\r');
  });

  it('turns {} and { } into valid JSON holding only the line member', async () => {
    const content = '{}\n{ }\n{\t}\n  {}\n';
    const { text } = await annotate('empty.ndjson', content);
    const out = physicalLines(text);
    expect(out.map((l) => JSON.parse(l))).toEqual([
      { [LINE_FIELD]: 1 },
      { [LINE_FIELD]: 2 },
      { [LINE_FIELD]: 3 },
      { [LINE_FIELD]: 4 },
    ]);
  });

  it('copies lines not starting with { unchanged', async () => {
    const lines = ['[1,2,3]', 'null', '42', '"text"', 'this is not json', '}{', '{"ok":true}'];
    const content = lines.join('\n') + '\n';
    const { result, text } = await annotate('mixed.ndjson', content);
    expect(result.lines).toBe(lines.length);
    expect(physicalLines(text).slice(0, 6)).toEqual(lines.slice(0, 6));
    expectAnnotatedMatches(text, lines);
  });

  it('keeps a line that does not start like an object even when it is cut', async () => {
    const { text } = await annotate('cut.ndjson', '{"id": 1, "payload": {\n{"id":2}\n');
    const out = physicalLines(text);
    expect(out[0]).toBe(`{"${LINE_FIELD}":1,"id": 1, "payload": {`);
    expect(JSON.parse(out[1] ?? '')).toEqual({ [LINE_FIELD]: 2, id: 2 });
  });

  it('counts and terminates a final line without newline', async () => {
    const content = '{"a":1}\n{"a":2}';
    const { result, text } = await annotate('final.ndjson', content);
    expect(result.lines).toBe(2);
    expect(result.lastLineUnterminated).toBe(true);
    expect(text.endsWith('\n')).toBe(true);
    expectAnnotatedMatches(text, ['{"a":1}', '{"a":2}']);

    const gz = await annotate('final.gz', gzipSync(content));
    expect(gz.result.lines).toBe(2);
    expect(gz.result.lastLineUnterminated).toBe(true);
    expect(gz.result.damage).toBeUndefined();
    expect(gz.text).toBe(text);
  });

  it('handles an empty file', async () => {
    const { result, text } = await annotate('empty.ndjson', '');
    expect(result).toMatchObject({ lines: 0, blankLines: 0, bytesIn: 0, gzip: false });
    expect(text).toBe('');
  });

  it('handles a line spanning many 1 MiB chunks, plain and gzip', async () => {
    const big = { id: 7, text: 'x'.repeat(5 * 1024 * 1024), tail: 'end' };
    const lines = ['{"before":true}', JSON.stringify(big), '{"after":true}'];
    const content = lines.join('\n') + '\n';
    for (const [name, body] of [
      ['big.ndjson', Buffer.from(content)],
      ['big.gz', gzipSync(content)],
    ] as const) {
      const { result, text } = await annotate(name, body);
      expect(result.lines).toBe(3);
      expect(result.bytesDecompressed).toBe(Buffer.byteLength(content));
      expectAnnotatedMatches(text, lines);
    }
  });

  it('reads every member of a multi-member gzip', async () => {
    const first = ['{"m":1,"i":1}', '{"m":1,"i":2}'];
    // The first member ends in the middle of a line: the line continues in the second member.
    const second = ['{"m":2,"i":3}', '{"m":2,"i":4}'];
    const body = Buffer.concat([
      gzipSync(first.join('\n') + '\n' + '{"m":"split",'),
      gzipSync('"i":"x"}\n' + second.join('\n') + '\n'),
    ]);
    const { result, text } = await annotate('multi.json.gz', body);
    expect(result.gzip).toBe(true);
    expect(result.damage).toBeUndefined();
    expect(result.lines).toBe(5);
    expectAnnotatedMatches(text, [...first, '{"m":"split","i":"x"}', ...second]);
  });

  it('reports a truncated gzip and keeps every complete line before the cut', async () => {
    const lines = Array.from({ length: 20_000 }, (_, i) =>
      JSON.stringify({ i, text: `line ${i} ${'abc'.repeat(i % 17)}` }),
    );
    const full = gzipSync(lines.join('\n') + '\n');
    const cut = full.subarray(0, Math.floor(full.length / 2));
    const { result, text } = await annotate('truncated.json.gz', cut);
    expect(result.gzip).toBe(true);
    expect(result.damage?.kind).toBe('truncated');
    expect(result.damage?.message).toMatch(/truncated/);
    expect(result.bytesIn).toBe(cut.length);

    const out = physicalLines(text);
    expect(out.length).toBe(result.lines);
    // Some lines are read, but not all.
    expect(result.lines).toBeGreaterThan(1000);
    expect(result.lines).toBeLessThan(lines.length);
    // Every line but the last is complete; the last is complete or a prefix of the original.
    const complete = result.lastLineUnterminated ? out.slice(0, -1) : out;
    expectAnnotatedMatches(complete.join('\n') + '\n', lines.slice(0, complete.length));
    // Everything decompressed was written: the complete lines are exactly the decompressed prefix.
    const decompressedLines = Buffer.from(lines.join('\n') + '\n')
      .subarray(0, result.bytesDecompressed)
      .toString('utf8')
      .split('\n');
    expect(complete.length).toBe(decompressedLines.length - 1);
    if (result.lastLineUnterminated) {
      const partial = out.at(-1) ?? '';
      const original = lines[complete.length] ?? '';
      expect(partial).toBe(`{"${LINE_FIELD}":${complete.length + 1},${decompressedLines.at(-1)?.slice(1)}`);
      expect(original.startsWith(decompressedLines.at(-1) ?? '~')).toBe(true);
    }
  });

  it('reports a corrupt gzip as damage, not an exception', async () => {
    const lines = Array.from({ length: 5_000 }, (_, i) => JSON.stringify({ i, v: `value-${i * 7919}` }));
    const full = gzipSync(lines.join('\n') + '\n');
    const corrupt = Buffer.from(full);
    const middle = Math.floor(corrupt.length / 2);
    for (let i = middle; i < middle + 16; i++) corrupt[i] = (corrupt[i] ?? 0) ^ 0xff;
    const { result, text } = await annotate('corrupt.json.gz', corrupt);
    expect(result.gzip).toBe(true);
    expect(result.damage).toBeDefined();
    expect(result.damage?.message).toMatch(/gzip stream/);
    expect(result.lines).toBeLessThan(lines.length + 1);
    // Whatever was written is still one line per output line, numbered in order.
    const objects = physicalLines(text).filter((l) => l.startsWith(`{"${LINE_FIELD}":`));
    const numbers = objects.map((l) => Number(/^\{"__sluice_line":(\d+)/.exec(l)?.[1]));
    expect(numbers).toEqual(numbers.map((_, i) => i + 1));
  });

  it('throws for a missing input file', async () => {
    await expect(annotateNdjson(path.join(dir, 'missing.ndjson'), path.join(dir, 'out'))).rejects.toThrow(
      /ENOENT/,
    );
  });
});

describe('readAnnotatedLines', () => {
  it('restores the exact original bytes of the chosen lines', async () => {
    const lines = [
      '{"a":1}', // 1
      '{ "spaced" : [1, 2] , "x":"y" }', // 2
      '{}', // 3
      '{ }', // 4
      '', // 5 blank
      'not json at all', // 6
      '[1,2]', // 7
      '{"cut": ', // 8
      `{"${LINE_FIELD}":99,"own":true}`, // 9: data that already uses the member name
      '{"unicode":"é漢🙂"}', // 10
      '{"crlf":1}\r', // 11
      '  {"indented":true}', // 12
      '\t{ }', // 13
      '{"last":"unterminated"}', // 14
    ];
    const content = Buffer.from(lines.join('\n'));
    const { output, result } = await annotate('restore.ndjson', content);
    expect(result.lines).toBe(14);

    const wanted = [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14];
    const restored = await collect(output, wanted);
    expect(restored.map((r) => r.line)).toEqual(wanted);
    for (const { line, raw } of restored) {
      const original = Buffer.from(lines[line - 1] ?? '', 'utf8');
      expect(raw.equals(original), `line ${line}: ${JSON.stringify(raw.toString('utf8'))}`).toBe(true);
    }
  });

  it('restores invalid UTF-8 byte for byte', async () => {
    const bad = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
    const content = Buffer.concat([Buffer.from('{"ok":1}\n'), bad, Buffer.from('\n{"ok":2}\n')]);
    const { output } = await annotate('bad-utf8.ndjson', content);
    const [only] = await collect(output, [2]);
    expect(only?.line).toBe(2);
    expect(only?.raw.equals(bad)).toBe(true);
  });

  it('skips blank lines, ignores numbers beyond the end, and stops early', async () => {
    const content = '{"a":1}\n\n{"a":3}\n';
    const { output } = await annotate('skip.ndjson', content);
    expect(await collect(output, [2])).toEqual([]);
    expect((await collect(output, [3, 1, 50])).map((r) => r.line)).toEqual([1, 3]);
    expect(await collect(output, [])).toEqual([]);
  });

  it('restores a line longer than its read chunks', async () => {
    const long = JSON.stringify({ big: 'y'.repeat(3 * 1024 * 1024 + 17) });
    const lines = ['{"a":1}', long, '{"a":3}'];
    const { output } = await annotate('long.ndjson', lines.join('\n') + '\n');
    const restored = await collect(output, [2, 3]);
    expect(restored.map((r) => r.line)).toEqual([2, 3]);
    expect(restored[0]?.raw.equals(Buffer.from(long))).toBe(true);
    expect(restored[1]?.raw.toString()).toBe('{"a":3}');
  });
});

describe('explainRejectedLine', () => {
  const limit = 1000;
  const explain = (text: string | Buffer) =>
    explainRejectedLine(typeof text === 'string' ? Buffer.from(text) : text, limit);

  it('names invalid JSON with the parser message', () => {
    const text = '{"id": 1, "payload": {';
    let parserMessage = '';
    try {
      JSON.parse(text);
    } catch (error) {
      parserMessage = (error as Error).message;
    }
    expect(explain(text)).toBe(`line is not valid JSON: ${parserMessage}`);
    expect(explain('not json')).toMatch(/^line is not valid JSON: /);
  });

  it('names the JSON kind that is not an object', () => {
    expect(explain('[1,2,3]')).toBe('line is an array, expected a JSON object');
    expect(explain('null')).toBe('line is null, expected a JSON object');
    expect(explain('42')).toBe('line is a number, expected a JSON object');
    expect(explain('"text"')).toBe('line is a string, expected a JSON object');
    expect(explain('true')).toBe('line is a boolean, expected a JSON object');
  });

  it('names invalid UTF-8', () => {
    const raw = Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
    expect(explain(raw)).toBe('line is not valid UTF-8');
  });

  it('names an over-size record with its size and the limit', () => {
    const raw = Buffer.from(JSON.stringify({ x: 'z'.repeat(limit) }));
    expect(explain(raw)).toBe(`record is ${raw.length} bytes, over the ${limit}-byte limit of one record`);
    // Exactly at the limit is not over it.
    const atLimit = Buffer.from(`{"x":"${'z'.repeat(limit - 8)}"}`);
    expect(atLimit.length).toBe(limit);
    expect(explain(atLimit)).not.toMatch(/limit/);
  });

  it('falls back to the reader for a valid object', () => {
    expect(explain('{"s":"\\ud800"}')).toMatch(/rejected by the JSON reader/);
  });
});
