// Small, allocation-light helpers the validators share. Each helper reads one
// field of a parent object, reports a problem with the field's JSON path when it
// is wrong, and returns the value only when it has the right type, so callers can
// keep descending without re-checking.

import type { SpecProblem } from './types.js';

export type JsonObject = Record<string, unknown>;

export class Problems {
  readonly list: SpecProblem[] = [];
  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** JSON path of a property or array element below `base`. */
export function at(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  if (!IDENT.test(key)) return `${base}[${JSON.stringify(key)}]`;
  return base === '' ? key : `${base}.${key}`;
}

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function show(value: unknown): string {
  return JSON.stringify(value) ?? String(value);
}

interface FieldOpts {
  required?: boolean;
}

function present(p: Problems, parent: JsonObject, key: string, path: string, opts?: FieldOpts): boolean {
  if (parent[key] !== undefined) return true;
  if (opts?.required) p.add(path, 'is required');
  return false;
}

export function objectField(
  p: Problems,
  parent: JsonObject,
  key: string,
  base: string,
  opts?: FieldOpts,
): JsonObject | undefined {
  const path = at(base, key);
  if (!present(p, parent, key, path, opts)) return undefined;
  const value = parent[key];
  if (!isObject(value)) {
    p.add(path, 'must be an object');
    return undefined;
  }
  return value;
}

export function boolField(
  p: Problems,
  parent: JsonObject,
  key: string,
  base: string,
  opts?: FieldOpts,
): void {
  const path = at(base, key);
  if (!present(p, parent, key, path, opts)) return;
  if (typeof parent[key] !== 'boolean') p.add(path, 'must be a boolean');
}

export interface StringOpts extends FieldOpts {
  nonEmpty?: boolean;
  absolute?: boolean;
  /** allowed values, with `what` naming them in the message: `"x" is not ${what}` */
  oneOf?: readonly string[];
  what?: string;
  pattern?: RegExp;
  patternText?: string;
}

export function checkString(
  p: Problems,
  value: unknown,
  path: string,
  opts: StringOpts = {},
): value is string {
  if (typeof value !== 'string') {
    p.add(path, 'must be a string');
    return false;
  }
  if (opts.oneOf && !opts.oneOf.includes(value)) {
    p.add(path, `${show(value)} is not ${opts.what ?? `one of ${opts.oneOf.join(', ')}`}`);
    return false;
  }
  if (opts.absolute && !value.startsWith('/')) {
    p.add(path, `${show(value)} must be an absolute path`);
    return false;
  }
  if (opts.nonEmpty && value === '') {
    p.add(path, 'must not be empty');
    return false;
  }
  if (opts.pattern && !opts.pattern.test(value)) {
    p.add(path, `${show(value)} ${opts.patternText ?? `does not match ${opts.pattern}`}`);
    return false;
  }
  return true;
}

export function stringField(
  p: Problems,
  parent: JsonObject,
  key: string,
  base: string,
  opts?: StringOpts,
): string | undefined {
  const path = at(base, key);
  if (!present(p, parent, key, path, opts)) return undefined;
  const value = parent[key];
  return checkString(p, value, path, opts) ? value : undefined;
}

export type IntKind = 'int' | 'int32' | 'int64' | 'uint16' | 'uint32' | 'uint64';

const RANGES: Record<IntKind, [number, number]> = {
  int: [-(2 ** 63), 2 ** 63],
  int64: [-(2 ** 63), 2 ** 63],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint16: [0, 65535],
  uint32: [0, 2 ** 32 - 1],
  // 2**64 - 1 is not representable: a parsed 18446744073709551615 becomes 2**64
  uint64: [0, 2 ** 64],
};

export interface IntOpts extends FieldOpts {
  min?: number;
  max?: number;
}

function rangeText(kind: IntKind, min: number, max: number): string {
  const [kmin, kmax] = RANGES[kind];
  if (min === kmin && max === kmax) {
    if (kind === 'uint64') return 'must be a non-negative integer';
    if (kind === 'int' || kind === 'int64') return 'must be an integer';
  }
  if (max === kmax && (kind === 'uint64' || kind === 'int64' || kind === 'int')) {
    if (min === 0) return 'must be a non-negative integer';
    if (min === 1) return 'must be a positive integer';
    return `must be an integer of at least ${min}`;
  }
  return `must be an integer between ${min} and ${max}`;
}

export function checkInt(
  p: Problems,
  value: unknown,
  path: string,
  kind: IntKind,
  opts: IntOpts = {},
): boolean {
  const [kmin, kmax] = RANGES[kind];
  const min = opts.min ?? kmin;
  const max = opts.max ?? kmax;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    p.add(path, rangeText(kind, min, max));
    return false;
  }
  return true;
}

export function intField(
  p: Problems,
  parent: JsonObject,
  key: string,
  base: string,
  kind: IntKind,
  opts?: IntOpts,
): number | undefined {
  const path = at(base, key);
  if (!present(p, parent, key, path, opts)) return undefined;
  const value = parent[key];
  return checkInt(p, value, path, kind, opts) ? (value as number) : undefined;
}

/** Checks that the field is an array and runs `each` on every element. */
export function arrayField(
  p: Problems,
  parent: JsonObject,
  key: string,
  base: string,
  each: (item: unknown, path: string, index: number) => void,
  opts?: FieldOpts & { nonEmpty?: boolean; message?: string },
): unknown[] | undefined {
  const path = at(base, key);
  if (!present(p, parent, key, path, opts)) return undefined;
  const value = parent[key];
  if (!Array.isArray(value) || (opts?.nonEmpty && value.length === 0)) {
    p.add(path, opts?.message ?? (opts?.nonEmpty ? 'must be a non-empty array' : 'must be an array'));
    return undefined;
  }
  for (let i = 0; i < value.length; i++) each(value[i], at(path, i), i);
  return value;
}

export function stringArrayField(
  p: Problems,
  parent: JsonObject,
  key: string,
  base: string,
  opts?: FieldOpts & StringOpts & { nonEmptyArray?: boolean },
): string[] | undefined {
  const path = at(base, key);
  if (!present(p, parent, key, path, opts)) return undefined;
  const value = parent[key];
  if (!Array.isArray(value) || (opts?.nonEmptyArray && value.length === 0)) {
    p.add(path, opts?.nonEmptyArray ? 'must be a non-empty array of strings' : 'must be an array of strings');
    return undefined;
  }
  const itemOpts: StringOpts = { ...opts, required: false };
  let ok = true;
  value.forEach((item, i) => {
    if (!checkString(p, item, at(path, i), itemOpts)) ok = false;
  });
  return ok ? (value as string[]) : undefined;
}

/** An object used as a map (sysctl, annotations, rdma): runs `each` on every entry. */
export function mapField(
  p: Problems,
  parent: JsonObject,
  key: string,
  base: string,
  each: (value: unknown, path: string, name: string) => void,
): JsonObject | undefined {
  const obj = objectField(p, parent, key, base);
  if (!obj) return undefined;
  const path = at(base, key);
  for (const [name, value] of Object.entries(obj)) each(value, at(path, name), name);
  return obj;
}

export function stringMapField(p: Problems, parent: JsonObject, key: string, base: string): void {
  mapField(p, parent, key, base, (value, path) => {
    if (typeof value !== 'string') p.add(path, 'must be a string');
  });
}

/** Validates an element that must be an object; returns it when it is one. */
export function asObject(p: Problems, value: unknown, path: string): JsonObject | undefined {
  if (!isObject(value)) {
    p.add(path, 'must be an object');
    return undefined;
  }
  return value;
}
