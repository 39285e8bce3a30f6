// node:net as the CLI bundle sees it (see ./crypto.ts and tsup.config.ts): loaded at the first
// call, so that a command that never opens a socket (`state`, `list`, `spec`) does not load it
// and the stream machinery behind it.
import { createRequire } from 'node:module';
import type * as Net from 'node:net';

let loaded: typeof Net | undefined;
// a require the bundler leaves alone: this is Node's own node:net
const load = (): typeof Net => (loaded ??= createRequire(import.meta.url)('node:net') as typeof Net);

/** `name` of node:net, loaded at the first call. */
function lazy<K extends keyof typeof Net>(name: K): (typeof Net)[K] {
  return ((...args: unknown[]) => (load()[name] as (...a: unknown[]) => unknown)(...args)) as (typeof Net)[K];
}

export const connect = lazy('connect');
export const createServer = lazy('createServer');
/**
 * `new Socket(…)` makes one of node:net's own (a constructor that returns an object gives that
 * object to `new`); `instanceof Socket` would not hold, and nothing in the bundle asks it.
 */
export const Socket = function Socket(...args: ConstructorParameters<typeof Net.Socket>) {
  return new (load().Socket)(...args);
} as unknown as typeof Net.Socket;
