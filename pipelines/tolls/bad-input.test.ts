import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { executeTolls } from '../../src/cli/commands/run-tolls.ts';
import { reconcile } from '../../src/core/run.ts';
import { fakeClock } from '../../test/helpers/context.ts';
import {
  createTollsHome,
  readNdjsonSample,
  startTestWarehouse,
  type TestWarehouse,
  TOLLS_SAMPLES,
  type TollsHome,
  totalsByBooth,
} from '../../test/helpers/tolls.ts';

const NOW = new Date('2023-08-29T12:00:00Z');
const sampleLines = readFileSync(TOLLS_SAMPLES.pythonDict, 'utf8').split('\n').filter(Boolean);
const sample = readNdjsonSample();

/** A full valid line with some fields replaced (`undefined` drops the field), Python-dict text. */
function line(fields: Record<string, string | undefined>): string {
  const base: Record<string, string> = {
    transaction_id: '4242',
    transaction_date: "'2023/08/20'",
    toll_booth: "'york_rd'",
    vehicle_make: "'Audi'",
    vehicle_category: "'SUV'",
    transaction_amount: '1.25',
  };
  const merged = { ...base, ...fields };
  const parts = Object.entries(merged)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `'${k}': ${v}`);
  return `{${parts.join(', ')}}`;
}

/** The bad lines, each with the words its quarantine reason must name. */
const BAD: { bytes: Buffer; raw: string; reason: RegExp[] }[] = (
  [
    {
      text: "{'transaction_id': 1, 'toll_booth': 'york_rd}",
      reason: [/not a JSON object or Python dict/, /unterminated string/],
    },
    { text: line({ toll_booth: undefined }), reason: [/missing toll_booth/, /NOT NULL/] },
    { text: line({ toll_booth: 'None' }), reason: [/toll_booth/, /NOT NULL/] },
    { text: line({ transaction_amount: "'abc'" }), reason: [/transaction_amount/, /"abc"/, /not a number/] },
    { text: line({ transaction_id: "'x1'" }), reason: [/transaction_id/, /"x1"/, /not an integer/] },
    { text: line({ vehicle_make: `'${'m'.repeat(300)}'` }), reason: [/vehicle_make/, /300 bytes/, /256/] },
    // A REAL column cannot hold it: COPY would reject the whole file.
    { text: line({ transaction_amount: '1e39' }), reason: [/transaction_amount/, /range/] },
    // PostgreSQL/Redshift varchar cannot hold U+0000: COPY would reject the whole file.
    { text: line({ vehicle_make: "'Au\\x00di'" }), reason: [/vehicle_make/, /NUL/] },
    { text: '[1, 2, 3]', reason: [/not a JSON object or Python dict/] },
  ] as { text: string; reason: RegExp[] }[]
).map((b) => ({ bytes: Buffer.from(b.text), raw: b.text, reason: b.reason }));

// Invalid UTF-8 (0xFF 0xFE inside a string): quarantined as such, its raw bytes kept as Latin-1.
const invalidUtf8 = Buffer.concat([
  Buffer.from(
    "{'transaction_id': 6, 'transaction_date': '2023/08/20', 'toll_booth': 'york_rd', 'vehicle_make': '",
  ),
  Buffer.from([0xff, 0xfe]),
  Buffer.from("', 'vehicle_category': 'SUV', 'transaction_amount': 1.0}"),
]);
BAD.push({ bytes: invalidUtf8, raw: invalidUtf8.toString('latin1'), reason: [/UTF-8/] });

/**
 * The sample's 80 lines with the bad lines, two blank lines (one of spaces and a tab) and one
 * CRLF line ending mixed in; returns the bytes and the expected line number of each bad line.
 */
function badFile(): { bytes: Buffer; badLines: { line: number; raw: string; reason: RegExp[] }[] } {
  const lines: Buffer[] = [];
  const badLines: { line: number; raw: string; reason: RegExp[] }[] = [];
  sampleLines.forEach((text, i) => {
    lines.push(Buffer.from(i === 40 ? `${text}\r` : text));
    if (i % 8 === 3) {
      const bad = BAD[(i - 3) / 8];
      if (bad) {
        lines.push(bad.bytes);
        badLines.push({ line: lines.length, raw: bad.raw, reason: bad.reason });
      }
    }
    if (i === 20) lines.push(Buffer.from(''));
    if (i === 60) lines.push(Buffer.from('  \t '));
  });
  expect(badLines).toHaveLength(BAD.length);
  // Byte-wise (joining Buffers as strings would replace the invalid UTF-8).
  return { bytes: Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')])), badLines };
}

let warehouse: TestWarehouse;
let t: TollsHome;
let scratch: string;

beforeAll(async () => {
  warehouse = await startTestWarehouse('bad');
});
afterAll(async () => {
  await warehouse?.stop();
});
beforeEach(async () => {
  await warehouse.reset();
  t = await createTollsHome({ warehouseUrl: warehouse.url, clock: fakeClock(NOW) });
  scratch = await mkdtemp(path.join(os.tmpdir(), 'sluice-tolls-bad-'));
});
afterEach(async () => {
  await t?.close();
  await rm(scratch, { recursive: true, force: true });
});

describe('tolls job on bad input', () => {
  it('quarantines each bad line with its line number and reason, skips blank lines, loads the 80 good rows; read = staged + quarantined', async () => {
    const { bytes, badLines } = badFile();
    const file = path.join(scratch, 'bad_sample.json');
    await writeFile(file, bytes);
    const sha = createHash('sha256').update(readFileSync(file)).digest('hex');

    const { execution } = await executeTolls(t.ctx, { inputs: [file] });
    expect(execution.status, JSON.stringify(execution.cause)).toBe('SUCCEEDED');
    const job = (
      execution.output as {
        job: { run_id: string; files: { counts: Record<string, number>; quarantine_key: string }[] };
      }
    ).job;
    const counts = job.files[0]?.counts;
    expect(counts).toEqual({ read: 80 + BAD.length, loaded: 80, duplicates: 0, quarantined: BAD.length });
    reconcile(counts as never);
    const key = `tolls/job/date=2023-08-29/bad_sample-${sha.slice(0, 12)}.ndjson`;
    expect(job.files[0]?.quarantine_key).toBe(key);

    const quarantined = Buffer.from(await t.backend.objectStore.getBytes({ layer: 'quarantine', key }))
      .toString('utf8')
      .split('\n')
      .filter(Boolean)
      .map(
        (l) =>
          JSON.parse(l) as {
            step: string;
            run_id: string;
            source: string;
            line: number;
            reason: string;
            raw: string;
          },
      );
    expect(quarantined.map((q) => q.line)).toEqual(badLines.map((b) => b.line));
    for (const [i, q] of quarantined.entries()) {
      const bad = badLines[i]!;
      expect(q).toMatchObject({ step: 'job', run_id: job.run_id, source: 'landing/tolls/bad_sample.json' });
      expect(q.raw).toBe(bad.raw);
      for (const words of bad.reason) expect(q.reason, `line ${q.line}`).toMatch(words);
    }

    // The good rows, all of them and nothing else; the CRLF line's amount intact.
    expect(
      await warehouse.sql(
        `SELECT toll_booth AS booth, count(*)::int AS n, sum(transaction_amount::numeric)::text AS total
           FROM toll_table GROUP BY toll_booth ORDER BY toll_booth COLLATE "C"`,
      ),
    ).toEqual(totalsByBooth(sample));
    const ids = await warehouse.sql<{ id: string }>('SELECT transaction_id::text AS id FROM toll_table');
    expect(ids.map((r) => Number(r.id)).sort((a, b) => a - b)).toEqual(
      sample.map((r) => r.transaction_id).sort((a, b) => a - b),
    );
    const crlf = sample[40]!;
    const [stored] = await warehouse.sql<{ amount: number; category: string }>(
      'SELECT transaction_amount AS amount, vehicle_category AS category FROM toll_table WHERE transaction_id = $1',
      [crlf.transaction_id],
    );
    expect(Math.fround(stored!.amount)).toBe(Math.fround(crlf.transaction_amount));
    expect(stored!.category).toBe(crlf.vehicle_category);

    // Run log: the job step counts the same, and they reconcile.
    const [jobRun] = (await t.runs()).filter((r) => r.step === 'job');
    expect(jobRun?.counts).toEqual(counts);
    expect(jobRun?.details).toMatchObject({ quarantine: key });
  });

  it('casts a digit-string transaction_id and a numeric-string amount; None amount and a missing id load as NULL; unknown fields are ignored', async () => {
    const file = path.join(scratch, 'casts.json');
    await writeFile(
      file,
      [
        "{'transaction_id': '00042', 'transaction_date': '2023/08/01', 'toll_booth': 'golf_rd', 'vehicle_make': 'Audi', 'vehicle_category': 'SUV, Sedan', 'transaction_amount': '3.50'}",
        "{'transaction_id': 7, 'transaction_date': '2023/08/02', 'toll_booth': 'york_rd', 'vehicle_make': 'BMW', 'vehicle_category': 'Coupe', 'transaction_amount': None}",
        '{"transaction_id": "99999", "transaction_date": "2023/08/03", "toll_booth": "82nd_st", "vehicle_make": "Kia", "vehicle_category": "Van/Minivan", "transaction_amount": "10"}',
        `{'transaction_date': '2023/08/04', 'toll_booth': 'royal_ave', 'vehicle_make': "O'Neil", 'vehicle_category': 'Wagon', 'transaction_amount': 5.0}`,
        "{'transaction_id': 12, 'transaction_date': '2023/08/05', 'toll_booth': 'buckley_rd', 'vehicle_make': 'Ford', 'vehicle_category': 'SUV', 'transaction_amount': 2.5, 'lane': [1, 2]}",
        '',
      ].join('\n'),
    );
    const { execution } = await executeTolls(t.ctx, { inputs: [file] });
    expect(execution.status, JSON.stringify(execution.cause)).toBe('SUCCEEDED');
    expect(
      (execution.output as { job: { files: { counts: unknown; quarantine_key: unknown }[] } }).job.files[0],
    ).toMatchObject({ counts: { read: 5, loaded: 5, quarantined: 0 }, quarantine_key: null });
    expect(
      await warehouse.sql(
        `SELECT transaction_id::text AS id, transaction_date AS date, toll_booth AS booth, vehicle_make AS make,
                vehicle_category AS category, transaction_amount AS amount
           FROM toll_table ORDER BY transaction_date`,
      ),
    ).toEqual([
      { id: '42', date: '2023/08/01', booth: 'golf_rd', make: 'Audi', category: 'SUV, Sedan', amount: 3.5 },
      { id: '7', date: '2023/08/02', booth: 'york_rd', make: 'BMW', category: 'Coupe', amount: null },
      { id: '99999', date: '2023/08/03', booth: '82nd_st', make: 'Kia', category: 'Van/Minivan', amount: 10 },
      { id: null, date: '2023/08/04', booth: 'royal_ave', make: "O'Neil", category: 'Wagon', amount: 5 },
      { id: '12', date: '2023/08/05', booth: 'buckley_rd', make: 'Ford', category: 'SUV', amount: 2.5 },
    ]);
  });
});
