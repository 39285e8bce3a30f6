import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { BerthError } from '@berth/sys';

const MAX_LINKS = 255;

/**
 * Resolves `unsafe` as if `root` were `/`: symlinks are followed, but never out
 * of `root` (an absolute link target or `..` past the top stays inside), the way
 * a process chrooted into `root` would see it. Components that do not exist yet
 * are kept as they are. The result is a host path under `root`.
 */
export function resolveInRoot(root: string, unsafe: string): string {
  const rootAbs = posix.resolve(root);
  const pending = unsafe.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = posix.join(rootAbs, ...done, part);
    let target: string | undefined;
    try {
      if (lstatSync(host).isSymbolicLink()) target = readlinkSync(host);
    } catch {
      // does not exist (yet): nothing to follow
    }
    if (target === undefined) {
      done.push(part);
      continue;
    }
    if (++links > MAX_LINKS) {
      throw new BerthError(`resolve ${unsafe} in ${root}: too many levels of symbolic links`, {
        code: 'ELOOP',
        path: unsafe,
      });
    }
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
  }
  return posix.join(rootAbs, ...done);
}
