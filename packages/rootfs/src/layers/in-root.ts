import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { hasErrno, O, openInRoot } from '@berth/sys';
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
    fd = openInRoot(dirfd, rel, flags);
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
