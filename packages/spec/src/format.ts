import type { Spec } from './types.js';

/** config.json text as `berth spec` writes it: 2-space indent, trailing newline. */
export function formatSpec(spec: Spec): string {
  return `${JSON.stringify(spec, null, 2)}\n`;
}
