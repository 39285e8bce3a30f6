// node:fs/promises as the CLI bundle sees it (see ./crypto.ts and tsup.config.ts): loaded at the
// first call. Node loads streams, readline and fs watchers with it (2-4 ms of start-up on the
// development VM), for packages that import it at their top but use it off the hot path.

import type * as FsPromises from 'node:fs/promises';
import { createRequire } from 'node:module';

let loaded: typeof FsPromises | undefined;
// a require the bundler leaves alone: this is Node's own node:fs/promises
const load = (): typeof FsPromises =>
  (loaded ??= createRequire(import.meta.url)('node:fs/promises') as typeof FsPromises);

/** `name` of node:fs/promises, loaded at the first call. */
function lazy<K extends keyof typeof FsPromises>(name: K): (typeof FsPromises)[K] {
  return ((...args: unknown[]) =>
    (load()[name] as (...a: unknown[]) => unknown)(...args)) as (typeof FsPromises)[K];
}

// the same object as fs/promises' own
export { constants } from 'node:fs';
export const access = lazy('access');
export const appendFile = lazy('appendFile');
export const chmod = lazy('chmod');
export const chown = lazy('chown');
export const copyFile = lazy('copyFile');
export const cp = lazy('cp');
export const lchmod = lazy('lchmod');
export const lchown = lazy('lchown');
export const link = lazy('link');
export const lstat = lazy('lstat');
export const lutimes = lazy('lutimes');
export const mkdir = lazy('mkdir');
export const mkdtemp = lazy('mkdtemp');
export const open = lazy('open');
export const opendir = lazy('opendir');
export const readdir = lazy('readdir');
export const readFile = lazy('readFile');
export const readlink = lazy('readlink');
export const realpath = lazy('realpath');
export const rename = lazy('rename');
export const rm = lazy('rm');
export const rmdir = lazy('rmdir');
export const stat = lazy('stat');
export const statfs = lazy('statfs');
export const symlink = lazy('symlink');
export const truncate = lazy('truncate');
export const unlink = lazy('unlink');
export const utimes = lazy('utimes');
export const watch = lazy('watch');
export const writeFile = lazy('writeFile');
