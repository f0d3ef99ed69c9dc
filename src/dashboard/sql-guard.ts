import { UsageError } from '../core/errors.ts';

/**
 * The SQL console's first line of defence: one read-only statement, checked before it reaches an
 * engine. The second line is the engine itself (a sandboxed DuckDB that cannot read files outside
 * the lake or change its settings; the warehouse in a `READ ONLY` transaction), so a statement
 * that slips past this conservative, token-based check still cannot write or read elsewhere.
 *
 * Refused: more than one statement; anything not starting with `SELECT`, `WITH`, `DESCRIBE`,
 * `SHOW`, `FROM` (DuckDB's `FROM t` shorthand), `VALUES`, `SUMMARIZE` or `TABLE`; and, anywhere outside string literals and
 * comments, the words of DDL/DML and session commands (`INSERT`, `DROP`, `COPY`, `ATTACH`,
 * `PRAGMA`, `SET`, `INSTALL`, `LOAD`, ...) and the table functions that read files or the
 * database's own settings (`read_csv`, `read_parquet`, `read_json*`, `read_text`, `read_blob`,
 * `glob`, `parquet_*`, `sniff_csv`, `query_table`, `getenv`, ...). Identifiers quoted with `"` are
 * never refused (`SELECT "set" FROM t` is fine).
 */

const LEADING = new Set(['select', 'with', 'describe', 'show', 'from', 'values', 'summarize', 'table']);

const FORBIDDEN_WORDS = new Set([
  'insert',
  'update',
  'delete',
  'merge',
  'upsert',
  'create',
  'drop',
  'alter',
  'truncate',
  'copy',
  'export',
  'import',
  'attach',
  'detach',
  'use',
  'pragma',
  'set',
  'reset',
  'install',
  'load',
  'call',
  'checkpoint',
  'vacuum',
  'analyze',
  'begin',
  'commit',
  'rollback',
  'abort',
  'prepare',
  'execute',
  'deallocate',
  'grant',
  'revoke',
  'comment',
  'lock',
  'listen',
  'notify',
  'do',
  'into',
  'cluster',
  'reindex',
  'refresh',
  'security',
  'secret',
  'unlisten',
]);

const FORBIDDEN_FUNCTION =
  /^(read_\w+|glob|parquet_\w+|sniff_csv|query|query_table|getenv|duckdb_\w+|pg_read_\w+|pg_ls_dir|pg_stat_file|lo_\w+|dblink\w*|current_setting|set_config|iceberg_\w+|delta_scan|sqlite_\w+|postgres_\w+|mysql_\w+|which_secret|load_aws_credentials|pg_sleep\w*|pg_terminate_backend|pg_cancel_backend)$/;

/** Words (lower-cased) and the character after each, outside literals, comments and quoted identifiers. */
function tokens(sql: string): { words: { word: string; next: string }[]; statements: number } {
  const words: { word: string; next: string }[] = [];
  let statements = 0;
  let sawContent = false;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i] ?? '';
    if (c === "'" && (words.at(-1)?.word === 'from' || words.at(-1)?.word === 'join')) {
      // DuckDB reads `FROM 'file.csv'` as a file scan.
      throw new UsageError(
        "reading a file by name (FROM '...') is not allowed: the console reads the cataloged tables only",
      );
    }
    if (c === "'" || c === '"') {
      const end = sql.indexOf(c, i + 1);
      if (end < 0) throw new UsageError(`unterminated ${c === "'" ? 'string literal' : 'quoted identifier'}`);
      // A doubled quote continues the literal.
      i = end + 1;
      while (sql[i] === c) {
        const again = sql.indexOf(c, i + 1);
        if (again < 0) throw new UsageError('unterminated string literal');
        i = again + 1;
      }
      sawContent = true;
      continue;
    }
    if (c === '$') {
      // PostgreSQL dollar quoting ($tag$ ... $tag$): not needed for queries, refused.
      if (/^\$\w*\$/.test(sql.slice(i)))
        throw new UsageError('dollar-quoted strings are not accepted in the console');
    }
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
      continue;
    }
    if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) throw new UsageError('unterminated /* comment');
      i = end + 2;
      continue;
    }
    if (c === ';') {
      if (sawContent) statements++;
      sawContent = false;
      i++;
      continue;
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i, i + 200));
    if (word) {
      let j = i + word[0].length;
      while (j < sql.length && /\s/.test(sql[j] ?? '')) j++;
      words.push({ word: word[0].toLowerCase(), next: sql[j] ?? '' });
      i += word[0].length;
      sawContent = true;
      continue;
    }
    if (!/\s/.test(c)) sawContent = true;
    i++;
  }
  if (sawContent) statements++;
  return { words, statements };
}

/**
 * Checks that `sql` is exactly one read-only query.
 * @throws {UsageError} naming what was refused, e.g. `DROP is not allowed: the console is read-only`.
 */
export function checkReadOnlySql(sql: string): void {
  const { words, statements } = tokens(sql);
  if (statements === 0) throw new UsageError('the statement is empty');
  if (statements > 1) throw new UsageError(`one statement at a time (found ${statements})`);
  const first = words[0]?.word;
  if (!first || !LEADING.has(first)) {
    throw new UsageError(
      `${(first ?? sql.trim().slice(0, 20)).toUpperCase()} is not allowed: the console is read-only (SELECT, WITH, DESCRIBE, SHOW)`,
    );
  }
  for (const { word, next } of words) {
    if (FORBIDDEN_WORDS.has(word)) {
      throw new UsageError(
        `${word.toUpperCase()} is not allowed: the console is read-only (SELECT, WITH, DESCRIBE, SHOW)`,
      );
    }
    if (next === '(' && FORBIDDEN_FUNCTION.test(word)) {
      throw new UsageError(
        `${word}() is not allowed: the console reads the cataloged tables only, not files or settings`,
      );
    }
  }
}
