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

/** How many directory listings one removal may make before it gives up (something keeps refilling the tree). */
const MAX_LISTINGS = 10_000_000;

/**
 * Empties the directory open as `top` (on device `dev`); `where` names it in errors. Iterative, with
 * one directory open at a time: a container can nest directories thousands deep in its own layer
 * (`mkdir x; mv d x/; mv x d` needs no long path), which a recursion would take down with the stack
 * or the fd limit. Going down, a directory is opened by name in the one above (O_NOFOLLOW); going up,
 * the one above is opened as `..` of the current one and must be the same directory (device and
 * inode) that was left: a tree rearranged meanwhile stops the removal, it never leads elsewhere.
 */
function removeContents(top: number, dev: number, where: string): void {
  const topIno = fstatSync(top).ino;
  // the way down from `top`: each level's name in the one above, and the inode of the one above
  const trail: { name: string; parentIno: number }[] = [];
  const here = () => {
    const names = trail.map((t) => t.name);
    return names.length > 8
      ? `${where}/${names.slice(0, 4).join('/')}/…/${names.slice(-3).join('/')}`
      : [where, ...names].join('/');
  };
  let cur = top;
  let curIno = topIno;
  let listings = 0;
  // the same entries listed again after a pass that removed them all: they do not go (a file system
  // that answers ENOENT for an entry it lists); counted per directory, an error after MAX_RETRIES
  let previous = '';
  let stuck = 0;
  try {
    for (;;) {
      if (++listings > MAX_LISTINGS) throw new SysError('remove (it keeps being refilled)', 39, here()); // ENOTEMPTY
      const self = `/proc/self/fd/${cur}`;
      let names: string[];
      try {
        names = readdirSync(self);
      } catch (err) {
        fail('readdir', err, here());
      }
      let down: { fd: number; ino: number; name: string } | undefined;
      for (const name of names) {
        down = removeEntry(self, dev, name, `${here()}/${name}`, 0);
        if (down) break;
      }
      if (down) {
        trail.push({ name: down.name, parentIno: curIno });
        previous = '';
        stuck = 0;
        if (cur !== top) closeSync(cur);
        cur = down.fd;
        curIno = down.ino;
        continue;
      }
      if (names.length > 0) {
        // everything listed went: list again (entries may have come)
        const listed = names.join('\0');
        stuck = listed === previous ? stuck + 1 : 0;
        previous = listed;
        if (stuck > MAX_RETRIES) throw new SysError(`remove (${names.length} entries do not go)`, 39, here()); // ENOTEMPTY
        continue;
      }
      previous = '';
      stuck = 0;
      const up = trail.pop();
      if (up === undefined) return; // the top is empty
      const parent = openSync(`${self}/..`, DIR_FLAGS);
      const st = fstatSync(parent);
      if (st.dev !== dev || st.ino !== up.parentIno) {
        closeSync(parent);
        throw new SysError('remove (the tree was moved while being removed)', 16, here()); // EBUSY
      }
      closeSync(cur);
      cur = parent;
      curIno = st.ino;
      try {
        rmdirSync(`/proc/self/fd/${cur}/${up.name}`);
      } catch (err) {
        const code = errnoOf(err);
        // gone, refilled or swapped meanwhile: the next listing sees what is there now
        if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR')
          fail('rmdir', err, `${here()}/${up.name}`);
      }
    }
  } finally {
    if (cur !== top) closeSync(cur);
  }
}

/**
 * Removes the entry `name` of the directory at `self` (/proc/self/fd/N): a file or an empty directory
 * goes; a directory with something in it is opened (O_NOFOLLOW, same device) and returned, to be
 * emptied first.
 */
function removeEntry(
  self: string,
  dev: number,
  name: string,
  where: string,
  retries: number,
): { fd: number; ino: number; name: string } | undefined {
  if (retries > MAX_RETRIES) throw new SysError('remove (it keeps changing)', 16, where);
  const at = `${self}/${name}`;
  // try it as a file first (most entries are); a directory answers EISDIR
  try {
    unlinkSync(at);
    return undefined;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return undefined;
    if (code !== 'EISDIR' && code !== 'EPERM') fail('unlink', err, where);
  }
  // an empty directory goes at once (it may be one this user cannot read: overlayfs' work/work is 000)
  try {
    rmdirSync(at);
    return undefined;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') return removeEntry(self, dev, name, where, retries + 1); // swapped meanwhile
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST') fail('rmdir', err, where);
  }
  let child: number;
  try {
    child = openSync(at, DIR_FLAGS);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') return undefined;
    // swapped for a symlink or a file since: remove that instead, by the same name
    if (code === 'ELOOP' || code === 'ENOTDIR') return removeEntry(self, dev, name, where, retries + 1);
    fail('open', err, where);
  }
  const st = fstatSync(child);
  if (st.dev !== dev) {
    closeSync(child);
    throw new SysError('open', 18, where); // EXDEV: a mount point
  }
  return { fd: child, ino: st.ino, name };
}
