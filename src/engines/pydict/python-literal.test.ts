import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  IntegralFloat,
  MAX_DEPTH,
  PythonLiteralError,
  parseJsonOrPythonLine,
  parsePythonLiteral,
} from './python-literal.ts';

const TOLLS = path.resolve(import.meta.dirname, '../../../examples/data/tolls');
const lines = (file: string) =>
  readFileSync(path.join(TOLLS, file), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');

/** The error `parsePythonLiteral(text)` throws. */
function errorOf(text: string): PythonLiteralError {
  try {
    parsePythonLiteral(text);
  } catch (error) {
    if (error instanceof PythonLiteralError) return error;
    throw error;
  }
  throw new Error(`parsed: ${text}`);
}

describe('parsePythonLiteral: the real tolls sample', () => {
  const python = lines('sample_data_toll_application.first80.json');
  const json = lines('sample_data_toll_application.first80.ndjson');

  it('parses every line to the object of the same line of the ast.literal_eval + json.dumps copy', () => {
    expect(python).toHaveLength(80);
    expect(json).toHaveLength(80);
    python.forEach((line, i) => {
      expect(parsePythonLiteral(line), `line ${i + 1}`).toEqual(JSON.parse(json[i] as string));
    });
  });

  it('is not JSON, and parseJsonOrPythonLine says which syntax each copy is in', () => {
    expect(() => JSON.parse(python[0] as string)).toThrow();
    expect(parseJsonOrPythonLine(python[0] as string)).toEqual({
      value: {
        transaction_id: 95254,
        transaction_date: '2023/08/13',
        toll_booth: 'buckley_rd',
        vehicle_make: 'Audi',
        vehicle_category: 'Coupe, Sedan, Convertible',
        transaction_amount: 8.85,
      },
      syntax: 'python',
    });
    for (const [i, line] of json.entries()) {
      expect(parseJsonOrPythonLine(line)).toEqual({ value: JSON.parse(line), syntax: 'json' });
      expect(parseJsonOrPythonLine(python[i] as string).value).toEqual(JSON.parse(line));
    }
  });
});

describe('parsePythonLiteral: values', () => {
  it('reads dicts, lists, tuples, nesting, trailing commas and whitespace', () => {
    expect(parsePythonLiteral("{'a': {'b': [1, (2, 3), None, True, False]}, 'c': ()}")).toEqual({
      a: { b: [1, [2, 3], null, true, false] },
      c: [],
    });
    expect(parsePythonLiteral(" \t{ 'a' : [ 1 , 2 , ] , 'b' : ( 1 , ) , } \r")).toEqual({
      a: [1, 2],
      b: [1],
    });
    expect(parsePythonLiteral('(1)')).toBe(1);
    expect(parsePythonLiteral('{}')).toEqual({});
    expect(parsePythonLiteral('[]')).toEqual([]);
    expect(parsePythonLiteral("{'k': 1, 'k': 2}")).toEqual({ k: 2 });
  });

  it('reads Python string escapes and quoting as repr writes them', () => {
    // repr picks double quotes when the string holds a single quote and no double quote.
    expect(parsePythonLiteral(`"O'Brien"`)).toBe("O'Brien");
    expect(parsePythonLiteral(`'both \\' and "'`)).toBe(`both ' and "`);
    expect(parsePythonLiteral(`"a \\"quoted\\" word"`)).toBe('a "quoted" word');
    expect(parsePythonLiteral(String.raw`'back\\slash'`)).toBe('back\\slash');
    expect(parsePythonLiteral(String.raw`'line\nnext\ttab\r'`)).toBe('line\nnext\ttab\r');
    expect(parsePythonLiteral(String.raw`'\x41\xe9\x00'`)).toBe('Aé\u0000');
    expect(parsePythonLiteral(String.raw`'\u00e9\u20ac'`)).toBe('é€');
    expect(parsePythonLiteral(String.raw`'\U0001f600'`)).toBe('😀');
    expect(parsePythonLiteral(String.raw`'\101\0\7'`)).toBe('A\u0000\u0007');
    expect(parsePythonLiteral(String.raw`'\a\b\f\v'`)).toBe('\u0007\b\f\v');
    // An unknown escape keeps its backslash, as in Python.
    expect(parsePythonLiteral(String.raw`'\d+\.'`)).toBe('\\d+\\.');
    // Characters outside ASCII, as repr writes them (printable ones unescaped).
    expect(parsePythonLiteral("{'make': 'Škoda', 'city': '東京', 'emoji': '🚗'}")).toEqual({
      make: 'Škoda',
      city: '東京',
      emoji: '🚗',
    });
  });

  it('reads prefixes u and r', () => {
    expect(parsePythonLiteral("u'x'")).toBe('x');
    expect(parsePythonLiteral(String.raw`r'\d\''`)).toBe("\\d\\'");
    expect(parsePythonLiteral("[U'a', R'b']")).toEqual(['a', 'b']);
  });

  it('reads ints exactly: numbers up to 2^53 - 1, bigints beyond', () => {
    expect(parsePythonLiteral('95254')).toBe(95254);
    expect(parsePythonLiteral('-17')).toBe(-17);
    expect(parsePythonLiteral('+ 17')).toBe(17);
    expect(parsePythonLiteral('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(parsePythonLiteral('9007199254740993')).toBe(9007199254740993n);
    expect(parsePythonLiteral('-123456789012345678901234567890')).toBe(-123456789012345678901234567890n);
    expect(parsePythonLiteral('1_000_000')).toBe(1_000_000);
    expect(parsePythonLiteral('0x_1F')).toBe(31);
    expect(parsePythonLiteral('0o17')).toBe(15);
    expect(parsePythonLiteral('0b101')).toBe(5);
    expect(parsePythonLiteral('0')).toBe(0);
    expect(parsePythonLiteral('{"id": 18446744073709551617}')).toEqual({ id: 18446744073709551617n });
  });

  it('reads floats, including the exponent forms repr writes', () => {
    expect(parsePythonLiteral('8.85')).toBe(8.85);
    expect(parsePythonLiteral('1e-05')).toBe(0.00001);
    expect(parsePythonLiteral('1e+22')).toBe(1e22);
    expect(parsePythonLiteral('-0.5')).toBe(-0.5);
    expect(parsePythonLiteral('.5')).toBe(0.5);
    expect(parsePythonLiteral('5.')).toBe(5);
    expect(parsePythonLiteral('7.0')).toBe(7);
    expect(parsePythonLiteral('7.0', { keepFloatKind: true })).toEqual(new IntegralFloat(7));
    expect(parsePythonLiteral('1e3', { keepFloatKind: true })).toEqual(new IntegralFloat(1000));
    expect(parsePythonLiteral('7', { keepFloatKind: true })).toBe(7);
  });

  it('keeps a __proto__ key as data', () => {
    const value = parsePythonLiteral("{'__proto__': {'x': 1}}") as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});

describe('parsePythonLiteral: errors name the column and what was expected', () => {
  it.each([
    // [text, message, incomplete]
    ["{'transaction_id' 95254}", "expected ':' after key, found '9' at column 19", false],
    // Adjacent literals are not concatenated (repr never writes them): the missing colon is named.
    ["{'transaction_date' '2023/08/13'}", `expected ':' after key, found ''' at column 21`, false],
    ["{'a': 1 'b': 2}", "expected ',' or '}' after a dict value, found ''' at column 9", false],
    ["{'a': 'x}", 'unterminated string literal at column 7', true],
    ["{'a': 'it's'}", "expected ',' or '}' after a dict value, found 's' at column 11", false],
    ["{'a': 1} trailing", "expected the end of the line after the value, found 't' at column 10", false],
    ["{'a': 1}}", "expected the end of the line after the value, found '}' at column 9", false],
    ["{'a': ", 'expected a value, found the end of the line at column 7', true],
    ['', 'expected a value, found the end of the line at column 1', true],
    ['[1 2]', "expected ',' or ']' after a list item, found '2' at column 4", false],
    ['(1 2)', "expected ',' or ')' after a tuple item, found '2' at column 4", false],
    ['{1: 2}', 'dict keys must be strings (JSON objects have string keys), found an int at column 2', false],
    [
      "{('a',): 2}",
      'dict keys must be strings (JSON objects have string keys), found a tuple or list at column 2',
      false,
    ],
    ['{1, 2}', 'a set is not a JSON value (expected a dict) at column 1', false],
    ['{"a": true}', "'true' is JSON, not Python (Python writes True) at column 7", false],
    ['{"a": null}', "'null' is JSON, not Python (Python writes None) at column 7", false],
    [
      'inf',
      "'inf' is not a literal (repr of float('inf'); ast.literal_eval rejects it) and JSON has no infinity at column 1",
      false,
    ],
    [
      '-inf',
      "'inf' is not a literal (repr of float('inf'); ast.literal_eval rejects it) and JSON has no infinity at column 2",
      false,
    ],
    [
      "{'x': nan}",
      "'nan' is not a literal (repr of float('nan'); ast.literal_eval rejects it) and JSON has no NaN at column 7",
      false,
    ],
    [
      '1e999',
      "float literal '1e999' is out of range (it would be inf, which JSON has not) at column 1",
      false,
    ],
    ['007', "leading zeros in a decimal integer are not permitted ('007') at column 1", false],
    ['1__0', "invalid number literal '1__0' at column 1", false],
    ['12abc', "invalid number literal '12abc' at column 1", false],
    ['1j', 'a complex number is not a JSON value at column 1', false],
    ["b'x'", 'a bytes literal is not a JSON value at column 1', false],
    ["f'{x}'", 'an f-string is not a literal at column 1', false],
    ["'''x'''", 'triple-quoted strings are not supported at column 1', false],
    [String.raw`'\x4'`, 'truncated \\x escape: expected 2 hex digits at column 2', false],
    [String.raw`'\N{BULLET}'`, '\\N{...} escapes are not supported at column 2', false],
    [
      'datetime.date(2023, 8, 13)',
      "unexpected name 'datetime' (only True, False and None are literals) at column 1",
      false,
    ],
    ['--1', "expected a number after '-', found '-' at column 2", false],
    ["'a\nb'", 'unterminated string literal (a line break inside quotes) at column 1', false],
  ])('%j', (text, message, incomplete) => {
    const error = errorOf(text);
    expect(error.message).toBe(message);
    expect(error.name).toBe('PythonLiteralError');
    expect(error.incomplete).toBe(incomplete);
    expect(error.column).toBe(Number(/column (\d+)$/.exec(message)?.[1]));
  });

  it('rejects nesting deeper than MAX_DEPTH instead of overflowing the stack', () => {
    expect(parsePythonLiteral(`${'['.repeat(MAX_DEPTH)}${']'.repeat(MAX_DEPTH)}`)).toBeDefined();
    expect(errorOf('['.repeat(100_000)).message).toBe(
      `nesting deeper than ${MAX_DEPTH} levels at column ${MAX_DEPTH + 1}`,
    );
  });
});

describe('parseJsonOrPythonLine', () => {
  it('takes JSON first, keeping integers beyond 2^53 exact and reading \\/', () => {
    expect(parseJsonOrPythonLine('{"id": 12345678901234567890, "u": "a\\/b"}')).toEqual({
      value: { id: 12345678901234567890n, u: 'a/b' },
      syntax: 'json',
    });
    expect(parseJsonOrPythonLine('[1, true, null]')).toEqual({ value: [1, true, null], syntax: 'json' });
  });

  it('keeps float kinds on request, for JSON and Python lines', () => {
    expect(parseJsonOrPythonLine('{"a": 7.0, "b": 7, "c": 8.85}', { keepFloatKind: true }).value).toEqual({
      a: new IntegralFloat(7),
      b: 7,
      c: 8.85,
    });
    expect(parseJsonOrPythonLine("{'a': 7.0}", { keepFloatKind: true }).value).toEqual({
      a: new IntegralFloat(7),
    });
  });

  it('ignores a byte-order mark and a carriage return', () => {
    expect(parseJsonOrPythonLine("\uFEFF{'a': 1}\r")).toEqual({ value: { a: 1 }, syntax: 'python' });
    expect(parseJsonOrPythonLine('\uFEFF{"a": 1}\r')).toEqual({ value: { a: 1 }, syntax: 'json' });
  });

  it("throws the Python parser's error when the line is neither", () => {
    expect(() => parseJsonOrPythonLine("{'a': 1,, }")).toThrow(
      new PythonLiteralError("expected a value, found ','", 9),
    );
    expect(() => parseJsonOrPythonLine('{"a": tru}')).toThrow(/unexpected name 'tru'/);
  });
});
