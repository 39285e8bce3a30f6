import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { hasErrno, O, openat, openat2, RESOLVE, SysError } from '@berth/sys';
import { ImageRootfsError } from './errors.js';

/** The most of a file read this way (an image's /etc/passwd or /etc/group): more is an error. */
const LIMIT = 16 * 1024 * 1024;

/**
 * The contents of `rel` inside `root` (an unpacked layer, a container's copy of its image),
 * resolved as the container would see it: symlinks stay inside `root`
 * (openat2 RESOLVE_IN_ROOT; no magic links), never followed to the host's files. Only a
 * regular file is read (a fifo would block, a device would be the host's): undefined when
 * there is none. Where openat2 is missing, any symlink on the way counts as none.
 */
export function readFileInRoot(root: string, rel: string): Buffer | undefined {
  const dirfd = openSync(root, O.PATH | O.DIRECTORY | O.CLOEXEC);
  let fd = -1;
  try {
    const flags = O.RDONLY | O.NONBLOCK | O.NOCTTY;
    try {
      fd = openat2(dirfd, rel, { flags, resolve: RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS });
    } catch (e) {
      if (!hasErrno(e, 'ENOSYS')) throw e;
      fd = walkNoSymlinks(dirfd, rel, flags);
    }
    const st = fstatSync(fd);
    if (!st.isFile()) return undefined;
    if (st.size > LIMIT)
      throw new ImageRootfsError(
        'EBUNDLE',
        `${rel} in the image is ${st.size} bytes: more than ${LIMIT} is not read`,
        {
          op: 'read',
          path: rel,
        },
      );
    const buf = Buffer.alloc(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } catch (e) {
    if (hasErrno(e, 'ENOENT', 'ENOTDIR', 'ELOOP', 'EXDEV')) return undefined;
    throw e;
  } finally {
    if (fd >= 0) closeSync(fd);
    closeSync(dirfd);
  }
}

/** Each component opened with O_NOFOLLOW: a symlink anywhere fails (ELOOP, ENOTDIR). */
function walkNoSymlinks(dirfd: number, rel: string, flags: number): number {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw new SysError('openat', 2, rel); // ENOENT: never above the root
  let cur = dirfd;
  try {
    for (const [i, p] of parts.entries()) {
      const last = i === parts.length - 1;
      const next = openat(cur, p, last ? flags | O.NOFOLLOW : O.PATH | O.DIRECTORY | O.NOFOLLOW);
      if (cur !== dirfd) closeSync(cur);
      cur = next;
    }
    return cur;
  } catch (e) {
    if (cur !== dirfd) closeSync(cur);
    throw e;
  }
}
