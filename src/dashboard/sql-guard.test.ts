import { describe, expect, it } from 'vitest';
import { checkReadOnlySql } from './sql-guard.ts';

describe('checkReadOnlySql', () => {
  it.each([
    'SELECT 1',
    "select 'drop table x; set y' AS s",
    'WITH t AS (SELECT 1 AS a) SELECT a FROM t;',
    'DESCRIBE gharchive.events',
    'SHOW TABLES',
    'SELECT "set", "copy" FROM t -- DROP in a comment',
    "SELECT /* insert */ replace(type, 'a', 'b') FROM gharchive.events",
  ])('accepts %s', (sql) => {
    expect(() => checkReadOnlySql(sql)).not.toThrow();
  });

  it.each([
    ['', /empty/],
    ['CREATE TABLE x AS SELECT 1', /CREATE is not allowed/],
    ['SELECT 1; SELECT 2', /one statement/],
    ['SELECT * INTO t FROM x', /INTO is not allowed/],
    ["SELECT * FROM read_parquet('/x/*.parquet')", /read_parquet\(\)/],
    ["SELECT * FROM READ_JSON_AUTO ('/x')", /read_json_auto\(\)/],
    ["SELECT getenv('HOME')", /getenv\(\)/],
    ["WITH x AS (SELECT 1) SELECT * FROM x JOIN '/etc/passwd' ON true", /reading a file by name/],
    ['SELECT 1 /* unterminated', /unterminated/],
  ])('refuses %s', (sql, message) => {
    expect(() => checkReadOnlySql(sql)).toThrow(message);
  });
});
