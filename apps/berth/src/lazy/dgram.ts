// node:dgram as the CLI bundle sees it (see ./crypto.ts and tsup.config.ts): loaded at the first
// call. Only the check that a published UDP port is free uses it; `run IMAGE` without `-p` does not.
import type * as Dgram from 'node:dgram';
import { createRequire } from 'node:module';

let loaded: typeof Dgram | undefined;
// a require the bundler leaves alone: this is Node's own node:dgram
const load = (): typeof Dgram => (loaded ??= createRequire(import.meta.url)('node:dgram') as typeof Dgram);

export const createSocket = ((...args: Parameters<typeof Dgram.createSocket>) =>
  load().createSocket(...args)) as typeof Dgram.createSocket;
