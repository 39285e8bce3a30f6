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
  const problems = validateSpec(value);
  if (problems.length > 0) throw new SpecError(problems, file);
  return value as Spec;
}
