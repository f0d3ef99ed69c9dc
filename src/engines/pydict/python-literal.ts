/**
 * A parser for one line holding a Python literal, as `str(dict)` / `repr()` writes it: the format of
 * the tolls generator (`f_object.write(f"{fake_data}\n")`), whose "JSON" files are lines like
 * `{'transaction_id': 95254, 'transaction_date': '2023/08/13', 'transaction_amount': 8.85}`.
 *
 * It accepts what `ast.literal_eval` accepts among the literals that have a JSON meaning
 * (https://docs.python.org/3/reference/lexical_analysis.html#literals,
 * https://docs.python.org/3/library/ast.html#ast.literal_eval):
 * - dicts (string keys only), lists, tuples (as arrays; `()` and `(x,)`), trailing commas, whitespace;
 * - strings in single or double quotes with an optional `u` or `r` prefix, and Python's escapes:
 *   `\\ \' \" \a \b \f \n \r \t \v`, `\ooo` (octal), `\xNN`, `\uNNNN`, `\UNNNNNNNN`,
 *   backslash-newline; an unknown escape (`\d`) keeps its backslash, as Python does;
 * - integers (decimal, `0x`, `0o`, `0b`, `_` separators, one unary sign): a JS `number` when it is a
 *   safe integer (|n| <= 2^53 - 1), else a `bigint`;
 * - floats (`1.5`, `1e-05`, `.5`, `5.`): a JS `number`;
 * - `True`, `False`, `None`.
 *
 * Rejected with a reason, because they have no JSON value: sets, bytes (`b'..'`), complex numbers,
 * non-string dict keys, floats that overflow to infinity (`1e999`), and `inf`/`nan` (what `repr()`
 * writes for `float('inf')`/`float('nan')`: they are names, not literals, so `ast.literal_eval`
 * rejects them too). Not supported (repr never writes them): triple-quoted strings, f-strings,
 * `\N{name}` escapes, comments, and adjacent literals (`'a' 'b'`, which Python concatenates):
 * refusing them makes a missing colon (`{'a' 'b'}`) an error at the second string, where it is.
 *
 * Columns in errors are 1-based positions in the line in UTF-16 code units (characters, for text
 * in the Basic Multilingual Plane).
 */

/** What a Python literal becomes: JSON's values plus `bigint` for integers beyond 2^53. */
export type PythonLiteralValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | IntegralFloat
  | PythonLiteralValue[]
  | { [key: string]: PythonLiteralValue };

/**
 * A float literal whose value is integral (`7.0`, `1e3`), returned instead of a plain number only
 * with {@link ParseOptions.keepFloatKind}: it lets type inference tell `7.0` (double) from `7`.
 */
export class IntegralFloat {
  constructor(readonly value: number) {}
}

/** Options of {@link parsePythonLiteral}. */
export interface ParseOptions {
  /** Return integral floats as {@link IntegralFloat} (default `false`: a plain number). */
  readonly keepFloatKind?: boolean;
  /**
   * Also accept JSON's `true`, `false`, `null` and the `\/` escape, so that any JSON text parses
   * too (used to re-read JSON lines without losing big integers). Default `false`.
   */
  readonly jsonKeywords?: boolean;
}

/** Thrown when a line is not a Python literal with a JSON meaning. */
export class PythonLiteralError extends Error {
  override readonly name = 'PythonLiteralError';
  /**
   * @param reason what was expected or is wrong, e.g. `expected ':' after key`
   * @param column 1-based column where the problem is (of the opening quote, for an unterminated string)
   * @param incomplete `true` when the text ended before the literal did (a cut line)
   */
  constructor(
    readonly reason: string,
    readonly column: number,
    readonly incomplete: boolean = false,
  ) {
    super(`${reason} at column ${column}`);
  }
}

/** Deepest nesting of containers accepted (CPython's parser stops near the same depth). */
export const MAX_DEPTH = 1000;

/**
 * Parses `text` (one line, or any text) holding exactly one Python literal.
 * @throws {PythonLiteralError} with the column and what was expected.
 */
export function parsePythonLiteral(text: string, options: ParseOptions = {}): PythonLiteralValue {
  const parser = new Parser(text, options);
  parser.skipWhitespace();
  const value = parser.value(0);
  parser.skipWhitespace();
  if (parser.pos < text.length) {
    throw parser.error(`expected the end of the line after the value, found ${parser.describeHere()}`);
  }
  return value;
}

/** Result of {@link parseJsonOrPythonLine}. */
export interface ParsedLine {
  readonly value: PythonLiteralValue;
  /** Which syntax the line is in: strict JSON (NDJSON) or a Python literal. */
  readonly syntax: 'json' | 'python';
}

/** JSON integers of 16+ digits may be beyond 2^53: such lines are re-read to keep them exact. */
const LONG_DIGITS = /\d{16}/;
/** A JSON number that may be an integral float (`7.0`, `1e3`): re-read when float kinds are kept. */
const INTEGRAL_FLOAT = /\d(?:\.0*(?![0-9])|[eE])/;

/**
 * Parses one line of NDJSON or of Python dict reprs: `JSON.parse` first (the fast path for
 * NDJSON), then {@link parsePythonLiteral}. A leading byte-order mark is ignored. JSON integers
 * beyond 2^53 come back as `bigint`, as in the Python syntax.
 * @throws {PythonLiteralError} (the Python parser's) when the line is neither.
 */
export function parseJsonOrPythonLine(
  line: string,
  options: Pick<ParseOptions, 'keepFloatKind'> = {},
): ParsedLine {
  const text = line.charCodeAt(0) === 0xfeff ? line.slice(1) : line;
  // A `'` before any `"` is outside a JSON string, so JSON.parse would fail (and throwing is slow).
  const single = text.indexOf("'");
  if (single !== -1) {
    const double = text.indexOf('"');
    if (double === -1 || single < double)
      return { value: parsePythonLiteral(text, options), syntax: 'python' };
  }
  let value: PythonLiteralValue;
  try {
    value = JSON.parse(text) as PythonLiteralValue;
  } catch {
    return { value: parsePythonLiteral(text, options), syntax: 'python' };
  }
  if (LONG_DIGITS.test(text) || (options.keepFloatKind === true && INTEGRAL_FLOAT.test(text))) {
    value = parsePythonLiteral(text, { ...options, jsonKeywords: true });
  }
  return { value, syntax: 'json' };
}

enum C {
  Tab = 9,
  Newline = 10,
  FormFeed = 12,
  Return = 13,
  Space = 32,
  DoubleQuote = 34,
  Quote = 39,
  OpenParen = 40,
  CloseParen = 41,
  Plus = 43,
  Comma = 44,
  Minus = 45,
  Dot = 46,
  Zero = 48,
  Nine = 57,
  Colon = 58,
  OpenBracket = 91,
  Backslash = 92,
  CloseBracket = 93,
  Underscore = 95,
  OpenBrace = 123,
  CloseBrace = 125,
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = -MAX_SAFE;

/** A decimal, hex, octal or binary integer, or a float, with Python's `_` rules (no sign). */
const DECIMAL_INT = /^(?:[1-9](?:_?[0-9])*|0(?:_?0)*)$/;
const RADIX_INT = /^0(?:[xX](?:_?[0-9a-fA-F])+|[oO](?:_?[0-7])+|[bB](?:_?[01])+)$/;
const FLOAT =
  /^(?:(?:[0-9](?:_?[0-9])*)?\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*\.?)(?:[eE][+-]?[0-9](?:_?[0-9])*)?$/;

function isIdentifierChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === C.Underscore || c > 127
  );
}

class Parser {
  pos = 0;
  /** Cached position of the next backslash at or after some earlier position (-1: none left). */
  private nextBackslash = -2;

  constructor(
    readonly text: string,
    private readonly options: ParseOptions,
  ) {}

  error(reason: string, at = this.pos, incomplete = at >= this.text.length): PythonLiteralError {
    return new PythonLiteralError(reason, at + 1, incomplete);
  }

  /** The character at the position, quoted, or `the end of the line`. */
  describeHere(at = this.pos): string {
    if (at >= this.text.length) return 'the end of the line';
    const c = this.text.codePointAt(at) ?? 0;
    return c < 32
      ? `character U+${c.toString(16).toUpperCase().padStart(4, '0')}`
      : `'${String.fromCodePoint(c)}'`;
  }

  skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === C.Space || c === C.Tab || c === C.Newline || c === C.Return || c === C.FormFeed) pos++;
      else if (
        c === C.Backslash &&
        (text.charCodeAt(pos + 1) === C.Newline || text.charCodeAt(pos + 1) === C.Return)
      )
        pos += 2; // explicit line joining
      else break;
    }
    this.pos = pos;
  }

  value(depth: number): PythonLiteralValue {
    const text = this.text;
    const c = text.charCodeAt(this.pos);
    switch (c) {
      case C.OpenBrace:
        return this.dict(depth + 1);
      case C.OpenBracket:
        return this.list(depth + 1);
      case C.OpenParen:
        return this.tuple(depth + 1);
      case C.Quote:
      case C.DoubleQuote:
        return this.string(false);
      case C.Minus:
      case C.Plus:
        return this.signed();
      case C.Dot:
        return this.number(false);
    }
    if (c >= C.Zero && c <= C.Nine) return this.number(false);
    if (isIdentifierChar(c)) return this.name();
    if (this.pos >= text.length) throw this.error('expected a value, found the end of the line');
    throw this.error(`expected a value, found ${this.describeHere()}`);
  }

  private enter(depth: number): void {
    if (depth > MAX_DEPTH) throw this.error(`nesting deeper than ${MAX_DEPTH} levels`);
  }

  private dict(depth: number): { [key: string]: PythonLiteralValue } {
    this.enter(depth);
    const open = this.pos;
    this.pos++;
    const result: { [key: string]: PythonLiteralValue } = {};
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === C.CloseBrace) {
      this.pos++;
      return result;
    }
    for (let first = true; ; first = false) {
      const keyAt = this.pos;
      const key = this.value(depth);
      this.skipWhitespace();
      const c = this.text.charCodeAt(this.pos);
      if (c !== C.Colon) {
        if (first && (c === C.Comma || c === C.CloseBrace)) {
          throw this.error('a set is not a JSON value (expected a dict)', open, false);
        }
        throw this.error(`expected ':' after key, found ${this.describeHere()}`);
      }
      if (typeof key !== 'string') {
        throw this.error(
          `dict keys must be strings (JSON objects have string keys), found ${describeValue(key)}`,
          keyAt,
          false,
        );
      }
      this.pos++;
      this.skipWhitespace();
      const value = this.value(depth);
      if (key === '__proto__') {
        Object.defineProperty(result, key, { value, enumerable: true, configurable: true, writable: true });
      } else {
        result[key] = value;
      }
      if (this.endOfItem(C.CloseBrace, "'}' after a dict value")) return result;
    }
  }

  private list(depth: number): PythonLiteralValue[] {
    this.enter(depth);
    this.pos++;
    const result: PythonLiteralValue[] = [];
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === C.CloseBracket) {
      this.pos++;
      return result;
    }
    for (;;) {
      result.push(this.value(depth));
      if (this.endOfItem(C.CloseBracket, "']' after a list item")) return result;
    }
  }

  /**
   * After an item of a dict, list or tuple: consumes `,` (and a trailing `,` before `close`) or
   * `close`. @returns true when the container ended.
   * @throws {PythonLiteralError} naming what was expected (`expected ',' or <expected>`).
   */
  private endOfItem(close: number, expected: string): boolean {
    this.skipWhitespace();
    const next = this.text.charCodeAt(this.pos);
    if (next === close) {
      this.pos++;
      return true;
    }
    if (next !== C.Comma) throw this.error(`expected ',' or ${expected}, found ${this.describeHere()}`);
    this.pos++;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== close) return false;
    this.pos++;
    return true;
  }

  /** `(x)` is `x`; `()`, `(x,)` and `(x, y)` are tuples, returned as arrays. */
  private tuple(depth: number): PythonLiteralValue {
    this.enter(depth);
    this.pos++;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === C.CloseParen) {
      this.pos++;
      return [];
    }
    const first = this.value(depth);
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    if (c === C.CloseParen) {
      this.pos++;
      return first;
    }
    if (c !== C.Comma)
      throw this.error(`expected ',' or ')' after a tuple item, found ${this.describeHere()}`);
    const result: PythonLiteralValue[] = [first];
    // At the comma after the first item: `(x,)` is a one-item tuple.
    this.pos++;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) === C.CloseParen) {
      this.pos++;
      return result;
    }
    for (;;) {
      result.push(this.value(depth));
      if (this.endOfItem(C.CloseParen, "')' after a tuple item")) return result;
    }
  }

  /** Length of a string prefix (`u`, `r`, `b`, `f`, `rb`, ...) followed by a quote at `at`, if any. */
  private stringPrefixAt(at: number): string | undefined {
    const m = /^([rRuUbBfF]{1,2})['"]/.exec(this.text.slice(at, at + 3));
    return m?.[1];
  }

  /** A string with a prefix: `u'..'` (the same as none), `r'..'` (raw); others are rejected. */
  private prefixed(): string {
    const at = this.pos;
    const prefix = (this.stringPrefixAt(at) ?? '').toLowerCase();
    if (prefix === 'u' || prefix === 'r') {
      this.pos += 1;
      return this.string(prefix === 'r');
    }
    if (prefix.includes('b')) throw this.error('a bytes literal is not a JSON value', at, false);
    if (prefix.includes('f')) throw this.error('an f-string is not a literal', at, false);
    throw this.error(`unknown string prefix '${prefix}'`, at, false);
  }

  /** A quoted string at the position (the quote), without prefix. */
  private string(raw: boolean): string {
    const text = this.text;
    const open = this.pos;
    const quote = text.charCodeAt(open);
    if (text.charCodeAt(open + 1) === quote && text.charCodeAt(open + 2) === quote) {
      throw this.error('triple-quoted strings are not supported', open, false);
    }
    const start = open + 1;
    const end = text.indexOf(quote === C.Quote ? "'" : '"', start);
    if (end === -1) throw this.error('unterminated string literal', open, true);
    if (this.nextBackslash !== -1 && this.nextBackslash < start)
      this.nextBackslash = text.indexOf('\\', start);
    if (this.nextBackslash === -1 || this.nextBackslash > end) {
      // Fast path: no escape before the closing quote.
      const value = text.slice(start, end);
      if (value.includes('\n') || value.includes('\r')) {
        throw this.error('unterminated string literal (a line break inside quotes)', open, false);
      }
      this.pos = end + 1;
      return value;
    }
    let out = '';
    let chunk = start;
    let pos = start;
    for (;;) {
      if (pos >= text.length) throw this.error('unterminated string literal', open, true);
      const c = text.charCodeAt(pos);
      if (c === quote) break;
      if (c === C.Newline || c === C.Return) {
        throw this.error('unterminated string literal (a line break inside quotes)', open, false);
      }
      if (c !== C.Backslash) {
        pos++;
        continue;
      }
      if (pos + 1 >= text.length) throw this.error('unterminated string literal', open, true);
      if (raw) {
        // In a raw string a backslash keeps itself and the next character (even a quote).
        pos += 2;
        continue;
      }
      out += text.slice(chunk, pos);
      const escapeAt = pos;
      const e = text[pos + 1] as string;
      pos += 2;
      const simple = SIMPLE_ESCAPES[e];
      if (simple !== undefined) {
        out += simple;
      } else if (e === '/' && this.options.jsonKeywords === true) {
        out += '/';
      } else if (e === '\n') {
        // backslash-newline: nothing
      } else if (e === '\r') {
        if (text.charCodeAt(pos) === C.Newline) pos++;
      } else if (e >= '0' && e <= '7') {
        let end = pos;
        while (end < pos + 2 && text.charCodeAt(end) >= C.Zero && text.charCodeAt(end) <= 55) end++;
        out += String.fromCharCode(Number.parseInt(text.slice(pos - 1, end), 8));
        pos = end;
      } else if (e === 'x' || e === 'u' || e === 'U') {
        const digits = e === 'x' ? 2 : e === 'u' ? 4 : 8;
        const hex = text.slice(pos, pos + digits);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== digits) {
          throw this.error(`truncated \\${e} escape: expected ${digits} hex digits`, escapeAt, false);
        }
        const code = Number.parseInt(hex, 16);
        if (code > 0x10ffff) throw this.error(`\\${e}${hex} is not a Unicode code point`, escapeAt, false);
        out += code > 0xffff ? String.fromCodePoint(code) : String.fromCharCode(code);
        pos += digits;
      } else if (e === 'N') {
        throw this.error('\\N{...} escapes are not supported', escapeAt, false);
      } else {
        // Unknown escape: Python keeps the backslash.
        out += `\\${e}`;
      }
      chunk = pos;
    }
    this.pos = pos + 1;
    return out + text.slice(chunk, pos);
  }

  private signed(): number | bigint | IntegralFloat {
    const at = this.pos;
    const negative = this.text.charCodeAt(at) === C.Minus;
    this.pos++;
    this.skipWhitespace();
    const c = this.text.charCodeAt(this.pos);
    if (!((c >= C.Zero && c <= C.Nine) || c === C.Dot || isIdentifierChar(c))) {
      throw this.error(`expected a number after '${negative ? '-' : '+'}', found ${this.describeHere()}`);
    }
    if (!(c >= C.Zero && c <= C.Nine) && c !== C.Dot) {
      const name = this.peekName();
      if (name === 'inf' || name === 'nan') this.name(); // throws its own reason
      throw this.error(`expected a number after '${negative ? '-' : '+'}', found ${this.describeHere()}`);
    }
    return this.number(negative);
  }

  /** A number at the position; `negative` from a sign already read. */
  private number(negative: boolean): number | bigint | IntegralFloat {
    const text = this.text;
    const start = this.pos;
    let pos = start;
    let underscores = false;
    let digits = 0;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c >= C.Zero && c <= C.Nine) digits++;
      else if (c === C.Underscore) underscores = true;
      else break;
      pos++;
    }
    const second = text.charCodeAt(start + 1) | 0x20;
    if (
      pos === start + 1 &&
      text.charCodeAt(start) === C.Zero &&
      (second === 120 || second === 111 || second === 98)
    ) {
      // 0x.., 0o.., 0b..
      pos = start + 2;
      while (isIdentifierChar(text.charCodeAt(pos))) pos++;
      const token = text.slice(start, pos);
      if (!RADIX_INT.test(token)) throw this.error(`invalid number literal '${token}'`, start, false);
      this.pos = pos;
      return this.integer(BigInt(token.replaceAll('_', '')), negative);
    }
    let isFloat = false;
    if (text.charCodeAt(pos) === C.Dot) {
      isFloat = true;
      pos++;
      for (;;) {
        const c = text.charCodeAt(pos);
        if (c >= C.Zero && c <= C.Nine) digits++;
        else if (c === C.Underscore) underscores = true;
        else break;
        pos++;
      }
    }
    if ((text.charCodeAt(pos) | 0x20) === 101 /* e */ && digits > 0) {
      const sign = text.charCodeAt(pos + 1);
      const digitAt = sign === C.Plus || sign === C.Minus ? pos + 2 : pos + 1;
      const d = text.charCodeAt(digitAt);
      if (d >= C.Zero && d <= C.Nine) {
        isFloat = true;
        pos = digitAt;
        for (;;) {
          const c = text.charCodeAt(pos);
          if (c === C.Underscore) underscores = true;
          else if (!(c >= C.Zero && c <= C.Nine)) break;
          pos++;
        }
      }
    }
    const after = text.charCodeAt(pos);
    if ((after | 0x20) === 106 /* j */)
      throw this.error('a complex number is not a JSON value', start, false);
    if (isIdentifierChar(after) || after === C.Dot || digits === 0) {
      let end = Math.max(pos, start + 1);
      while (isIdentifierChar(text.charCodeAt(end)) || text.charCodeAt(end) === C.Dot) end++;
      throw this.error(`invalid number literal '${text.slice(start, end)}'`, start, false);
    }
    let token = text.slice(start, pos);
    this.pos = pos;
    if (!isFloat) {
      if (underscores ? !DECIMAL_INT.test(token) : token.charCodeAt(0) === C.Zero && !/^0+$/.test(token)) {
        throw this.error(
          token.replaceAll('_', '').length > 1 && token.startsWith('0')
            ? `leading zeros in a decimal integer are not permitted ('${token}')`
            : `invalid number literal '${token}'`,
          start,
          false,
        );
      }
      if (underscores) token = token.replaceAll('_', '');
      if (token.length <= 15) {
        const n = Number(token);
        return negative ? -n : n;
      }
      return this.integer(BigInt(token), negative);
    }
    if (underscores) {
      if (!FLOAT.test(token)) throw this.error(`invalid number literal '${token}'`, start, false);
      token = token.replaceAll('_', '');
    }
    let n = Number(token);
    if (!Number.isFinite(n)) {
      throw this.error(
        `float literal '${token}' is out of range (it would be inf, which JSON has not)`,
        start,
        false,
      );
    }
    if (negative) n = -n;
    if (this.options.keepFloatKind === true && Number.isInteger(n)) return new IntegralFloat(n);
    return n;
  }

  private integer(value: bigint, negative: boolean): number | bigint {
    const v = negative ? -value : value;
    return v >= MIN_SAFE && v <= MAX_SAFE ? Number(v) : v;
  }

  private peekName(): string {
    let end = this.pos;
    while (isIdentifierChar(this.text.charCodeAt(end))) end++;
    return this.text.slice(this.pos, end);
  }

  private name(): PythonLiteralValue {
    const at = this.pos;
    if (this.stringPrefixAt(at) !== undefined) return this.prefixed();
    const name = this.peekName();
    this.pos += name.length;
    switch (name) {
      case 'True':
        return true;
      case 'False':
        return false;
      case 'None':
        return null;
    }
    if (this.options.jsonKeywords === true) {
      if (name === 'true') return true;
      if (name === 'false') return false;
      if (name === 'null') return null;
    }
    if (name === 'true' || name === 'false' || name === 'null') {
      const python = name === 'null' ? 'None' : name === 'true' ? 'True' : 'False';
      throw this.error(`'${name}' is JSON, not Python (Python writes ${python})`, at, false);
    }
    if (name === 'inf' || name === 'nan') {
      throw this.error(
        `'${name}' is not a literal (repr of float('${name}'); ast.literal_eval rejects it) and JSON has no ${name === 'inf' ? 'infinity' : 'NaN'}`,
        at,
        false,
      );
    }
    throw this.error(`unexpected name '${name}' (only True, False and None are literals)`, at, false);
  }
}

function describeValue(value: PythonLiteralValue): string {
  if (value === null) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number' || typeof value === 'bigint')
    return Number.isInteger(Number(value)) ? 'an int' : 'a float';
  if (value instanceof IntegralFloat) return 'a float';
  if (Array.isArray(value)) return 'a tuple or list';
  return 'a dict';
}
