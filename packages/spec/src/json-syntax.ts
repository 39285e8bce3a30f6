// JSON.parse's messages differ between V8 versions and some carry no position at
// all ("Unexpected end of JSON input"), so on failure we re-scan the text with a
// strict RFC 8259 scanner that knows exactly where and why it stopped.

export interface JsonSyntaxError {
  /** 0-based UTF-16 offset */
  offset: number;
  /** 1-based */
  line: number;
  /** 1-based */
  column: number;
  message: string;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Stop {
  constructor(
    readonly offset: number,
    readonly message: string,
  ) {}
}

function describe(text: string, pos: number): string {
  if (pos >= text.length) return 'end of input';
  const ch = text[pos] as string;
  if (ch < ' ') return JSON.stringify(ch);
  return `'${ch}'`;
}

class Scanner {
  pos = 0;
  constructor(readonly text: string) {}

  fail(message: string, at = this.pos): never {
    throw new Stop(at, message);
  }

  ws(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else break;
    }
  }

  document(): void {
    this.ws();
    this.value();
    this.ws();
    if (this.pos < this.text.length)
      this.fail(`unexpected ${describe(this.text, this.pos)} after the JSON value`);
  }

  value(): void {
    const ch = this.text[this.pos];
    if (ch === '{') this.object();
    else if (ch === '[') this.array();
    else if (ch === '"') this.string();
    else if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) this.number();
    else this.literal();
  }

  literal(): void {
    for (const word of ['true', 'false', 'null']) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return;
      }
    }
    this.fail(`unexpected ${describe(this.text, this.pos)}, expected a value`);
  }

  object(): void {
    this.pos++;
    this.ws();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] !== '"') {
        if (this.text[this.pos] === '}') this.fail("trailing comma before '}'");
        this.fail(`unexpected ${describe(this.text, this.pos)}, expected a property name in double quotes`);
      }
      this.string();
      this.ws();
      if (this.text[this.pos] !== ':') this.fail(`unexpected ${describe(this.text, this.pos)}, expected ':'`);
      this.pos++;
      this.ws();
      this.value();
      this.ws();
      const ch = this.text[this.pos];
      if (ch === '}') {
        this.pos++;
        return;
      }
      if (ch !== ',') this.fail(`unexpected ${describe(this.text, this.pos)}, expected ',' or '}'`);
      this.pos++;
    }
  }

  array(): void {
    this.pos++;
    this.ws();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      if (this.text[this.pos] === ']') this.fail("trailing comma before ']'");
      this.value();
      this.ws();
      const ch = this.text[this.pos];
      if (ch === ']') {
        this.pos++;
        return;
      }
      if (ch !== ',') this.fail(`unexpected ${describe(this.text, this.pos)}, expected ',' or ']'`);
      this.pos++;
    }
  }

  string(): void {
    const start = this.pos;
    this.pos++;
    const t = this.text;
    while (this.pos < t.length) {
      const ch = t[this.pos] as string;
      if (ch === '"') {
        this.pos++;
        return;
      }
      if (ch < ' ') this.fail(`control character ${JSON.stringify(ch)} in string`);
      if (ch === '\\') {
        const esc = t[this.pos + 1];
        if (esc === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(t.slice(this.pos + 2, this.pos + 6)))
            this.fail('invalid \\u escape in string');
          this.pos += 6;
          continue;
        }
        if (esc === undefined || !'"\\/bfnrt'.includes(esc)) {
          this.fail(`invalid escape ${esc === undefined ? '\\' : `'\\${esc}'`} in string`);
        }
        this.pos += 2;
        continue;
      }
      this.pos++;
    }
    this.fail('unterminated string', start);
  }

  number(): void {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (!m || m[0] === '-') this.fail('invalid number');
    this.pos += m[0].length;
    const next = this.text[this.pos];
    if (next !== undefined && /[0-9.eE+-]/.test(next)) this.fail('invalid number');
  }
}

export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/** Returns where and why `text` is not valid JSON, or undefined when it is. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  const scanner = new Scanner(text);
  try {
    scanner.document();
    return undefined;
  } catch (err) {
    if (!(err instanceof Stop)) throw err;
    return { offset: err.offset, ...lineColumn(text, err.offset), message: err.message };
  }
}
