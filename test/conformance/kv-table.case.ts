import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConditionFailedError } from '../../src/core/errors.ts';
import type {
  ChangeRecord,
  Condition,
  Item,
  KvStore,
  KvTable,
  Page,
  RangeCondition,
  StreamPosition,
} from '../../src/core/ports/kv-table.ts';
import { allPages, compareSequence } from '../../src/core/ports/kv-table.ts';

/** Orders strings by UTF-8 bytes, as DynamoDB orders `S` keys. */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** A deterministic permutation of `values` (so insertion order is not key order). */
function shuffled<T>(values: readonly T[]): T[] {
  const out = [...values];
  let state = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const j = state % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Reads every page, checking each page's size against `limit`; returns items and page count. */
async function readPages(
  read: (cursor: string | undefined) => Promise<Page>,
  limit: number,
): Promise<{ items: Item[]; pages: number[] }> {
  const items: Item[] = [];
  const pages: number[] = [];
  let cursor: string | undefined;
  do {
    const page = await read(cursor);
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    pages.push(page.items.length);
    cursor = page.cursor;
    if (pages.length > 1000) throw new Error('pagination does not end');
  } while (cursor !== undefined);
  return { items, pages };
}

/** The position after everything recorded so far (`LATEST`, resolved by one read). */
async function latest(table: KvTable): Promise<StreamPosition> {
  const { records, next } = await table.readChanges({ type: 'LATEST' });
  expect(records).toEqual([]);
  return next;
}

/**
 * Reads `table`'s stream from `from`, page by page, keeping the records `mine` selects, until
 * `done(kept)` holds. Checks each page against `limit` and that `next` continues after the page's
 * last record. Streams may lag behind writes (DynamoDB Streams), so an empty page is retried for
 * up to 30 s before giving up.
 */
async function readUntil(
  table: KvTable,
  from: StreamPosition,
  mine: (record: ChangeRecord) => boolean,
  done: (kept: ChangeRecord[]) => boolean,
  limit?: number,
): Promise<{ records: ChangeRecord[]; next: StreamPosition; pages: number }> {
  const records: ChangeRecord[] = [];
  let position = from;
  let pages = 0;
  let idleSince = Date.now();
  for (;;) {
    const page = await table.readChanges(position, limit === undefined ? {} : { limit });
    if (limit !== undefined) expect(page.records.length).toBeLessThanOrEqual(limit);
    const last = page.records.at(-1);
    if (last) {
      expect(page.next).toEqual({ type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: last.sequenceNumber });
      pages++;
      idleSince = Date.now();
    }
    records.push(...page.records.filter(mine));
    position = page.next;
    if (done(records)) return { records, next: position, pages };
    if (!last) {
      if (Date.now() - idleSince > 30_000) {
        throw new Error(`change stream of ${table.name}: still waiting after 30 s, have ${records.length}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** Records whose hash key value (attribute `id` or `h`) starts with `prefix`. */
function keyedBy(prefix: string): (record: ChangeRecord) => boolean {
  return (record) => String(record.keys.id ?? record.keys.h).startsWith(prefix);
}

/** What a backend under test can be asked for (each option defaults to the full contract). */
export interface KvTableConformanceOptions {
  /**
   * `false` skips the change-stream cases, for a backend run against an emulator without change
   * streams (dynalite has no DynamoDB Streams; the aws adapter's `readChanges` is tested with
   * aws-sdk-client-mock instead). Default true.
   */
  readonly changeStream?: boolean;
  /**
   * `false` for an emulator that orders strings in conditions by UTF-16 code units (dynalite)
   * rather than by UTF-8 bytes (DynamoDB): the condition cases where the two orders disagree are
   * skipped (range keys are still checked for UTF-8 order). Default true.
   */
  readonly utf8ConditionOrder?: boolean;
}

/** Whether a string comparison of `condition` against `stored` comes out differently in UTF-16 order. */
function dependsOnUtf8Order(condition: Condition, stored: Item): boolean {
  if (!['lt', 'le', 'gt', 'ge'].includes(condition.op) || !('attribute' in condition)) return false;
  const held = stored[condition.attribute!];
  const value = (condition as { value: unknown }).value;
  if (typeof held !== 'string' || typeof value !== 'string') return false;
  const utf16 = held < value ? -1 : held > value ? 1 : 0;
  return utf16 !== Math.sign(compareBytes(held, value));
}

/**
 * The {@link KvStore} contract, for any backend. `open` returns a store and a `close`; each test
 * uses random hash-key values, so the suite also runs against shared, pre-deployed tables
 * (`conformance_items`: hash `id` S; `conformance_numbers`: hash `h` S, range `r` N;
 * `conformance_strings`: hash `h` S, range `r` S; with a stream of `NEW_AND_OLD_IMAGES`:
 * `conformance_stream_items`: hash `id` S; `conformance_stream_numbers`: hash `h` S, range `r` N).
 * Stream cases keep only their own records, so other writers of the shared streams do not matter.
 */
export function kvTableConformance(
  backend: string,
  open: () => Promise<{ kv: KvStore; close(): Promise<void> }>,
  options: KvTableConformanceOptions = {},
): void {
  describe(`KvStore conformance: ${backend}`, () => {
    let kv: KvStore;
    let close: () => Promise<void>;
    /** Random prefix for hash-key values of the current test. */
    let run: string;
    let items: KvTable;
    let numbers: KvTable;
    let strings: KvTable;

    beforeEach(async () => {
      ({ kv, close } = await open());
      run = `c-${randomUUID()}`;
      items = await kv.table('conformance_items', { hashKey: { name: 'id', type: 'S' } });
      numbers = await kv.table('conformance_numbers', {
        hashKey: { name: 'h', type: 'S' },
        rangeKey: { name: 'r', type: 'N' },
      });
      strings = await kv.table('conformance_strings', {
        hashKey: { name: 'h', type: 'S' },
        rangeKey: { name: 'r', type: 'S' },
      });
    });
    afterEach(async () => {
      await close();
    });

    it('declares atomic conditional writes', () => {
      expect(kv.capabilities.conditionalWrites).toBe(true);
    });

    it('exposes name and key schema', () => {
      expect(numbers.name).toBe('conformance_numbers');
      expect(numbers.keySchema).toEqual({
        hashKey: { name: 'h', type: 'S' },
        rangeKey: { name: 'r', type: 'N' },
      });
      expect(items.keySchema).toEqual({ hashKey: { name: 'id', type: 'S' } });
    });

    it('gets, puts (replacing the whole item) and deletes', async () => {
      const id = `${run}-a`;
      expect(await items.get({ id })).toBeUndefined();
      const item: Item = {
        id,
        n: 1.5,
        s: 'x',
        b: false,
        z: null,
        list: [1, 'two', { three: 3 }],
        map: { k: [true] },
      };
      await items.put(item);
      expect(await items.get({ id })).toEqual(item);
      await items.put({ id, only: 'this' });
      expect(await items.get({ id })).toEqual({ id, only: 'this' });
      await items.delete({ id });
      expect(await items.get({ id })).toBeUndefined();
      await items.delete({ id }); // idempotent

      await numbers.put({ h: run, r: 2, v: 'two' });
      await numbers.put({ h: run, r: 10, v: 'ten' });
      expect(await numbers.get({ h: run, r: 2 })).toEqual({ h: run, r: 2, v: 'two' });
      expect(await numbers.get({ h: run, r: 3 })).toBeUndefined();
      await numbers.delete({ h: run, r: 2 });
      expect(await numbers.get({ h: run, r: 2 })).toBeUndefined();
      expect(await numbers.get({ h: run, r: 10 })).toEqual({ h: run, r: 10, v: 'ten' });
    });

    it('re-opens a table with the same key schema and sees its items', async () => {
      await items.put({ id: `${run}-reopen`, v: 1 });
      const again = await kv.table('conformance_items', { hashKey: { name: 'id', type: 'S' } });
      expect(await again.get({ id: `${run}-reopen` })).toEqual({ id: `${run}-reopen`, v: 1 });
    });

    it('refuses to open a table with a different key schema', async () => {
      await expect(kv.table('conformance_items', { hashKey: { name: 'other', type: 'S' } })).rejects.toThrow(
        /conformance_items/,
      );
      await expect(kv.table('conformance_items', { hashKey: { name: 'id', type: 'N' } })).rejects.toThrow(
        /conformance_items/,
      );
      await expect(
        kv.table('conformance_items', {
          hashKey: { name: 'id', type: 'S' },
          rangeKey: { name: 'r', type: 'N' },
        }),
      ).rejects.toThrow(/conformance_items/);
      await expect(kv.table('conformance_numbers', { hashKey: { name: 'h', type: 'S' } })).rejects.toThrow(
        /conformance_numbers/,
      );
      await expect(
        kv.table('conformance_numbers', {
          hashKey: { name: 'h', type: 'S' },
          rangeKey: { name: 'r', type: 'S' },
        }),
      ).rejects.toThrow(/conformance_numbers/);
    });

    it('validates key attributes, naming table and attribute', async () => {
      const bad: [() => Promise<unknown>, RegExp][] = [
        [() => items.put({ other: 'x' }), /conformance_items.*"id"|"id".*conformance_items/],
        [() => items.put({ id: 42 }), /conformance_items.*"id"|"id".*conformance_items/],
        [() => items.put({ id: '' }), /conformance_items.*"id"|"id".*conformance_items/],
        [() => items.get({ id: null }), /conformance_items.*"id"|"id".*conformance_items/],
        [() => items.delete({}), /conformance_items.*"id"|"id".*conformance_items/],
        [() => numbers.put({ h: run }), /conformance_numbers.*"r"|"r".*conformance_numbers/],
        [() => numbers.put({ h: run, r: '1' }), /conformance_numbers.*"r"|"r".*conformance_numbers/],
        [() => numbers.put({ h: run, r: Number.NaN }), /conformance_numbers.*"r"|"r".*conformance_numbers/],
        [() => numbers.put({ h: run, r: Number.POSITIVE_INFINITY }), /"r"/],
        [() => numbers.get({ h: run }), /"r"/],
        [() => numbers.query(7), /"h"/],
        [() => numbers.query(run, { range: { op: 'gt', value: 'x' } }), /"r"/],
        [() => numbers.query(run, { range: { op: 'begins_with', prefix: '1' } }), /begins_with/],
      ];
      for (const [call, message] of bad) await expect(call()).rejects.toThrow(message);
      expect(await numbers.query(run)).toEqual({ items: [] });
    });

    describe('conditions', () => {
      const stored: Item = {
        n: 5,
        s: 'b',
        wide: '\uFF5E',
        flag: true,
        nul: null,
        obj: { a: 1, b: [1, 'x'] },
        list: [1, 2],
      };
      const cases: { name: string; condition: Condition; expected: boolean }[] = [
        { name: 'exists (item)', condition: { op: 'exists' }, expected: true },
        { name: 'exists n', condition: { op: 'exists', attribute: 'n' }, expected: true },
        {
          name: 'exists nul (null is present)',
          condition: { op: 'exists', attribute: 'nul' },
          expected: true,
        },
        { name: 'exists missing', condition: { op: 'exists', attribute: 'missing' }, expected: false },
        { name: 'not_exists (item)', condition: { op: 'not_exists' }, expected: false },
        { name: 'not_exists missing', condition: { op: 'not_exists', attribute: 'missing' }, expected: true },
        { name: 'not_exists n', condition: { op: 'not_exists', attribute: 'n' }, expected: false },
        { name: 'eq n 5', condition: { op: 'eq', attribute: 'n', value: 5 }, expected: true },
        { name: 'eq n 6', condition: { op: 'eq', attribute: 'n', value: 6 }, expected: false },
        {
          name: "eq n '5' (type differs)",
          condition: { op: 'eq', attribute: 'n', value: '5' },
          expected: false,
        },
        { name: "eq s 'b'", condition: { op: 'eq', attribute: 's', value: 'b' }, expected: true },
        { name: "eq s 'B'", condition: { op: 'eq', attribute: 's', value: 'B' }, expected: false },
        { name: 'eq flag true', condition: { op: 'eq', attribute: 'flag', value: true }, expected: true },
        { name: 'eq flag false', condition: { op: 'eq', attribute: 'flag', value: false }, expected: false },
        { name: 'eq nul null', condition: { op: 'eq', attribute: 'nul', value: null }, expected: true },
        {
          name: 'eq obj (other key order)',
          condition: { op: 'eq', attribute: 'obj', value: { b: [1, 'x'], a: 1 } },
          expected: true,
        },
        {
          name: 'eq obj (differs)',
          condition: { op: 'eq', attribute: 'obj', value: { a: 1, b: [1] } },
          expected: false,
        },
        { name: 'eq list', condition: { op: 'eq', attribute: 'list', value: [1, 2] }, expected: true },
        {
          name: 'eq list (order)',
          condition: { op: 'eq', attribute: 'list', value: [2, 1] },
          expected: false,
        },
        { name: 'eq missing', condition: { op: 'eq', attribute: 'missing', value: 5 }, expected: false },
        { name: 'ne n 6', condition: { op: 'ne', attribute: 'n', value: 6 }, expected: true },
        { name: 'ne n 5', condition: { op: 'ne', attribute: 'n', value: 5 }, expected: false },
        {
          name: 'ne obj same',
          condition: { op: 'ne', attribute: 'obj', value: { a: 1, b: [1, 'x'] } },
          expected: false,
        },
        {
          name: "ne n '5' (type differs)",
          condition: { op: 'ne', attribute: 'n', value: '5' },
          expected: true,
        },
        {
          name: 'ne missing (DynamoDB <>: true)',
          condition: { op: 'ne', attribute: 'missing', value: 5 },
          expected: true,
        },
        {
          name: 'lt n 10 (numeric, not text)',
          condition: { op: 'lt', attribute: 'n', value: 10 },
          expected: true,
        },
        { name: 'lt n 5', condition: { op: 'lt', attribute: 'n', value: 5 }, expected: false },
        { name: "lt s 'c'", condition: { op: 'lt', attribute: 's', value: 'c' }, expected: true },
        { name: "lt s 'b'", condition: { op: 'lt', attribute: 's', value: 'b' }, expected: false },
        {
          name: "lt s 'B' (uppercase sorts first)",
          condition: { op: 'lt', attribute: 's', value: 'B' },
          expected: false,
        },
        {
          name: 'lt wide U+FF5E < U+1F600 (UTF-8 bytes)',
          condition: { op: 'lt', attribute: 'wide', value: '\u{1F600}' },
          expected: true,
        },
        {
          name: "lt n 'z' (type differs)",
          condition: { op: 'lt', attribute: 'n', value: 'z' },
          expected: false,
        },
        { name: 'lt missing', condition: { op: 'lt', attribute: 'missing', value: 100 }, expected: false },
        {
          name: 'lt flag (not ordered)',
          condition: { op: 'lt', attribute: 'flag', value: true },
          expected: false,
        },
        { name: 'le n 5', condition: { op: 'le', attribute: 'n', value: 5 }, expected: true },
        { name: 'le n 4.5', condition: { op: 'le', attribute: 'n', value: 4.5 }, expected: false },
        { name: "le s 'b'", condition: { op: 'le', attribute: 's', value: 'b' }, expected: true },
        { name: 'le missing', condition: { op: 'le', attribute: 'missing', value: 100 }, expected: false },
        { name: 'gt n 4', condition: { op: 'gt', attribute: 'n', value: 4 }, expected: true },
        { name: 'gt n 5', condition: { op: 'gt', attribute: 'n', value: 5 }, expected: false },
        { name: 'gt n -1e9', condition: { op: 'gt', attribute: 'n', value: -1e9 }, expected: true },
        { name: "gt s 'a'", condition: { op: 'gt', attribute: 's', value: 'a' }, expected: true },
        { name: "gt s 'ba'", condition: { op: 'gt', attribute: 's', value: 'ba' }, expected: false },
        { name: 'gt missing', condition: { op: 'gt', attribute: 'missing', value: -100 }, expected: false },
        { name: 'ge n 5', condition: { op: 'ge', attribute: 'n', value: 5 }, expected: true },
        { name: 'ge n 5.5', condition: { op: 'ge', attribute: 'n', value: 5.5 }, expected: false },
        { name: "ge s 'b'", condition: { op: 'ge', attribute: 's', value: 'b' }, expected: true },
        { name: "ge s 'c'", condition: { op: 'ge', attribute: 's', value: 'c' }, expected: false },
        { name: 'ge missing', condition: { op: 'ge', attribute: 'missing', value: -100 }, expected: false },
        {
          name: 'and (both hold)',
          condition: {
            op: 'and',
            conditions: [
              { op: 'eq', attribute: 'n', value: 5 },
              { op: 'eq', attribute: 's', value: 'b' },
            ],
          },
          expected: true,
        },
        {
          name: 'and (one fails)',
          condition: {
            op: 'and',
            conditions: [
              { op: 'eq', attribute: 'n', value: 5 },
              { op: 'eq', attribute: 's', value: 'x' },
            ],
          },
          expected: false,
        },
        {
          name: 'or (one holds)',
          condition: {
            op: 'or',
            conditions: [
              { op: 'eq', attribute: 'n', value: 6 },
              { op: 'eq', attribute: 's', value: 'b' },
            ],
          },
          expected: true,
        },
        {
          name: 'or (none holds)',
          condition: {
            op: 'or',
            conditions: [
              { op: 'eq', attribute: 'n', value: 6 },
              { op: 'not_exists', attribute: 's' },
            ],
          },
          expected: false,
        },
        {
          name: 'not (eq n 6)',
          condition: { op: 'not', condition: { op: 'eq', attribute: 'n', value: 6 } },
          expected: true,
        },
        {
          name: 'not (eq n 5)',
          condition: { op: 'not', condition: { op: 'eq', attribute: 'n', value: 5 } },
          expected: false,
        },
        {
          name: 'not (lt missing)',
          condition: { op: 'not', condition: { op: 'lt', attribute: 'missing', value: 1 } },
          expected: true,
        },
      ];

      const runnable =
        options.utf8ConditionOrder === false
          ? cases.filter(({ condition }) => !dependsOnUtf8Order(condition, stored))
          : cases;
      for (const { name } of cases.filter((c) => !runnable.includes(c))) {
        it.skip(`put with ${name} (skipped: the emulator orders condition strings by UTF-16)`, () => {});
      }

      it.each(runnable)('put with $name -> $expected', async ({ condition, expected }) => {
        const id = `${run}-cond`;
        const base: Item = { id, ...stored };
        await items.put(base);
        const next: Item = { ...base, n: 99, written: true };
        let held = true;
        try {
          await items.put(next, { condition });
        } catch (error) {
          expect(error).toBeInstanceOf(ConditionFailedError);
          held = false;
        }
        expect(held).toBe(expected);
        expect(await items.get({ id })).toEqual(expected ? next : base);
      });

      const onMissingItem: { name: string; condition: Condition; expected: boolean }[] = [
        { name: 'not_exists', condition: { op: 'not_exists' }, expected: true },
        { name: 'not_exists id', condition: { op: 'not_exists', attribute: 'id' }, expected: true },
        { name: 'exists', condition: { op: 'exists' }, expected: false },
        { name: 'exists n', condition: { op: 'exists', attribute: 'n' }, expected: false },
        { name: 'eq', condition: { op: 'eq', attribute: 'n', value: 5 }, expected: false },
        { name: 'ne', condition: { op: 'ne', attribute: 'n', value: 5 }, expected: true },
        { name: 'lt', condition: { op: 'lt', attribute: 'n', value: 5 }, expected: false },
        { name: 'ge', condition: { op: 'ge', attribute: 'n', value: 5 }, expected: false },
        { name: 'not exists', condition: { op: 'not', condition: { op: 'exists' } }, expected: true },
      ];

      it.each(onMissingItem)(
        'put on a missing item with $name -> $expected',
        async ({ condition, expected }) => {
          const id = `${run}-missing`;
          let held = true;
          try {
            await items.put({ id, v: 1 }, { condition });
          } catch (error) {
            expect(error).toBeInstanceOf(ConditionFailedError);
            held = false;
          }
          expect(held).toBe(expected);
          expect(await items.get({ id })).toEqual(expected ? { id, v: 1 } : undefined);
        },
      );

      it('conditional delete removes only when the condition holds', async () => {
        const id = `${run}-del`;
        await items.put({ id, version: 3 });
        await expect(
          items.delete({ id }, { condition: { op: 'eq', attribute: 'version', value: 2 } }),
        ).rejects.toThrow(ConditionFailedError);
        expect(await items.get({ id })).toEqual({ id, version: 3 });
        await items.delete({ id }, { condition: { op: 'eq', attribute: 'version', value: 3 } });
        expect(await items.get({ id })).toBeUndefined();
        // A condition on a missing item is evaluated against nothing.
        await expect(items.delete({ id }, { condition: { op: 'exists' } })).rejects.toThrow(
          ConditionFailedError,
        );
        await items.delete({ id }, { condition: { op: 'not_exists' } });
      });

      it('ConditionFailedError names the table and the key', async () => {
        const id = `${run}-named`;
        await items.put({ id });
        const error = await items.put({ id }, { condition: { op: 'not_exists' } }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConditionFailedError);
        expect((error as Error).message).toContain('conformance_items');
        expect((error as Error).message).toContain(id);
        expect((error as ConditionFailedError).retryable).toBe(true);
      });

      it('racing conditional creates: exactly one wins', async () => {
        const id = `${run}-race`;
        const results = await Promise.allSettled(
          Array.from({ length: 10 }, (_, i) =>
            items.put({ id, owner: i }, { condition: { op: 'not_exists' } }).then(() => i),
          ),
        );
        const winners = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
        expect(winners).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConditionFailedError);
        }
        expect(await items.get({ id })).toEqual({ id, owner: winners[0]! });
      });
    });

    // Skipped, with the reason in KvTableConformanceOptions, for emulators without change streams.
    describe('change streams', { skip: options.changeStream === false }, () => {
      let streamItems: KvTable;
      let streamNumbers: KvTable;

      beforeEach(async () => {
        streamItems = await kv.table(
          'conformance_stream_items',
          { hashKey: { name: 'id', type: 'S' } },
          { stream: true },
        );
        streamNumbers = await kv.table(
          'conformance_stream_numbers',
          { hashKey: { name: 'h', type: 'S' }, rangeKey: { name: 'r', type: 'N' } },
          { stream: true },
        );
      });

      it('records INSERT, MODIFY and REMOVE with keys and images, in order', async () => {
        const start = await latest(streamNumbers);
        const h = `${run}-events`;
        const before = Date.now();
        const b: Item = { h, r: 1, v: 'b', list: [1, { x: null }], map: { k: true, j: 0 } };
        await streamNumbers.put({ h, r: 1, v: 'a' });
        await streamNumbers.put(b);
        await streamNumbers.delete({ h, r: 1 });
        await streamNumbers.put({ h, r: 2.5, v: 'c' });
        const { records } = await readUntil(streamNumbers, start, keyedBy(h), (kept) => kept.length >= 4);
        expect(
          records.map((record) => [record.eventName, record.keys, record.oldImage, record.newImage]),
        ).toEqual([
          ['INSERT', { h, r: 1 }, undefined, { h, r: 1, v: 'a' }],
          ['MODIFY', { h, r: 1 }, { h, r: 1, v: 'a' }, b],
          ['REMOVE', { h, r: 1 }, b, undefined],
          ['INSERT', { h, r: 2.5 }, undefined, { h, r: 2.5, v: 'c' }],
        ]);
        for (let i = 1; i < records.length; i++) {
          expect(compareSequence(records[i - 1]!.sequenceNumber, records[i]!.sequenceNumber)).toBeLessThan(0);
        }
        for (const record of records) {
          expect(record.sequenceNumber).toMatch(/^[0-9]+$/);
          expect(record.approximateCreationDateTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
          const at = Date.parse(record.approximateCreationDateTime);
          expect(at).toBeGreaterThanOrEqual(before - 60_000);
          expect(at).toBeLessThanOrEqual(Date.now() + 60_000);
        }
      });

      it('a put that changes no data records nothing (DynamoDB Streams)', async () => {
        const id = `${run}-same`;
        await streamItems.put({ id, v: 1, map: { a: 1, b: [true] } });
        const start = await latest(streamItems);
        await streamItems.put({ id, v: 1, map: { a: 1, b: [true] } });
        await streamItems.put({ map: { b: [true], a: 1 }, v: 1, id }); // same data, other attribute order
        await streamItems.put({ id, v: 1, map: { a: 1, b: [true] } }, { condition: { op: 'exists' } });
        await streamItems.put({ id, v: 2, map: { a: 1, b: [true] } });
        const { records } = await readUntil(streamItems, start, keyedBy(id), (kept) => kept.length >= 1);
        expect(records.map((record) => [record.eventName, record.oldImage?.v, record.newImage?.v])).toEqual([
          ['MODIFY', 1, 2],
        ]);
      });

      it('keys of a table without range key hold the hash key only', async () => {
        const start = await latest(streamItems);
        const id = `${run}-hash-only`;
        await streamItems.put({ id, payload: { nested: [1, 2] } });
        const { records } = await readUntil(streamItems, start, keyedBy(id), (kept) => kept.length >= 1);
        expect(records[0]).toMatchObject({
          eventName: 'INSERT',
          keys: { id },
          newImage: { id, payload: { nested: [1, 2] } },
        });
        expect(records[0]!.oldImage).toBeUndefined();
      });

      it('LATEST starts after the read; TRIM_HORIZON includes earlier changes', async () => {
        const id = `${run}-horizon`;
        await streamItems.put({ id, v: 1 });
        const start = await latest(streamItems);
        await streamItems.put({ id, v: 2 });
        const fromLatest = await readUntil(streamItems, start, keyedBy(id), (kept) => kept.length >= 1);
        expect(fromLatest.records.map((record) => record.newImage)).toEqual([{ id, v: 2 }]);
        const fromHorizon = await readUntil(
          streamItems,
          { type: 'TRIM_HORIZON' },
          keyedBy(id),
          (kept) => kept.length >= 2,
        );
        expect(fromHorizon.records.map((record) => record.newImage)).toEqual([
          { id, v: 1 },
          { id, v: 2 },
        ]);
      });

      it('continues with AFTER_SEQUENCE_NUMBER: 25 changes read 10 at a time, each once, in order', async () => {
        const start = await latest(streamNumbers);
        const h = `${run}-paged`;
        for (let r = 0; r < 25; r++) await streamNumbers.put({ h, r });
        await streamNumbers.put({ h: `${h}-end`, r: 0 }); // marks the end
        const isEnd = (record: ChangeRecord) => record.keys.h === `${h}-end`;
        const { records, next, pages } = await readUntil(
          streamNumbers,
          start,
          keyedBy(h),
          (kept) => kept.some(isEnd),
          10,
        );
        expect(records.filter((record) => !isEnd(record)).map((record) => record.keys)).toEqual(
          Array.from({ length: 25 }, (_, r) => ({ h, r })),
        );
        expect(records.filter(isEnd)).toHaveLength(1);
        expect(pages).toBeGreaterThanOrEqual(3);
        // Reading is repeatable: the same position gives the same records.
        const first = await streamNumbers.readChanges(start, { limit: 10 });
        expect((await streamNumbers.readChanges(start, { limit: 10 })).records).toEqual(first.records);
        // Nothing of ours after the end.
        const rest = await streamNumbers.readChanges(next);
        expect(rest.records.filter(keyedBy(h))).toEqual([]);
      });

      it('a delete of a missing item records nothing', async () => {
        const start = await latest(streamItems);
        const id = `${run}-ghost`;
        await streamItems.delete({ id });
        await streamItems.delete({ id }, { condition: { op: 'not_exists' } });
        await streamItems.put({ id: `${id}-end` });
        const { records } = await readUntil(streamItems, start, keyedBy(id), (kept) =>
          kept.some((record) => record.keys.id === `${id}-end`),
        );
        expect(records.map((record) => [record.eventName, record.keys])).toEqual([
          ['INSERT', { id: `${id}-end` }],
        ]);
      });

      it('failed conditional writes record nothing; successful ones record as usual', async () => {
        const id = `${run}-guarded`;
        await streamItems.put({ id, version: 1 });
        const start = await latest(streamItems);
        await expect(
          streamItems.put({ id, version: 9 }, { condition: { op: 'not_exists' } }),
        ).rejects.toThrow(ConditionFailedError);
        await expect(
          streamItems.delete({ id }, { condition: { op: 'eq', attribute: 'version', value: 9 } }),
        ).rejects.toThrow(ConditionFailedError);
        await expect(streamItems.put({ id: `${id}-new` }, { condition: { op: 'exists' } })).rejects.toThrow(
          ConditionFailedError,
        );
        await streamItems.put(
          { id, version: 2 },
          { condition: { op: 'eq', attribute: 'version', value: 1 } },
        );
        await streamItems.delete({ id }, { condition: { op: 'eq', attribute: 'version', value: 2 } });
        const { records } = await readUntil(streamItems, start, keyedBy(id), (kept) =>
          kept.some((record) => record.eventName === 'REMOVE'),
        );
        expect(records.map((record) => [record.eventName, record.oldImage, record.newImage])).toEqual([
          ['MODIFY', { id, version: 1 }, { id, version: 2 }],
          ['REMOVE', { id, version: 2 }, undefined],
        ]);
      });

      it('a streamed table opened again without the stream option keeps recording', async () => {
        const again = await kv.table('conformance_stream_items', { hashKey: { name: 'id', type: 'S' } });
        const start = await latest(again);
        const id = `${run}-reopened`;
        await again.put({ id });
        const { records } = await readUntil(again, start, keyedBy(id), (kept) => kept.length >= 1);
        expect(records.map((record) => record.eventName)).toEqual(['INSERT']);
      });

      it('readChanges on a table without a stream throws', async () => {
        await expect(items.readChanges({ type: 'TRIM_HORIZON' })).rejects.toThrow(/stream/);
        await expect(items.readChanges({ type: 'LATEST' })).rejects.toThrow(/stream/);
      });
    });

    describe('range keys', () => {
      const numberKeys = [10, 2, 1.5, -3, 100, 0, 2.25, -0.5];
      const stringKeys = ['b', 'B', 'a', 'ab', 'a-', 'é', 'z', '\uFF5E', '\u{1F600}', 'abc', 'a b', 'Z'];

      beforeEach(async () => {
        for (const r of numberKeys) await numbers.put({ h: run, r, v: `n${r}` });
        for (const r of stringKeys) await strings.put({ h: run, r, v: `s${r}` });
        // Neighbouring hash keys must not leak into queries.
        await numbers.put({ h: `${run}-other`, r: 1 });
        await strings.put({ h: `${run}-other`, r: 'a' });
      });

      const rangeOf = (page: Page) => page.items.map((item) => item.r);

      it('orders N range keys numerically and S range keys by UTF-8 bytes', async () => {
        expect(rangeOf(await numbers.query(run))).toEqual([...numberKeys].sort((a, b) => a - b));
        expect(rangeOf(await strings.query(run))).toEqual([...stringKeys].sort(compareBytes));
        expect((await numbers.query(run)).items[0]).toEqual({ h: run, r: -3, v: 'n-3' });
      });

      it('queries descending', async () => {
        expect(rangeOf(await numbers.query(run, { descending: true }))).toEqual(
          [...numberKeys].sort((a, b) => b - a),
        );
        expect(rangeOf(await strings.query(run, { descending: true }))).toEqual(
          [...stringKeys].sort(compareBytes).reverse(),
        );
      });

      const numberCases: { name: string; range: RangeCondition; keep: (r: number) => boolean }[] = [
        { name: 'eq 2', range: { op: 'eq', value: 2 }, keep: (r) => r === 2 },
        { name: 'eq 3 (none)', range: { op: 'eq', value: 3 }, keep: () => false },
        { name: 'lt 2', range: { op: 'lt', value: 2 }, keep: (r) => r < 2 },
        { name: 'le 2', range: { op: 'le', value: 2 }, keep: (r) => r <= 2 },
        { name: 'gt 2', range: { op: 'gt', value: 2 }, keep: (r) => r > 2 },
        { name: 'ge 2', range: { op: 'ge', value: 2 }, keep: (r) => r >= 2 },
        {
          name: 'between 0 and 10',
          range: { op: 'between', low: 0, high: 10 },
          keep: (r) => r >= 0 && r <= 10,
        },
        {
          name: 'between -1 and 1.5',
          range: { op: 'between', low: -1, high: 1.5 },
          keep: (r) => r >= -1 && r <= 1.5,
        },
      ];
      it.each(numberCases)('range condition on N: $name', async ({ range, keep }) => {
        const expected = numberKeys.filter(keep).sort((a, b) => a - b);
        expect(rangeOf(await numbers.query(run, { range }))).toEqual(expected);
        expect(rangeOf(await numbers.query(run, { range, descending: true }))).toEqual(
          [...expected].reverse(),
        );
      });

      const stringCases: { name: string; range: RangeCondition; keep: (r: string) => boolean }[] = [
        { name: "eq 'ab'", range: { op: 'eq', value: 'ab' }, keep: (r) => r === 'ab' },
        { name: "lt 'a-'", range: { op: 'lt', value: 'a-' }, keep: (r) => compareBytes(r, 'a-') < 0 },
        { name: "le 'b'", range: { op: 'le', value: 'b' }, keep: (r) => compareBytes(r, 'b') <= 0 },
        { name: "gt 'z'", range: { op: 'gt', value: 'z' }, keep: (r) => compareBytes(r, 'z') > 0 },
        { name: "ge 'é'", range: { op: 'ge', value: 'é' }, keep: (r) => compareBytes(r, 'é') >= 0 },
        {
          name: "between 'a' and 'b'",
          range: { op: 'between', low: 'a', high: 'b' },
          keep: (r) => compareBytes(r, 'a') >= 0 && compareBytes(r, 'b') <= 0,
        },
        {
          name: "begins_with 'a'",
          range: { op: 'begins_with', prefix: 'a' },
          keep: (r) => r.startsWith('a'),
        },
        {
          name: "begins_with 'ab'",
          range: { op: 'begins_with', prefix: 'ab' },
          keep: (r) => r.startsWith('ab'),
        },
        {
          name: "begins_with 'é'",
          range: { op: 'begins_with', prefix: 'é' },
          keep: (r) => r.startsWith('é'),
        },
        { name: "begins_with 'q' (none)", range: { op: 'begins_with', prefix: 'q' }, keep: () => false },
      ];
      it.each(stringCases)('range condition on S: $name', async ({ range, keep }) => {
        const expected = stringKeys.filter(keep).sort(compareBytes);
        expect(rangeOf(await strings.query(run, { range }))).toEqual(expected);
        expect(rangeOf(await strings.query(run, { range, descending: true }))).toEqual(
          [...expected].reverse(),
        );
      });

      it('queries a table without range key by hash key', async () => {
        await items.put({ id: `${run}-q`, v: 1 });
        expect(await items.query(`${run}-q`)).toEqual({ items: [{ id: `${run}-q`, v: 1 }] });
        expect(await items.query(`${run}-none`)).toEqual({ items: [] });
      });
    });

    describe('pagination', () => {
      const total = 2500;
      const hash = () => `${run}-page`;

      beforeEach(async () => {
        for (const r of shuffled(Array.from({ length: total }, (_, i) => i))) {
          await numbers.put({ h: hash(), r, payload: `item ${r}` });
        }
        await numbers.put({ h: `${run}-neighbour`, r: 5 });
      });

      it('pages a query with limit 1000: every item exactly once, in order', async () => {
        const { items: all, pages } = await readPages(
          (cursor) => numbers.query(hash(), { limit: 1000, ...(cursor === undefined ? {} : { cursor }) }),
          1000,
        );
        expect(all.map((item) => item.r)).toEqual(Array.from({ length: total }, (_, i) => i));
        expect(all[1234]).toEqual({ h: hash(), r: 1234, payload: 'item 1234' });
        expect(pages.slice(0, 2)).toEqual([1000, 1000]);
        expect(pages.reduce((a, b) => a + b, 0)).toBe(total);
      });

      it('pages a descending query with a range condition', async () => {
        const { items: all } = await readPages(
          (cursor) =>
            numbers.query(hash(), {
              limit: 700,
              descending: true,
              range: { op: 'ge', value: 1000 },
              ...(cursor === undefined ? {} : { cursor }),
            }),
          700,
        );
        expect(all.map((item) => item.r)).toEqual(
          Array.from({ length: total - 1000 }, (_, i) => total - 1 - i),
        );
      });

      it('reads all pages with allPages', async () => {
        let count = 0;
        for await (const item of allPages((cursor) =>
          numbers.query(hash(), {
            limit: 333,
            range: { op: 'lt', value: 1000 },
            ...(cursor ? { cursor } : {}),
          }),
        )) {
          expect(item.r).toBe(count);
          count++;
        }
        expect(count).toBe(1000);
      });

      it('pages a scan: every item exactly once', async () => {
        const { items: all } = await readPages(
          (cursor) => numbers.scan({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) }),
          1000,
        );
        const mine = all.filter((item) => item.h === hash());
        expect(mine).toHaveLength(total);
        expect(new Set(mine.map((item) => item.r)).size).toBe(total);
        expect(all.filter((item) => item.h === `${run}-neighbour`)).toEqual([
          { h: `${run}-neighbour`, r: 5 },
        ]);
      });

      it('pages a scan with a small limit across hash keys', async () => {
        const keys = Array.from({ length: 23 }, (_, i) => `${run}-scan-${i % 5}`);
        for (const [i, id] of keys.entries()) await strings.put({ h: id, r: `r${i}`, i });
        const { items: all } = await readPages(
          (cursor) => strings.scan({ limit: 7, ...(cursor === undefined ? {} : { cursor }) }),
          7,
        );
        const mine = all.filter((item) => String(item.h).startsWith(`${run}-scan-`));
        expect(mine.map((item) => item.i).sort((a, b) => Number(a) - Number(b))).toEqual(
          keys.map((_, i) => i),
        );
      });
    });
  });
}
