import { SpecError } from './errors.js';
import { findJsonSyntaxError } from './json-syntax.js';
import type { Spec } from './types.js';
import { validateSpec } from './validate.js';

/**
 * Parses and validates config.json text. Throws SpecError with the line and
 * column of a JSON syntax error, or with every validation problem at once.
 */
export function parseSpec(text: string, file?: string): Spec {
  // editors on some platforms prepend a BOM; JSON.parse would reject the whole file for it
  const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    const found = findJsonSyntaxError(json);
    const message = found ? found.message : (err as Error).message.toLowerCase();
    throw new SpecError(
      [{ path: '', message: `invalid JSON: ${message}`, line: found?.line ?? 1, column: found?.column ?? 1 }],
      file,
    );
  }
  const problems = validateSpec(normalizeSpec(value));
  if (problems.length > 0) throw new SpecError(problems, file);
  return value as Spec;
}

/**
 * What runc (Go's encoding/json) reads a config as, for the defaults every runc user relies
 * on: a `null` is an absent field, an empty namespace `path` is none (a new namespace), a
 * `process.user` without `gid` has gid 0, a `process.ioPriority` without `priority` has 0.
 * Changes `value` in place and returns it.
 */
export function normalizeSpec<T>(value: T): T {
  dropNulls(value);
  const v = value as {
    process?: { user?: Record<string, unknown>; ioPriority?: Record<string, unknown> };
    linux?: { namespaces?: unknown };
  };
  if (!isObject(v)) return value;
  if (isObject(v.process)) normalizeProcess(v.process);
  if (isObject(v.linux) && Array.isArray(v.linux.namespaces))
    for (const ns of v.linux.namespaces) if (isObject(ns) && ns['path'] === '') delete ns['path'];
  return value;
}

/** `normalizeSpec` for a process object alone (`berth exec --process`). */
export function normalizeProcess<T>(proc: T): T {
  dropNulls(proc);
  const p = proc as { user?: unknown; ioPriority?: unknown };
  if (!isObject(p)) return proc;
  if (isObject(p.user) && p.user['username'] === undefined && typeof p.user['uid'] === 'number')
    p.user['gid'] ??= 0;
  if (isObject(p.ioPriority) && p.ioPriority['class'] !== undefined) p.ioPriority['priority'] ??= 0;
  return proc;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function dropNulls(v: unknown): void {
  if (Array.isArray(v)) {
    for (const x of v) dropNulls(x);
  } else if (isObject(v)) {
    for (const k of Object.keys(v)) {
      if (v[k] === null) delete v[k];
      else dropNulls(v[k]);
    }
  }
}
