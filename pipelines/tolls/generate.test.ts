import { spawnSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { S3EventRecord } from '../../src/core/events.ts';
import { eventObjectKey, matchesTrigger } from '../../src/core/trigger.ts';
import { createTestHome, fakeClock, type TestHome } from '../../test/helpers/context.ts';
import { tollsPipeline } from './definition.ts';
import { formatTransaction, generateFile, generateTransactions, type TollTransaction } from './generate.ts';

const NOW = new Date('2024-03-05T07:08:09.500Z');
const BOOTHS = ['buckley_rd', '82nd_st', 'royal_ave', 'savanna_west', 'golf_rd', 'york_rd'];

const PYTHON = spawnSync('python3', ['--version']).status === 0;

/**
 * Python's own reading of lines: `ast.literal_eval` of each, then its `repr` and a JSON dump of
 * the value (what the original's consumers would see).
 */
function python(lines: readonly string[]): { repr: string; value: Record<string, unknown> }[] {
  const script = [
    'import ast, json, sys',
    'for line in sys.stdin.read().split("\\n"):',
    '    if line:',
    '        v = ast.literal_eval(line)',
    '        print(json.dumps({"repr": repr(v), "value": v}))',
  ].join('\n');
  const result = spawnSync('python3', ['-c', script], { input: lines.join('\n'), encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`python3 failed: ${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { repr: string; value: Record<string, unknown> });
}

const base: TollTransaction = {
  transaction_id: 5,
  transaction_date: '2023/08/01',
  toll_booth: 'york_rd',
  vehicle_make: 'Audi',
  vehicle_category: 'SUV, Sedan',
  transaction_amount: 8.85,
};

/** Hand-written transactions and the exact line Python's `f"{fake_data}"` writes for each. */
const HAND_WRITTEN: [TollTransaction, string][] = [
  [
    base,
    "{'transaction_id': 5, 'transaction_date': '2023/08/01', 'toll_booth': 'york_rd', 'vehicle_make': 'Audi', 'vehicle_category': 'SUV, Sedan', 'transaction_amount': 8.85}",
  ],
  [
    { ...base, transaction_amount: 5 },
    "{'transaction_id': 5, 'transaction_date': '2023/08/01', 'toll_booth': 'york_rd', 'vehicle_make': 'Audi', 'vehicle_category': 'SUV, Sedan', 'transaction_amount': 5.0}",
  ],
  [
    { ...base, transaction_id: 0, vehicle_make: "O'Reilly", transaction_amount: 10 },
    `{'transaction_id': 0, 'transaction_date': '2023/08/01', 'toll_booth': 'york_rd', 'vehicle_make': "O'Reilly", 'vehicle_category': 'SUV, Sedan', 'transaction_amount': 10.0}`,
  ],
  [
    { ...base, vehicle_make: 'It\'s "x"', transaction_amount: 0.1 },
    `{'transaction_id': 5, 'transaction_date': '2023/08/01', 'toll_booth': 'york_rd', 'vehicle_make': 'It\\'s "x"', 'vehicle_category': 'SUV, Sedan', 'transaction_amount': 0.1}`,
  ],
  [
    { ...base, vehicle_make: 'say "hi"\tback\\slash', transaction_amount: 0.01 },
    `{'transaction_id': 5, 'transaction_date': '2023/08/01', 'toll_booth': 'york_rd', 'vehicle_make': 'say "hi"\\tback\\\\slash', 'vehicle_category': 'SUV, Sedan', 'transaction_amount': 0.01}`,
  ],
];

describe('tolls generator', () => {
  it('is deterministic for a seed and a time; another seed gives other transactions', async () => {
    const a = await generateTransactions(50, { seed: 7, now: NOW });
    const b = await generateTransactions(50, { seed: 7, now: NOW });
    const c = await generateTransactions(50, { seed: 8, now: NOW });
    expect(a).toHaveLength(50);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  it("produces the original's fields and ranges (REFERENCE.md section 2)", async () => {
    const transactions = await generateTransactions(2000, { seed: 11, now: NOW });
    // Dates as YYYY/MM/DD from the UTC day 30 days before `now` to the day of `now`.
    const day = (d: Date) => d.toISOString().slice(0, 10).replaceAll('-', '/');
    const first = day(new Date(NOW.getTime() - 30 * 86_400_000));
    const last = day(NOW);
    const categorySizes = new Set<number>();
    for (const t of transactions) {
      expect(Object.keys(t)).toEqual([
        'transaction_id',
        'transaction_date',
        'toll_booth',
        'vehicle_make',
        'vehicle_category',
        'transaction_amount',
      ]);
      expect(Number.isInteger(t.transaction_id)).toBe(true);
      expect(t.transaction_id).toBeGreaterThanOrEqual(0);
      expect(t.transaction_id).toBeLessThanOrEqual(99_999);
      expect(t.transaction_date).toMatch(/^\d{4}\/\d{2}\/\d{2}$/);
      expect(t.transaction_date >= first && t.transaction_date <= last, t.transaction_date).toBe(true);
      expect(BOOTHS).toContain(t.toll_booth);
      expect(t.vehicle_make.length).toBeGreaterThan(0);
      expect(t.transaction_amount).toBeGreaterThanOrEqual(0.01);
      expect(t.transaction_amount).toBeLessThanOrEqual(10);
      expect(Math.round(t.transaction_amount * 100) / 100).toBe(t.transaction_amount);
      const categories = t.vehicle_category.split(', ');
      expect(categories.length).toBeGreaterThanOrEqual(1);
      expect(categories.length).toBeLessThanOrEqual(3);
      expect(new Set(categories).size).toBe(categories.length);
      for (const c of categories) expect(c).toMatch(/^[^,\s][^,]*[^,\s]$/);
      categorySizes.add(categories.length);
    }
    // Over 2,000 draws every booth and every category count occurs; ids spread over 5 digits.
    expect(new Set(transactions.map((t) => t.toll_booth)).size).toBe(6);
    expect([...categorySizes].sort()).toEqual([1, 2, 3]);
    expect(transactions.some((t) => t.transaction_id >= 10_000)).toBe(true);
    expect(new Set(transactions.map((t) => t.transaction_date)).size).toBeGreaterThan(20);
  });

  it("formats python-dict lines as Python's repr of the dict, and ndjson lines as JSON", async () => {
    for (const [transaction, line] of HAND_WRITTEN) {
      expect(formatTransaction(transaction, 'python-dict')).toBe(line);
      expect(JSON.parse(formatTransaction(transaction, 'ndjson'))).toEqual(transaction);
    }
    const generated = await generateTransactions(200, { seed: 3, now: NOW });
    for (const t of generated) expect(JSON.parse(formatTransaction(t, 'ndjson'))).toEqual(t);
  });

  it.skipIf(!PYTHON)(
    "python-dict lines parse with Python's ast.literal_eval to the same values, and are byte-identical to Python's repr",
    async () => {
      const generated = await generateTransactions(300, { seed: 5, now: NOW });
      const transactions = [...HAND_WRITTEN.map(([t]) => t), ...generated];
      const lines = transactions.map((t) => formatTransaction(t, 'python-dict'));
      const read = python(lines);
      expect(read).toHaveLength(lines.length);
      read.forEach((r, i) => {
        expect(r.repr).toBe(lines[i]);
        expect(r.value).toEqual(transactions[i]);
      });
      // Whole amounts are Python floats (`5.0`), not ints.
      expect(read[1]?.repr).toContain("'transaction_amount': 5.0}");
    },
  );

  describe('generateFile', () => {
    let t: TestHome;
    beforeEach(async () => {
      t = await createTestHome({ clock: fakeClock(NOW) });
    });
    afterEach(async () => {
      await t.close();
    });

    it('writes landing/tolls/sample_data-YYYY-mm-dd-HH-MM.json (UTC); a second file of the same minute gets -2, a third -3; each write is an object-created event of the tolls trigger', async () => {
      const events: S3EventRecord[] = [];
      const off = t.backend.objectStore.onObjectCreated((record) => {
        events.push(record);
      });
      try {
        const first = await generateFile(t.ctx, { count: 100, format: 'python-dict', seed: 1 });
        const second = await generateFile(t.ctx, { count: 100, format: 'python-dict', seed: 2 });
        const third = await generateFile(t.ctx, { count: 10, format: 'ndjson', seed: 3 });
        expect([first.info.key, second.info.key, third.info.key]).toEqual([
          'tolls/sample_data-2024-03-05-07-08.json',
          'tolls/sample_data-2024-03-05-07-08-2.json',
          'tolls/sample_data-2024-03-05-07-08-3.json',
        ]);
        expect([first.transactions, second.transactions, third.transactions]).toEqual([100, 100, 10]);
        // The first file is untouched by the second (the original overwrote it).
        const text = Buffer.from(
          await t.backend.objectStore.getBytes({ layer: 'landing', key: first.info.key }),
        ).toString('utf8');
        const lines = text.split('\n');
        expect(lines.at(-1)).toBe('');
        expect(lines.slice(0, -1)).toEqual(
          (await generateTransactions(100, { seed: 1, now: NOW })).map((x) =>
            formatTransaction(x, 'python-dict'),
          ),
        );
        const ndjson = Buffer.from(
          await t.backend.objectStore.getBytes({ layer: 'landing', key: third.info.key }),
        ).toString('utf8');
        expect(
          ndjson
            .trimEnd()
            .split('\n')
            .map((l) => JSON.parse(l)),
        ).toEqual(await generateTransactions(10, { seed: 3, now: NOW }));
        const tollEvents = events.filter((e) =>
          (tollsPipeline.triggers ?? []).some((trigger) => matchesTrigger(trigger, e)),
        );
        expect(tollEvents.map(eventObjectKey)).toEqual([first.info.key, second.info.key, third.info.key]);
      } finally {
        off();
      }
    });
  });
});
