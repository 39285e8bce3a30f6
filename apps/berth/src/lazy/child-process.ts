// node:child_process as the CLI bundle sees it (see ./crypto.ts and tsup.config.ts): loaded at
// the first call. With it Node loads net, dgram and the stream machinery, and `state`, `list`,
// `--version` or `spec` never start a process. (A `util.promisify(execFile)` would need
// execFile's own promisify symbol: nothing in the bundle does that.)
import type * as ChildProcess from 'node:child_process';
import { createRequire } from 'node:module';

let loaded: typeof ChildProcess | undefined;
// a require the bundler leaves alone: this is Node's own node:child_process
const load = (): typeof ChildProcess =>
  (loaded ??= createRequire(import.meta.url)('node:child_process') as typeof ChildProcess);

/** `name` of node:child_process, loaded at the first call. */
function lazy<K extends keyof typeof ChildProcess>(name: K): (typeof ChildProcess)[K] {
  return ((...args: unknown[]) =>
    (load()[name] as (...a: unknown[]) => unknown)(...args)) as (typeof ChildProcess)[K];
}

export const execFile = lazy('execFile');
export const execFileSync = lazy('execFileSync');
export const spawn = lazy('spawn');
export const spawnSync = lazy('spawnSync');
