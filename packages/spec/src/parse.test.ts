import { describe, expect, it } from 'vitest';
import { defaultSpec } from './defaults.js';
import { SpecError } from './errors.js';
import { formatSpec } from './format.js';
import { findJsonSyntaxError } from './json-syntax.js';
import { parseSpec } from './parse.js';

function thrown(fn: () => unknown): SpecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SpecError);
    return err as SpecError;
  }
  throw new Error('expected a SpecError');
}

describe('parseSpec', () => {
  it('reads a config as runc does: null is absent, an empty namespace path is none, gid and I/O priority default to 0', () => {
    // biome-ignore lint/suspicious/noExplicitAny: a config as any JSON is, with nulls and gaps
    const spec = defaultSpec() as unknown as Record<string, any>;
    spec['linux'].timeOffsets = null;
    spec['linux'].namespaces[0].path = '';
    spec['process'].user = { uid: 0 };
    spec['process'].ioPriority = { class: 'IOPRIO_CLASS_IDLE' };
    const parsed = parseSpec(JSON.stringify(spec));
    expect('timeOffsets' in parsed.linux!).toBe(false);
    expect(parsed.linux!.namespaces![0]).toEqual({ type: spec['linux'].namespaces[0].type });
    expect(parsed.process!.user).toEqual({ uid: 0, gid: 0 });
    expect(parsed.process!.ioPriority).toEqual({ class: 'IOPRIO_CLASS_IDLE', priority: 0 });
  });

  it('returns the document when it is valid', () => {
    const spec = parseSpec(formatSpec(defaultSpec()), 'config.json');
    expect(spec).toEqual(defaultSpec());
  });

  it('accepts a leading byte order mark', () => {
    expect(parseSpec(`\uFEFF${formatSpec(defaultSpec())}`).ociVersion).toBe('1.2.0');
  });

  it('reports a JSON syntax error with file, line and column', () => {
    const text = '{\n  "ociVersion": "1.2.0",\n  "root": { "path": "rootfs" \n}';
    const err = thrown(() => parseSpec(text, '/b/config.json'));
    expect(err.code).toBe('EINVALIDSPEC');
    expect(err.file).toBe('/b/config.json');
    expect(err.op).toBe('parse');
    expect(err.problems).toEqual([
      { path: '', message: "invalid JSON: unexpected end of input, expected ',' or '}'", line: 4, column: 2 },
    ]);
    expect(err.message).toBe(
      "/b/config.json:4:2: invalid JSON: unexpected end of input, expected ',' or '}'",
    );
  });

  it('points at the offending character of a trailing comma', () => {
    const err = thrown(() => parseSpec('{\n  "ociVersion": "1.2.0",\n}\n', 'config.json'));
    expect(err.message).toBe("config.json:3:1: invalid JSON: trailing comma before '}'");
  });

  it('names the position without a file', () => {
    const err = thrown(() => parseSpec('{"a": tru}'));
    expect(err.file).toBeUndefined();
    expect(err.message).toBe("line 1 column 7: invalid JSON: unexpected 't', expected a value");
  });

  it('reports a single validation problem on one line', () => {
    const spec = defaultSpec() as unknown as { linux: { namespaces: { type: string }[] } };
    spec.linux.namespaces[2] = { type: 'foo' };
    const err = thrown(() => parseSpec(JSON.stringify(spec), 'config.json'));
    expect(err.message).toBe('config.json: linux.namespaces[2].type: "foo" is not a namespace type');
    expect(err.problems).toEqual([
      { path: 'linux.namespaces[2].type', message: '"foo" is not a namespace type' },
    ]);
  });

  it('collects multiple problems into one error', () => {
    const text = JSON.stringify({
      ociVersion: '1.2.0',
      root: { path: 7 },
      process: { args: [], cwd: '/' },
      linux: { namespaces: [{ type: 'pid' }, { type: 'pid' }] },
    });
    const err = thrown(() => parseSpec(text, 'config.json'));
    expect(err.problems).toHaveLength(3);
    expect(err.op).toBe('validate');
    expect(err.code).toBe('EINVALIDSPEC');
    expect(err.message).toBe(
      [
        'config.json: 3 problems',
        '  root.path: must be a string',
        '  process.args: must be a non-empty array of strings',
        '  linux.namespaces[1].type: "pid" is already listed at linux.namespaces[0]',
      ].join('\n'),
    );
  });

  it('labels problems without a file', () => {
    const err = thrown(() => parseSpec('[]'));
    expect(err.message).toBe('invalid spec: must be a JSON object');
  });
});

describe('findJsonSyntaxError', () => {
  const bad: [string, string, number, number][] = [
    ['', 'unexpected end of input, expected a value', 1, 1],
    ['{"a":1}}', "unexpected '}' after the JSON value", 1, 8],
    ["{'a':1}", "unexpected ''', expected a property name in double quotes", 1, 2],
    ['{"a" 1}', "unexpected '1', expected ':'", 1, 6],
    ['[1,]', "trailing comma before ']'", 1, 4],
    ['[1 2]', "unexpected '2', expected ',' or ']'", 1, 4],
    ['{"a":"x\ny"}', 'control character "\\n" in string', 1, 8],
    ['{"a":"\\q"}', "invalid escape '\\q' in string", 1, 7],
    ['{"a":"\\u12"}', 'invalid \\u escape in string', 1, 7],
    ['{"a":"open}', 'unterminated string', 1, 6],
    ['{"a":01}', 'invalid number', 1, 7],
    ['{"a":-}', 'invalid number', 1, 6],
    ['{"a":1.}', 'invalid number', 1, 7],
    ['{"a":NaN}', "unexpected 'N', expected a value", 1, 6],
    ['\n\n  {"a":[true,\n   fals]}', "unexpected 'f', expected a value", 4, 4],
  ];
  it.each(bad)('%j', (text, message, line, column) => {
    expect(findJsonSyntaxError(text)).toMatchObject({ message, line, column });
    expect(() => JSON.parse(text)).toThrow();
  });

  it('agrees with JSON.parse on random corruptions of a real config', () => {
    const base = formatSpec(defaultSpec({ rootless: true }));
    const alphabet = '{}[]:,"\\ 0-1.eE+tfnu\n\ta';
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    let invalid = 0;
    for (let i = 0; i < 3000; i++) {
      const at = rand(base.length);
      const op = rand(3);
      const ch = alphabet[rand(alphabet.length)] ?? '';
      const text =
        op === 0
          ? base.slice(0, at) + base.slice(at + 1)
          : base.slice(0, at) + ch + base.slice(op === 1 ? at : at + 1);
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      const found = findJsonSyntaxError(text);
      expect(
        found === undefined,
        `mutation ${i}: ${JSON.stringify(text.slice(Math.max(0, at - 10), at + 10))}`,
      ).toBe(parses);
      if (!parses) invalid++;
    }
    // the corpus must actually exercise the error paths
    expect(invalid).toBeGreaterThan(1000);
  });
});
