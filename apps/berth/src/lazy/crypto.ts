// node:crypto as the CLI bundle sees it (tsup.config.ts points every `node:crypto` import of the
// bundled packages here): loaded at the first call, not when a module that imports it is
// initialised. Node compiles some twenty internal modules for node:crypto (4-14 ms of a command's
// start-up on the development VM), and most commands never hash anything. A name missing here
// fails the build.

import type * as Crypto from 'node:crypto';
import { createRequire } from 'node:module';

let loaded: typeof Crypto | undefined;
// a require the bundler leaves alone: this is Node's own node:crypto
const load = (): typeof Crypto => (loaded ??= createRequire(import.meta.url)('node:crypto') as typeof Crypto);

/** `name` of node:crypto, loaded at the first call. */
function lazy<K extends keyof typeof Crypto>(name: K): (typeof Crypto)[K] {
  return ((...args: unknown[]) =>
    (load()[name] as (...a: unknown[]) => unknown)(...args)) as (typeof Crypto)[K];
}

export const createHash = lazy('createHash');
export const randomBytes = lazy('randomBytes');
