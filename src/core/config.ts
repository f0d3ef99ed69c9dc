/**
 * Pipeline configuration in a key-value table, readable live by running code.
 *
 * The hashtags original pushes configuration changes into running functions' environment
 * variables (a new function configuration, i.e. a restart). Here configuration lives in the
 * streamed `config` table, and a running pipeline holds a {@link LiveConfig} that follows the
 * table's change stream, so `sluice config set` reaches it within a poll interval, without a restart,
 * locally (SQLite change log) and on AWS (DynamoDB Streams) alike.
 */
import { DEFAULT_TAIL_POLL_MS, tailChanges } from './change-stream.ts';
import type { Clock } from './clock.ts';
import { UsageError } from './errors.ts';
import type {
  ChangeRecord,
  Item,
  JsonValue,
  KeySchema,
  KvStore,
  KvTable,
  Page,
  StreamPosition,
} from './ports/kv-table.ts';
import { allPages } from './ports/kv-table.ts';

/** Name of the key-value table holding configuration (opened with `stream: true`). */
export const CONFIG_TABLE = 'config';

/**
 * Key schema of {@link CONFIG_TABLE}: hash key `pipeline` (S), range key `key` (S). Items are
 * `{ pipeline, key, value, updated_at }`: `value` any JSON, `updated_at` ISO-8601 UTC.
 */
export const CONFIG_KEY_SCHEMA: KeySchema = {
  hashKey: { name: 'pipeline', type: 'S' },
  rangeKey: { name: 'key', type: 'S' },
};

/** One configuration value, as {@link ConfigStore.list} returns it. */
export interface ConfigEntry {
  readonly pipeline: string;
  readonly key: string;
  readonly value: JsonValue;
  /** ISO-8601 UTC time of the last `set` (`''` for an item written without one). */
  readonly updatedAt: string;
}

/** A change of one key seen by {@link ConfigStore.watch}: `undefined` means unset. */
export interface ConfigChange {
  readonly key: string;
  readonly oldValue: JsonValue | undefined;
  readonly newValue: JsonValue | undefined;
}

/** Options of {@link ConfigStore.watch}. */
export interface WatchConfigOptions {
  /** Stops following the change stream; the view then keeps its last values. */
  readonly signal: AbortSignal;
  /** How often the change stream is polled when idle, in ms (default 200). */
  readonly pollMs?: number;
  /**
   * Called, synchronously while the view updates, for each key whose value differs after a batch
   * of changes (deep JSON equality; a `set` to the same value is no change). Changes that arrive
   * in one batch are coalesced per key. Errors it throws go to `onError` and are otherwise ignored.
   */
  readonly onChange?: (change: ConfigChange) => void;
  /**
   * Called with errors of the background follower (stream read failures, e.g. records trimmed
   * after 24 hours, or `onChange` throwing). After a read failure the view reloads every value
   * and follows the stream again from there, after `pollMs`.
   */
  readonly onError?: (error: unknown) => void;
}

/**
 * A live view of one pipeline's configuration: the values loaded by {@link ConfigStore.watch},
 * kept current from the change stream until its signal aborts. Values are shared, not copied: do
 * not mutate them.
 */
export interface LiveConfig {
  /** The current value of `key`, or `undefined` when unset. */
  get(key: string): JsonValue | undefined;
  /** A string value; numbers and booleans as their text (as in an environment variable); else `fallback`. */
  getString(key: string, fallback: string): string;
  /** A number value, or a string holding a finite decimal number (e.g. `"5"`); else `fallback`. */
  getNumber(key: string, fallback: number): number;
  /** Every current key and value, as a new object. */
  snapshot(): Record<string, JsonValue>;
  /** Resolves once the background follower stopped after the signal aborted; never rejects. */
  readonly stopped: Promise<void>;
}

/**
 * Reads and writes pipeline configuration in {@link CONFIG_TABLE}, and watches it live.
 * Pipeline names and keys are non-empty strings; values any JSON (finite numbers only).
 */
export class ConfigStore {
  private constructor(
    private readonly table: KvTable,
    private readonly clock: Clock,
  ) {}

  /**
   * Opens the configuration table, creating it locally, and enabling its change stream, when
   * needed. `clock` stamps `updated_at` and paces {@link ConfigStore.watch}.
   * `options.stream: false` (default true) opens it without asking for the change stream: for a
   * writer on AWS (`sluice --backend aws config set`), where DynamoDB Streams records every write
   * whatever the writer opened, and the deployed table's stream is the stack's business;
   * {@link ConfigStore.watch} then fails. Keep the default locally: there the stream is recorded
   * by the writers that opened the table with it.
   * @throws {Error} when the table exists with another key schema (or, on AWS, is not deployed).
   */
  static async open(
    kv: KvStore,
    clock: Clock,
    options: { readonly stream?: boolean } = {},
  ): Promise<ConfigStore> {
    return new ConfigStore(
      await kv.table(CONFIG_TABLE, CONFIG_KEY_SCHEMA, { stream: options.stream ?? true }),
      clock,
    );
  }

  /**
   * The value of `key` for `pipeline`, or `undefined` when unset.
   * @throws {UsageError} when `pipeline` or `key` is not a non-empty string.
   */
  async get(pipeline: string, key: string): Promise<JsonValue | undefined> {
    checkName('pipeline', pipeline);
    checkName('key', key);
    const item = await this.table.get({ pipeline, key });
    return item === undefined ? undefined : configValue(item);
  }

  /**
   * Sets `key` for `pipeline` to `value` (replacing any previous value), stamping `updated_at`.
   * @throws {UsageError} on an empty name, or a value that is not JSON (`undefined`, `NaN`,
   *   `Infinity`, functions, class instances).
   */
  async set(pipeline: string, key: string, value: JsonValue): Promise<void> {
    checkName('pipeline', pipeline);
    checkName('key', key);
    checkJson(value, `${pipeline}/${key}`);
    await this.table.put({ pipeline, key, value, updated_at: this.clock.now().toISOString() });
  }

  /**
   * Removes `key` of `pipeline`; does nothing when it is not set.
   * @throws {UsageError} when `pipeline` or `key` is not a non-empty string.
   */
  async unset(pipeline: string, key: string): Promise<void> {
    checkName('pipeline', pipeline);
    checkName('key', key);
    await this.table.delete({ pipeline, key });
  }

  /**
   * Every value of `pipeline`, or of all pipelines when omitted, ordered by pipeline then key
   * (UTF-8 byte order, DynamoDB's order of `S` keys).
   */
  async list(pipeline?: string): Promise<ConfigEntry[]> {
    if (pipeline !== undefined) checkName('pipeline', pipeline);
    const read = (cursor: string | undefined): Promise<Page> => {
      const paging = cursor === undefined ? {} : { cursor };
      return pipeline === undefined ? this.table.scan(paging) : this.table.query(pipeline, paging);
    };
    const entries: ConfigEntry[] = [];
    for await (const item of allPages(read)) {
      const value = configValue(item);
      if (typeof item.pipeline !== 'string' || typeof item.key !== 'string' || value === undefined) continue;
      const updatedAt = typeof item.updated_at === 'string' ? item.updated_at : '';
      entries.push({ pipeline: item.pipeline, key: item.key, value, updatedAt });
    }
    if (pipeline === undefined) {
      entries.sort((a, b) => compareCodePoints(a.pipeline, b.pipeline) || compareCodePoints(a.key, b.key));
    }
    return entries;
  }

  /**
   * A live view of `pipeline`'s configuration. Takes the stream's `LATEST` position, then loads
   * every current value, then follows the stream from that position in the background until
   * `options.signal` aborts: a change made between the position and the load arrives again,
   * which is harmless (a value is only replaced by a newer one of the same key). Records of other
   * pipelines are skipped. Delivery is at least once; `onChange` is called only for actual
   * differences, so repeats are not reported twice.
   *
   * @throws {Error} when the initial load fails (the background follower reports to `onError`
   *   and recovers instead).
   */
  async watch(pipeline: string, options: WatchConfigOptions): Promise<LiveConfig> {
    checkName('pipeline', pipeline);
    const { signal, onChange, onError } = options;
    const pollMs = options.pollMs ?? DEFAULT_TAIL_POLL_MS;
    const values = new Map<string, JsonValue>();

    const report = (error: unknown): void => {
      try {
        onError?.(error);
      } catch {
        // An error handler that fails has nowhere left to report to.
      }
    };
    /** Applies new values (`undefined`: unset), calling `onChange` for each actual difference. */
    const update = (changes: Map<string, JsonValue | undefined>, notify: boolean): void => {
      for (const [key, newValue] of changes) {
        const oldValue = values.get(key);
        if (jsonEqual(oldValue, newValue)) continue;
        if (newValue === undefined) values.delete(key);
        else values.set(key, newValue);
        if (!notify || onChange === undefined) continue;
        try {
          onChange({ key, oldValue, newValue });
        } catch (error) {
          report(error);
        }
      }
    };
    /** Takes the stream position, then loads every value; returns the position to follow from. */
    const load = async (notify: boolean): Promise<StreamPosition> => {
      const { next } = await this.table.readChanges({ type: 'LATEST' });
      const loaded = new Map<string, JsonValue | undefined>();
      for (const key of values.keys()) loaded.set(key, undefined);
      const read = (cursor: string | undefined) =>
        this.table.query(pipeline, cursor === undefined ? {} : { cursor });
      for await (const item of allPages(read)) {
        if (typeof item.key === 'string') loaded.set(item.key, configValue(item));
      }
      update(loaded, notify);
      return next;
    };
    /** Applies one batch of stream records, the last change of each key winning. */
    const onRecords = (records: ChangeRecord[]): void => {
      const changes = new Map<string, JsonValue | undefined>();
      for (const record of records) {
        const key = record.keys.key;
        if (record.keys.pipeline !== pipeline || typeof key !== 'string') continue;
        changes.set(
          key,
          record.eventName === 'REMOVE' || !record.newImage ? undefined : configValue(record.newImage),
        );
      }
      update(changes, true);
    };

    let position = await load(false);
    const follow = async (): Promise<void> => {
      while (!signal.aborted) {
        try {
          position = await tailChanges(this.table, {
            from: position,
            clock: this.clock,
            pollMs,
            signal,
            onRecords,
          });
        } catch (error) {
          if (signal.aborted) break;
          report(error);
          try {
            await this.clock.sleep(pollMs, signal);
          } catch (sleepError) {
            if (!signal.aborted) report(sleepError);
            break;
          }
          try {
            position = await load(true); // resynchronize: e.g. records were trimmed while we lagged
          } catch (loadError) {
            if (!signal.aborted) report(loadError);
          }
        }
      }
    };
    const stopped = follow().then(undefined, report);

    return {
      stopped,
      get: (key) => values.get(key),
      getString: (key, fallback) => {
        const value = values.get(key);
        if (typeof value === 'string') return value;
        if (typeof value === 'number' || typeof value === 'boolean') return String(value);
        return fallback;
      },
      getNumber: (key, fallback) => {
        const value = values.get(key);
        if (typeof value === 'number') return value;
        if (typeof value === 'string' && value.trim() !== '') {
          const parsed = Number(value);
          if (Number.isFinite(parsed)) return parsed;
        }
        return fallback;
      },
      snapshot: () => Object.fromEntries(values),
    };
  }
}

/** The `value` attribute of a config item, or `undefined` when it has none. */
function configValue(item: Item): JsonValue | undefined {
  return Object.hasOwn(item, 'value') ? item.value : undefined;
}

function checkName(what: 'pipeline' | 'key', name: unknown): void {
  if (typeof name !== 'string' || name.length === 0) {
    throw new UsageError(
      `config ${what} must be a non-empty string, got ${JSON.stringify(name) ?? String(name)}`,
    );
  }
}

/** @throws {UsageError} unless `value` is JSON that survives a round trip (finite numbers, plain objects). */
function checkJson(value: unknown, where: string, path = ''): void {
  const fail = (what: string) => {
    throw new UsageError(`config value of ${where}${path ? ` at ${path}` : ''} is not JSON: ${what}`);
  };
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) fail(String(value));
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((element, i) => {
      checkJson(element, where, `${path}[${i}]`);
    });
    return;
  }
  if (typeof value === 'object') {
    const prototype = Object.getPrototypeOf(value) as unknown;
    if (prototype !== Object.prototype && prototype !== null) fail('an instance of a class');
    for (const [key, element] of Object.entries(value)) checkJson(element, where, `${path}.${key}`);
    return;
  }
  fail(typeof value);
}

/** Deep equality of JSON values (`undefined` equals only itself); object key order does not matter. */
function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]))
    );
  }
  const keys = Object.keys(a);
  return (
    keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]))
  );
}

/** Compares strings by code point, i.e. by UTF-8 bytes (not by UTF-16 code units). */
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}
