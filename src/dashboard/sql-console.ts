import { UsageError } from '../core/errors.ts';
import type { Backend } from '../core/ports/backend.ts';
import type { QueryEngine, QueryResult } from '../core/ports/query-engine.ts';
import type { Warehouse } from '../core/ports/warehouse.ts';
import type { NamedQuery } from '../core/query.ts';
import { checkReadOnlySql } from './sql-guard.ts';

/** Limits of the console: rows returned (more set `truncated`) and time per statement. */
export interface ConsoleLimits {
  /** Default 1,000. */
  readonly maxRows: number;
  /** Default 10,000 ms. */
  readonly timeoutMs: number;
}

/**
 * Read-only SQL for the dashboard: every statement passes {@link checkReadOnlySql}, then runs on
 * a sandboxed query engine (no file access outside the lake, configuration locked), or with
 * `warehouse` in a `READ ONLY` transaction with `statement_timeout`, its rows capped by an outer
 * `LIMIT`. One statement at a time (the engine has one connection); the engine re-reads the
 * catalog at most every `refreshMs` so new partitions appear while `sluice up` runs.
 */
export class SqlConsole {
  private engine: Promise<QueryEngine> | undefined;
  private warehouse: Promise<Warehouse> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private refreshedAt = 0;

  constructor(
    private readonly backend: Backend,
    private readonly namedQueries: readonly NamedQuery[],
    readonly limits: ConsoleLimits = { maxRows: 1000, timeoutMs: 10_000 },
    private readonly refreshMs = 2000,
  ) {}

  /**
   * Runs one statement from a person.
   * @throws {UsageError} when refused by the check; {@link QueryError} (or `WarehouseError`) from the engine.
   */
  async run(sql: string, options: { warehouse?: boolean; maxRows?: number } = {}): Promise<QueryResult> {
    checkReadOnlySql(sql);
    const maxRows = Math.min(options.maxRows ?? this.limits.maxRows, this.limits.maxRows);
    return options.warehouse
      ? this.serial(() => this.runWarehouse(sql, maxRows))
      : this.serial(() => this.runLake(sql, maxRows));
  }

  /** Runs SQL written by the dashboard itself (quality tables, pipeline charts): no check, same limits. */
  async internal(sql: string, maxRows = this.limits.maxRows): Promise<QueryResult> {
    return this.serial(() => this.runLake(sql, maxRows));
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runLake(sql: string, maxRows: number): Promise<QueryResult> {
    this.engine ??= this.backend.openQueryEngine({ namedQueries: this.namedQueries, sandboxed: true });
    const engine = await this.engine;
    const refreshable = engine as QueryEngine & { refresh?: () => Promise<void> };
    if (refreshable.refresh && Date.now() - this.refreshedAt > this.refreshMs) {
      await refreshable.refresh();
      this.refreshedAt = Date.now();
    }
    return engine.query(sql, { maxRows, timeoutMs: this.limits.timeoutMs });
  }

  private async runWarehouse(sql: string, maxRows: number): Promise<QueryResult> {
    const first = /^\s*(?:--[^\n]*\n\s*|\/\*[\s\S]*?\*\/\s*)*(\w+)/.exec(sql)?.[1]?.toLowerCase();
    if (first !== 'select' && first !== 'with') {
      throw new UsageError('the warehouse console runs SELECT and WITH queries only');
    }
    this.warehouse ??= this.backend.openWarehouse();
    const warehouse = await this.warehouse;
    const body = sql.trim().replace(/;\s*$/, '');
    return warehouse.transaction(async (tx) => {
      await tx.execute('SET TRANSACTION READ ONLY');
      await tx.execute(`SET LOCAL statement_timeout = ${Math.round(this.limits.timeoutMs)}`);
      const result = await tx.query(`SELECT * FROM (\n${body}\n) AS console_query LIMIT ${maxRows + 1}`);
      return {
        columns: result.columns,
        rows: result.rows.slice(0, maxRows),
        truncated: result.rows.length > maxRows,
      };
    });
  }

  /** Closes the engine and the warehouse connection. */
  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    if (this.engine) await (await this.engine.catch(() => undefined))?.close();
    if (this.warehouse) await (await this.warehouse.catch(() => undefined))?.close();
  }
}
