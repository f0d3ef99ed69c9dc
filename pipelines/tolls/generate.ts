import type { PipelineContext } from '../../src/core/context.ts';
import type { ObjectInfo } from '../../src/core/ports/object-store.ts';
import { generatedKey, TOLL_BOOTHS } from './definition.ts';

/** One fake toll transaction, with the original generator's fields (REFERENCE.md section 2). */
export interface TollTransaction {
  /** 0..99999 (Faker `random_number(5)`: may have fewer than 5 digits). */
  readonly transaction_id: number;
  /** `YYYY/MM/DD`, within the 30 days before the generation time (UTC). */
  readonly transaction_date: string;
  /** One of {@link TOLL_BOOTHS}. */
  readonly toll_booth: string;
  readonly vehicle_make: string;
  /** One to three vehicle types joined by `, ` (e.g. `Coupe, Sedan, Convertible`). */
  readonly vehicle_category: string;
  /** 0.01..10.00, two decimals. */
  readonly transaction_amount: number;
}

/** Output formats of the generator. */
export type TollsFileFormat = 'python-dict' | 'ndjson';

/**
 * Generates `count` transactions with Faker (`@faker-js/faker`, as the original used Python's
 * Faker): the same `seed` and `now` give the same transactions.
 */
export async function generateTransactions(
  count: number,
  options: { seed?: number; now: Date },
): Promise<TollTransaction[]> {
  const { Faker, en } = await import('@faker-js/faker');
  const faker = new Faker({ locale: [en] });
  if (options.seed !== undefined) faker.seed(options.seed);
  const from = new Date(options.now.getTime() - 30 * 86_400_000);
  const transactions: TollTransaction[] = [];
  for (let i = 0; i < count; i++) {
    const date = faker.date.between({ from, to: options.now }).toISOString();
    const types = faker.helpers.arrayElements(
      [
        'SUV',
        'Sedan',
        'Coupe',
        'Convertible',
        'Hatchback',
        'Wagon',
        'Minivan',
        'Pickup',
        'Van/Minivan',
        'Crossover',
      ],
      { min: 1, max: 3 },
    );
    transactions.push({
      transaction_id: faker.number.int({ min: 0, max: 99_999 }),
      transaction_date: `${date.slice(0, 4)}/${date.slice(5, 7)}/${date.slice(8, 10)}`,
      toll_booth: faker.helpers.arrayElement(TOLL_BOOTHS),
      vehicle_make: faker.vehicle.manufacturer(),
      vehicle_category: types.join(', '),
      transaction_amount: faker.number.float({ min: 0.01, max: 10, fractionDigits: 2 }),
    });
  }
  return transactions;
}

/**
 * One line of a transaction: `ndjson` is `JSON.stringify`; `python-dict` is what the original
 * writes (`f"{fake_data}\n"`, Python's `repr` of a dict): single-quoted strings (double quotes
 * when the string holds a `'` and no `"`), floats always with a decimal point (`5.0`).
 * Source: https://docs.python.org/3/library/functions.html#repr.
 */
export function formatTransaction(transaction: TollTransaction, format: TollsFileFormat): string {
  if (format === 'ndjson') return JSON.stringify(transaction);
  const fields = Object.entries(transaction).map(([key, value]) => `${pyRepr(key)}: ${pyValue(key, value)}`);
  return `{${fields.join(', ')}}`;
}

function pyValue(key: string, value: string | number): string {
  if (typeof value === 'string') return pyRepr(value);
  if (key === 'transaction_amount') return Number.isInteger(value) ? `${value}.0` : String(value);
  return String(value);
}

/** Python's `repr` of a str (the printable-ASCII/BMP subset the generator produces). */
export function pyRepr(value: string): string {
  const quote = value.includes("'") && !value.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of value) {
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch < ' ' || ch === '\x7f') out += `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}${quote}`;
}

/**
 * `sluice generate tolls`: writes one file of `count` transactions into
 * `landing/tolls/sample_data-YYYY-mm-dd-HH-MM.json` (UTC). When a file of that minute exists, a
 * suffix `-2`, `-3`, ... keeps both (the original overwrote it). The write emits the
 * object-created notification that starts the tolls workflow under `sluice up`.
 */
export async function generateFile(
  ctx: PipelineContext,
  options: { count: number; format: TollsFileFormat; seed?: number },
): Promise<{ info: ObjectInfo; transactions: number }> {
  const now = ctx.clock.now();
  const transactions = await generateTransactions(options.count, {
    now,
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
  });
  const body = `${transactions.map((t) => formatTransaction(t, options.format)).join('\n')}\n`;
  const { objectStore } = ctx.backend;
  let key = generatedKey(now);
  for (let n = 2; await objectStore.head({ layer: 'landing', key }); n++) key = generatedKey(now, `-${n}`);
  const info = await objectStore.put({ layer: 'landing', key }, body);
  return { info, transactions: transactions.length };
}
