/**
 * Keyed state, after Flink's `ValueState`, `MapState` and `ListState`
 * (https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/datastream/fault-tolerance/state/):
 * state scoped to the key of the element being processed. Values must be JSON values: they are
 * snapshotted into checkpoints with `JSON.stringify`.
 */

/** One value per key. */
export interface ValueState<T> {
  value(): T | undefined;
  update(value: T): void;
  clear(): void;
}

/** A map per key (string user keys). */
export interface MapState<V> {
  get(userKey: string): V | undefined;
  put(userKey: string, value: V): void;
  remove(userKey: string): void;
  contains(userKey: string): boolean;
  entries(): [string, V][];
  clear(): void;
}

/** A list per key. */
export interface ListState<T> {
  get(): readonly T[];
  add(value: T): void;
  clear(): void;
}

/** Hands out state handles bound to the current key (Flink `KeyedStateStore`). */
export interface KeyedStateStore {
  valueState<T>(name: string): ValueState<T>;
  mapState<V>(name: string): MapState<V>;
  listState<T>(name: string): ListState<T>;
}

type Key = string | number;

/**
 * The heap state backend of one keyed operator: per state name a `Map` from key to value
 * (`MapState` values are plain objects, `ListState` values arrays). Handles are cached per name.
 */
export class HeapKeyedStateBackend implements KeyedStateStore {
  /** The key of the element being processed; set by the operator. */
  currentKey: Key = '';
  private readonly tables = new Map<string, Map<Key, unknown>>();
  private readonly handles = new Map<string, unknown>();

  private table(name: string): Map<Key, unknown> {
    let table = this.tables.get(name);
    if (table === undefined) {
      table = new Map();
      this.tables.set(name, table);
    }
    return table;
  }

  private handle<H>(kind: string, name: string, make: (table: Map<Key, unknown>) => H): H {
    const id = `${kind}:${name}`;
    let handle = this.handles.get(id) as H | undefined;
    if (handle === undefined) {
      handle = make(this.table(name));
      this.handles.set(id, handle);
    }
    return handle;
  }

  valueState<T>(name: string): ValueState<T> {
    return this.handle('value', name, (table) => ({
      value: () => table.get(this.currentKey) as T | undefined,
      update: (value: T) => {
        table.set(this.currentKey, value);
      },
      clear: () => {
        table.delete(this.currentKey);
      },
    }));
  }

  mapState<V>(name: string): MapState<V> {
    const own = (table: Map<Key, unknown>, create: boolean): Record<string, V> | undefined => {
      let map = table.get(this.currentKey) as Record<string, V> | undefined;
      if (map === undefined && create) {
        map = {};
        table.set(this.currentKey, map);
      }
      return map;
    };
    return this.handle('map', name, (table) => ({
      get: (userKey: string) => {
        const map = own(table, false);
        return map !== undefined && Object.hasOwn(map, userKey) ? map[userKey] : undefined;
      },
      put: (userKey: string, value: V) => {
        own(table, true)![userKey] = value;
      },
      remove: (userKey: string) => {
        const map = own(table, false);
        if (map !== undefined) delete map[userKey];
      },
      contains: (userKey: string) => {
        const map = own(table, false);
        return map !== undefined && Object.hasOwn(map, userKey);
      },
      entries: () => Object.entries(own(table, false) ?? {}),
      clear: () => {
        table.delete(this.currentKey);
      },
    }));
  }

  listState<T>(name: string): ListState<T> {
    return this.handle('list', name, (table) => ({
      get: () => (table.get(this.currentKey) as T[] | undefined) ?? [],
      add: (value: T) => {
        const list = table.get(this.currentKey) as T[] | undefined;
        if (list === undefined) table.set(this.currentKey, [value]);
        else list.push(value);
      },
      clear: () => {
        table.delete(this.currentKey);
      },
    }));
  }

  snapshot(): unknown {
    return [...this.tables].map(([name, table]) => [name, [...table]]);
  }

  restore(state: unknown): void {
    this.tables.clear();
    this.handles.clear();
    for (const [name, entries] of state as [string, [Key, unknown][]][])
      this.tables.set(name, new Map(entries));
  }
}
