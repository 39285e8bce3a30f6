import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { BerthError } from '@berth/sys';

const MAX_LINKS = 255;

/**
 * Resolves `unsafe` as if `root` were `/`: symlinks are followed, but never out
 * of `root` (an absolute link target or `..` past the top stays inside), the way
 * a process chrooted into `root` would see it. Components that do not exist yet
 * are kept as they are. The result is a host path under `root`.
 *
 * `views` are the directories to look for links in, top first, when `root` is
 * not populated yet: the layers of an overlay that will be mounted on it.
 */
export function resolveInRoot(root: string, unsafe: string, views: readonly string[] = []): string {
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
    let target: string | undefined;
    // the first view that has the path decides, as the top layer of an overlay does
    for (const view of views.length ? views : [rootAbs]) {
      const host = posix.join(view, ...done, part);
      try {
        if (lstatSync(host).isSymbolicLink()) target = readlinkSync(host);
        break;
      } catch {
        // not in this view (or does not exist yet): nothing to follow here
      }
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
