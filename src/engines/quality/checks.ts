import type { Logger } from '../../core/logger.ts';
import type { PipelineDefinition } from '../../core/pipeline.ts';
import type { JsonValue } from '../../core/ports/kv-table.ts';
import type { CheckDefinition, CheckResult, CheckSeverity } from '../../core/quality.ts';
import { checkName, isRowLevel, QualityBlockedError } from '../../core/quality.ts';
import type { DuckDb } from '../duckdb/duckdb.ts';
import { quoteIdent, quoteString } from '../duckdb/duckdb.ts';

/** Inputs of {@link evaluateChecks}. */
export interface EvaluateChecksInput {
  /** The DuckDB database holding `relation`; the views of the result are created in it. */
  readonly db: DuckDb;
  /** A table or view in `db` with the rows about to be written (extra columns are fine). */
  readonly relation: string;
  readonly checks: readonly CheckDefinition[];
  readonly pipeline: string;
  readonly table: string;
  readonly runId: string;
  readonly unit?: string;
  /** For `freshness` and the results' `at`. */
  readonly now: Date;
}

/** What {@link evaluateChecks} found. */
export interface EvaluateChecksResult {
  /** One per check, in declaration order. */
  readonly results: CheckResult[];
  /** A view in db with the rows that passed every quarantine-severity check (== relation when none failed). */
  readonly passed: string;
  /**
   * A view in db of the rows failing a quarantine-severity check, with a column `__sluice_reason`
   * (check names joined by '; '), or undefined when none.
   */
  readonly quarantined?: string;
  readonly quarantinedRows: number;
  /**
   * True when a block-severity check failed: the caller must publish nothing of the unit (neither
   * `passed` nor `quarantined`) and throw {@link QualityBlockedError} ({@link assertNotBlocked}).
   */
  readonly blocked: boolean;
}

/** Column of the quarantined view naming the failed checks. */
export const REASON_COLUMN = '__sluice_reason';

/** Distinct names of the temporary views and tables of each evaluation in a process. */
let evaluations = 0;

/**
 * Evaluates data-quality checks on the rows of `relation` (src/core/quality.ts), in DuckDB:
 *
 * | kind              | a row fails when                                                  |
 * | ----------------- | ----------------------------------------------------------------- |
 * | `not_null`        | the column is NULL                                                |
 * | `unique`          | its key (all columns non-NULL) occurs in more than one row: *every* row of that key fails |
 * | `accepted_values` | the column is not NULL and not one of the values (NULL passes: add `not_null`) |
 * | `expression`      | `NOT coalesce(predicate, false)`: a NULL verdict fails            |
 * | `row_count`       | (table-level) the row count is outside `[min, max]`               |
 * | `freshness`       | (table-level) `max(column)` is NULL or older than `now - maxAgeHours` |
 *
 * `unique` fails all the rows of a repeated key, not all but one: which of two rows with the same
 * key is right is not something a check can know (there is no meaningful row order), so with
 * severity `quarantine` they all go to the quarantine and none publishes. Deduplication that keeps
 * one row is the pipeline's own job (before the check, which then guards it).
 *
 * Every row-level check is counted in one scan of `relation`; a table-level check adds at most one
 * aggregate. The views and tables it creates (`__sluice_checks_<n>_*`) live in `db` until it closes.
 *
 * @throws {Error} for a definition error (severity `quarantine` on a table-level check, duplicate
 *   check names, empty `unique` columns or `accepted_values`, a bad bound) and from DuckDB (e.g. an
 *   unknown column in a predicate).
 */
export async function evaluateChecks(input: EvaluateChecksInput): Promise<EvaluateChecksResult> {
  const { db, relation, checks } = input;
  const where = `${input.pipeline}.${input.table}`;
  const problems = checkDefinitionProblems(checks);
  if (problems.length > 0) throw new Error(`invalid checks on ${where}: ${problems.join('; ')}`);
  const prefix = `__sluice_checks_${++evaluations}`;
  const at = input.now.toISOString();

  // Row-level checks: a SQL boolean per check that is true exactly when the row fails (never NULL).
  const failing = new Map<number, string>();
  for (const [i, check] of checks.entries()) {
    switch (check.kind) {
      case 'not_null':
        failing.set(i, `(${quoteIdent(check.column)} IS NULL)`);
        break;
      case 'accepted_values':
        failing.set(
          i,
          `coalesce(${quoteIdent(check.column)} NOT IN (${check.values.map(literal).join(', ')}), false)`,
        );
        break;
      case 'expression':
        failing.set(i, `(NOT coalesce((${check.predicate}), false))`);
        break;
      case 'unique': {
        const duplicates = `${prefix}_dup_${i}`;
        const columns = check.columns.map(quoteIdent);
        await db.run(
          `CREATE OR REPLACE TEMP TABLE ${duplicates} AS SELECT ${columns.join(', ')} FROM ${relation}
             WHERE ${columns.map((c) => `${c} IS NOT NULL`).join(' AND ')}
             GROUP BY ALL HAVING count(*) > 1`,
        );
        failing.set(
          i,
          `coalesce(${keyValue(check.columns)} IN (SELECT ${keyValue(check.columns)} FROM ${duplicates}), false)`,
        );
        break;
      }
      case 'row_count':
      case 'freshness':
        break;
    }
  }

  // One scan: the row count and the failing rows of every row-level check.
  const counted = (
    await db.all(
      `SELECT count(*) AS "rows"${[...failing]
        .map(([i, predicate]) => `, count(*) FILTER (WHERE ${predicate}) AS "f${i}"`)
        .join('')} FROM ${relation}`,
    )
  ).rows[0];
  const rows = Number(counted?.rows ?? 0);

  const outcomes: { check: CheckDefinition; name: string; failingRows: number; detail?: string }[] = [];
  for (const [i, check] of checks.entries()) {
    const name = checkName(check);
    if (failing.has(i)) {
      const failingRows = Number(counted?.[`f${i}`] ?? 0);
      const detail =
        failingRows > 0 ? await rowDetail(db, relation, check, failingRows, rows, prefix, i) : undefined;
      outcomes.push({ check, name, failingRows, ...(detail ? { detail } : {}) });
    } else if (check.kind === 'row_count') {
      const ok =
        (check.min === undefined || rows >= check.min) && (check.max === undefined || rows <= check.max);
      const bounds = `${check.min ?? '-inf'}..${check.max ?? 'inf'}`;
      outcomes.push({ check, name, failingRows: ok ? 0 : 1, detail: `${rows} rows (expected ${bounds})` });
    } else if (check.kind === 'freshness') {
      const limit = new Date(input.now.getTime() - check.maxAgeHours * 3_600_000);
      const found = (
        await db.all(
          `SELECT CAST(max(CAST(${quoteIdent(check.column)} AS TIMESTAMP)) AS VARCHAR) AS newest,
             coalesce(max(CAST(${quoteIdent(check.column)} AS TIMESTAMP)) >= ${timestampLiteral(limit)}, false) AS fresh
           FROM ${relation}`,
        )
      ).rows[0];
      const newest = found?.newest === null || found?.newest === undefined ? 'none' : String(found.newest);
      outcomes.push({
        check,
        name,
        failingRows: found?.fresh === true ? 0 : 1,
        detail: `newest ${check.column} ${newest}, oldest accepted ${timestampText(limit)} (${check.maxAgeHours} h before ${timestampText(input.now)})`,
      });
    }
  }

  const blocked = outcomes.some((o) => o.failingRows > 0 && o.check.severity === 'block');
  const results: CheckResult[] = outcomes.map((o) => ({
    pipeline: input.pipeline,
    table: input.table,
    runId: input.runId,
    ...(input.unit !== undefined ? { unit: input.unit } : {}),
    check: o.name,
    kind: o.check.kind,
    severity: o.check.severity,
    status: o.failingRows > 0 ? 'fail' : 'pass',
    failingRows: o.failingRows,
    rows,
    action: o.failingRows === 0 ? 'none' : actionOf(o.check.severity, blocked),
    ...(o.detail !== undefined ? { detail: o.detail } : {}),
    at,
  }));

  // Quarantine routing: the rows failing any failed quarantine-severity check.
  const routed = [...checks.entries()].filter(
    ([i, check]) => check.severity === 'quarantine' && (outcomes[i]?.failingRows ?? 0) > 0,
  );
  if (routed.length === 0) return { results, passed: relation, quarantinedRows: 0, blocked };
  const anyFailing = routed.map(([i]) => failing.get(i)!).join(' OR ');
  const reason = `concat_ws('; ', ${routed
    .map(([i, check]) => `CASE WHEN ${failing.get(i)!} THEN ${quoteString(checkName(check))} END`)
    .join(', ')})`;
  const passed = `${prefix}_passed`;
  const quarantined = `${prefix}_quarantined`;
  await db.run(
    `CREATE OR REPLACE TEMP VIEW ${passed} AS SELECT * FROM ${relation} WHERE NOT (${anyFailing});
     CREATE OR REPLACE TEMP VIEW ${quarantined} AS
       SELECT *, ${reason} AS ${quoteIdent(REASON_COLUMN)} FROM ${relation} WHERE ${anyFailing}`,
  );
  const quarantinedRows = Number(await db.scalar(`SELECT count(*) FROM ${quarantined}`));
  return { results, passed, quarantined, quarantinedRows, blocked };
}

/**
 * Throws when a block-severity check failed.
 * @throws {QualityBlockedError} naming the failed block checks (with all results attached).
 */
export function assertNotBlocked(result: EvaluateChecksResult): void {
  if (!result.blocked) return;
  const failed = result.results.filter((r) => r.severity === 'block' && r.status === 'fail');
  const first = result.results[0];
  const where = first ? `${first.pipeline}.${first.table}${first.unit ? ` (unit ${first.unit})` : ''}` : '';
  const list = failed
    .map((r) => `${r.check}: ${r.detail ?? `${r.failingRows} of ${r.rows} rows fail`}`)
    .join('; ');
  throw new QualityBlockedError(
    `data-quality check${failed.length === 1 ? '' : 's'} with severity block failed on ${where}: ${list}. Nothing of the unit was published; the data published before stays as it was`,
    result.results,
  );
}

/** Logs each failed check (a `block` failure as an error, the others as warnings). */
export function logCheckFailures(logger: Logger, results: readonly CheckResult[]): void {
  for (const r of results) {
    if (r.status === 'pass') continue;
    const fields = {
      pipeline: r.pipeline,
      table: r.table,
      runId: r.runId,
      unit: r.unit,
      check: r.check,
      severity: r.severity,
      action: r.action,
      failingRows: r.failingRows,
      detail: r.detail,
    };
    if (r.severity === 'block')
      logger.error(fields, 'data-quality check failed: nothing of the unit publishes');
    else logger.warn(fields, `data-quality check failed (${r.action})`);
  }
}

/** The checks a pipeline declares for one table (none when it declares none). */
export function tableChecks(definition: PipelineDefinition, table: string): readonly CheckDefinition[] {
  return (definition.checks ?? []).filter((t) => t.table === table).flatMap((t) => t.checks);
}

/**
 * Problems with a pipeline's check declarations (empty when none): every checked table is one of
 * its datasets or warehouse tables, column names exist in it, check names are unique per table,
 * `quarantine` only on row-level checks, bounds make sense. Predicates of `expression` checks are
 * SQL: they are bound by evaluating the checks on an empty table (pipelines/pipelines.test.ts).
 */
export function validateChecks(definition: PipelineDefinition): string[] {
  const problems: string[] = [];
  const columnsOf = new Map<string, Set<string> | undefined>();
  for (const dataset of definition.datasets) {
    columnsOf.set(dataset.name, new Set([...dataset.columns, ...dataset.partitionKeys].map((c) => c.name)));
  }
  for (const table of definition.warehouseTables ?? []) {
    columnsOf.set(table.name, warehouseColumns(table.ddl));
  }
  const seen = new Set<string>();
  for (const entry of definition.checks ?? []) {
    const where = `${definition.name}.${entry.table}`;
    if (seen.has(entry.table)) problems.push(`${where}: checks declared twice for the table`);
    seen.add(entry.table);
    if (!columnsOf.has(entry.table)) {
      problems.push(`${where}: not a dataset or warehouse table of the pipeline`);
      continue;
    }
    if (entry.checks.length === 0) problems.push(`${where}: an empty list of checks`);
    problems.push(...checkDefinitionProblems(entry.checks).map((p) => `${where}: ${p}`));
    const columns = columnsOf.get(entry.table);
    if (!columns) continue;
    for (const check of entry.checks) {
      for (const column of checkColumns(check)) {
        if (!columns.has(column))
          problems.push(`${where}: ${checkName(check)} names unknown column ${column}`);
      }
    }
  }
  return problems;
}

/** Problems with a table's list of checks, independent of its columns. */
function checkDefinitionProblems(checks: readonly CheckDefinition[]): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  for (const check of checks) {
    const name = checkName(check);
    if (names.has(name)) problems.push(`two checks are named ${name} (give one a name)`);
    names.add(name);
    if (!['warn', 'quarantine', 'block'].includes(check.severity)) {
      problems.push(`${name}: unknown severity ${String(check.severity)}`);
    }
    if (check.severity === 'quarantine' && !isRowLevel(check)) {
      problems.push(
        `${name}: severity quarantine needs a row-level check (not_null, unique, accepted_values, expression); a ${check.kind} check judges the whole unit: use warn or block`,
      );
    }
    switch (check.kind) {
      case 'unique':
        if (check.columns.length === 0) problems.push(`${name}: unique needs at least one column`);
        break;
      case 'accepted_values':
        if (check.values.length === 0) problems.push(`${name}: accepted_values needs at least one value`);
        if (check.values.some((v) => typeof v === 'number' && !Number.isFinite(v))) {
          problems.push(`${name}: accepted values must be finite numbers or strings`);
        }
        break;
      case 'row_count':
        for (const bound of [check.min, check.max]) {
          if (bound !== undefined && (!Number.isInteger(bound) || bound < 0)) {
            problems.push(`${name}: row_count bounds must be non-negative integers`);
          }
        }
        if (check.min !== undefined && check.max !== undefined && check.min > check.max) {
          problems.push(`${name}: row_count min ${check.min} is above max ${check.max}`);
        }
        if (check.min === undefined && check.max === undefined)
          problems.push(`${name}: row_count needs min or max`);
        break;
      case 'freshness':
        if (!(check.maxAgeHours > 0)) problems.push(`${name}: freshness needs maxAgeHours > 0`);
        break;
      case 'expression':
        if (check.predicate.trim() === '') problems.push(`${name}: an empty predicate`);
        break;
      case 'not_null':
        break;
    }
  }
  return problems;
}

/** Columns a check names (an `expression`'s are inside its SQL). */
function checkColumns(check: CheckDefinition): string[] {
  switch (check.kind) {
    case 'not_null':
    case 'accepted_values':
    case 'freshness':
      return [check.column];
    case 'unique':
      return [...check.columns];
    case 'row_count':
    case 'expression':
      return [];
  }
}

/**
 * Column names of a `CREATE TABLE` statement (the column definitions between the outer
 * parentheses, constraints skipped), or undefined when it cannot tell.
 */
export function warehouseColumns(ddl: string): Set<string> | undefined {
  const open = ddl.indexOf('(');
  const close = ddl.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const body = ddl.slice(open + 1, close);
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  const columns = new Set<string>();
  for (const part of parts) {
    const match = /^\s*("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)/.exec(part);
    if (!match?.[1]) continue;
    const word = match[1];
    if (/^(constraint|primary|unique|foreign|check|distkey|sortkey)$/i.test(word)) continue;
    columns.add(word.startsWith('"') ? word.slice(1, -1).replaceAll('""', '"') : word.toLowerCase());
  }
  return columns;
}

/**
 * Whether every check can be evaluated on `relation` (its columns and predicates bind there), tried
 * on no rows. Lets a step evaluate on a cheap relation of a few columns when the checks allow it.
 */
export async function checksBindOn(
  db: DuckDb,
  relation: string,
  checks: readonly CheckDefinition[],
): Promise<boolean> {
  const terms = checks.map((check): string => {
    switch (check.kind) {
      case 'not_null':
      case 'accepted_values':
      case 'freshness':
        return `count(${quoteIdent(check.column)})`;
      case 'unique':
        return check.columns.map((c) => `count(${quoteIdent(c)})`).join(', ');
      case 'expression':
        return `count(*) FILTER (WHERE ${check.predicate})`;
      default:
        return 'count(*)';
    }
  });
  try {
    await db.all(`SELECT ${['count(*)', ...terms].join(', ')} FROM (SELECT * FROM ${relation} LIMIT 0)`);
    return true;
  } catch {
    return false;
  }
}

/** A compact summary of check results for a run record: `[{check, status, action, failing_rows}]`. */
export function checkSummary(results: readonly CheckResult[]): JsonValue[] {
  return results.map((r) => ({
    table: r.table,
    check: r.check,
    severity: r.severity,
    status: r.status,
    action: r.action,
    failing_rows: r.failingRows,
  }));
}

/** The check results carried by a {@link QualityBlockedError} anywhere in an error's cause chain. */
export function blockedResultsOf(error: unknown): readonly CheckResult[] | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (e instanceof QualityBlockedError) return e.results;
  }
  return undefined;
}

/**
 * `3 pass, 1 warn`: how the checks in a run record's `details.checks` ended (`warn`, `quarantine`,
 * `block` count failed checks by what they did). Empty when there are none.
 */
export function formatCheckSummary(checks: JsonValue | undefined): string {
  if (!Array.isArray(checks) || checks.length === 0) return '';
  const counts = { pass: 0, warn: 0, quarantine: 0, block: 0 };
  for (const entry of checks) {
    const e = entry as { status?: unknown; action?: unknown; severity?: unknown };
    if (e.status === 'pass') counts.pass++;
    else if (e.severity === 'block') counts.block++;
    else if (e.action === 'quarantined' || e.severity === 'quarantine') counts.quarantine++;
    else counts.warn++;
  }
  return Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([label, n]) => `${n} ${label}`)
    .join(', ');
}

function actionOf(severity: CheckSeverity, blocked: boolean): CheckResult['action'] {
  // In a blocked unit nothing is written, not even the quarantine: its rows are held back with the rest.
  if (blocked && severity !== 'warn') return 'blocked';
  return severity === 'warn' ? 'warned' : severity === 'quarantine' ? 'quarantined' : 'blocked';
}

/** Up to a few examples of what failed, for people reading the results. */
async function rowDetail(
  db: DuckDb,
  relation: string,
  check: CheckDefinition,
  failingRows: number,
  rows: number,
  prefix: string,
  index: number,
): Promise<string> {
  const share = `${failingRows} of ${rows} rows`;
  switch (check.kind) {
    case 'not_null':
      return `${share} have NULL ${check.column}`;
    case 'expression':
      return `${share} fail the predicate`;
    case 'accepted_values': {
      const column = quoteIdent(check.column);
      const found = await db.all(
        `SELECT left(CAST(${column} AS VARCHAR), 80) AS value, count(*) AS n FROM ${relation}
           WHERE coalesce(${column} NOT IN (${check.values.map(literal).join(', ')}), false)
           GROUP BY ALL ORDER BY n DESC, value LIMIT 5`,
      );
      return `${share} have other values: ${found.rows.map((r) => `${quoteString(String(r.value))} (${Number(r.n)})`).join(', ')}`;
    }
    case 'unique': {
      const duplicates = `${prefix}_dup_${index}`;
      const keys = Number(await db.scalar(`SELECT count(*) FROM ${duplicates}`));
      const sample = await db.all(
        `SELECT left(CAST(${keyValue(check.columns)} AS VARCHAR), 80) AS key FROM ${duplicates} ORDER BY ALL LIMIT 3`,
      );
      return `${keys} ${keys === 1 ? 'key occurs' : 'keys occur'} more than once (${share}), e.g. ${sample.rows.map((r) => String(r.key)).join(', ')}`;
    }
    case 'row_count':
    case 'freshness':
      return share;
  }
}

/** The key of a row: the column, or a struct of the columns. */
function keyValue(columns: readonly string[]): string {
  return columns.length === 1
    ? quoteIdent(columns[0]!)
    : `struct_pack(${columns.map((c) => `${quoteIdent(c)} := ${quoteIdent(c)}`).join(', ')})`;
}

function literal(value: string | number): string {
  return typeof value === 'number' ? String(value) : quoteString(value);
}

/** `2024-01-01 12:00:00.000` (UTC). */
function timestampText(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '');
}

function timestampLiteral(date: Date): string {
  return `TIMESTAMP ${quoteString(timestampText(date))}`;
}
