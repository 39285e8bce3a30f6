import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  type Stats,
  unlinkSync,
} from 'node:fs';
import { SysError } from './errors.js';

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | 0o2000000; // O_CLOEXEC

/** The errno of a Node fs error, or undefined. */
function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function fail(op: string, err: unknown, path: string): never {
  if (err instanceof SysError) throw err;
  const e = err as NodeJS.ErrnoException;
  throw new SysError(op, typeof e.errno === 'number' ? -e.errno : 5, path);
}

/** How often one name may change kind under the removal before it gives up (something keeps swapping it). */
const MAX_RETRIES = 100;

/** The mount points at or below `dir` in this mount namespace. */
function mountsBelow(dir: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(Number.parseInt(o, 8)),
    );
    if (point === dir || point.startsWith(`${dir}/`)) out.push(point);
  }
  return out;
}

/**
 * Removes a directory tree that a container's processes may have written (a container's private copy of its
 * root filesystem, an overlay's upper directory, an image bundle's directory), without ever following a
 * symlink or leaving the tree, even while something inside is renaming directories and planting symlinks.
 *
 * `rm -rf` by path (Node's `rmSync`) checks that an entry is a directory and then lists and deletes
 * `dir/entry/...` by name: a process that swaps `entry` for a symlink to `/etc` in between gets the host's
 * files deleted. Here every directory is opened with O_NOFOLLOW and used by fd: its entries are listed
 * and removed through `/proc/self/fd/N/name` (the fd's own directory, wherever it has been moved; the last
 * component is never followed). A symlink planted in place of a directory is removed as the link it is. A
 * directory on another file system (a mount point) is never entered: the removal stops with EXDEV and leaves
 * it, so a mount left below the tree cannot have its contents deleted.
 *
 * A missing `path` is not an error. `path` itself is resolved by name: it must be a directory of the
 * caller's (its parent not writable by a container).
 */
export function removeTree(path: string): void {
  let top: Stats;
  try {
    top = lstatSync(path);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    fail('lstat', err, path);
  }
  if (!top.isDirectory()) {
    try {
      unlinkSync(path);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') fail('unlink', err, path);
    }
    return;
  }
  const below = mountsBelow(realpathSync(path));
  if (below.length > 0) throw new SysError(`remove (${below[0]} is a mount point below it)`, 16, path);
  let fd: number;
  try {
    fd = openSync(path, DIR_FLAGS);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    fail('open', err, path);
  }
  try {
    const st = fstatSync(fd);
    if (st.ino !== top.ino || st.dev !== top.dev) throw new SysError('open', 16, path); // EBUSY: replaced meanwhile
    removeContents(fd, st.dev, path);
  } finally {
    closeSync(fd);
  }
  try {
    rmdirSync(path);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') fail('rmdir', err, path);
  }
}

/** Empties the directory open as `fd` (on device `dev`); `where` names it in errors. */
function removeContents(fd: number, dev: number, where: string): void {
  const self = `/proc/self/fd/${fd}`;
  // a directory can be listed again after its subdirectories are gone: entries may have come and gone
  for (let pass = 0; ; pass++) {
    let names: string[];
    try {
      names = readdirSync(self);
    } catch (err) {
      fail('readdir', err, where);
    }
    if (names.length === 0) return;
    if (pass > MAX_RETRIES) throw new SysError('remove (it keeps being refilled)', 39, where); // ENOTEMPTY
    for (const name of names) removeEntry(self, dev, name, `${where}/${name}`, 0);
  }
}

function removeEntry(self: string, dev: number, name: string, where: string, retries: number): void {
  if (retries > MAX_RETRIES) throw new SysError('remove (it keeps changing)', 16, where);
  const again = () => removeEntry(self, dev, name, where, retries + 1);
  const at = `${self}/${name}`;
  // try it as a file first (most entries are); a directory answers EISDIR
  try {
    unlinkSync(at);
    return;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return;
    if (code !== 'EISDIR' && code !== 'EPERM') fail('unlink', err, where);
  }
  // an empty directory goes at once (it may be one this user cannot read: overlayfs' work/work is 000)
  try {
    rmdirSync(at);
    return;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') {
      again(); // swapped for a file or symlink meanwhile
      return;
    }
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') fail('rmdir', err, where);
  }
  let child: number;
  try {
    child = openSync(at, DIR_FLAGS);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return;
    // swapped for a symlink or a file since: remove that instead, by the same name
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      again();
      return;
    }
    fail('open', err, where);
  }
  try {
    if (fstatSync(child).dev !== dev) throw new SysError('open', 18, where); // EXDEV: a mount point
    removeContents(child, dev, where);
  } finally {
    closeSync(child);
  }
  try {
    rmdirSync(at);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR' || code === 'ENOTEMPTY') {
      again(); // swapped or refilled meanwhile
      return;
    }
    fail('rmdir', err, where);
  }
}
