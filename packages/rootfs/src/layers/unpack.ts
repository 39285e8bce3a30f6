import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  fchmodSync,
  fchownSync,
  fstatSync,
  futimesSync,
  mkdirSync,
  readdirSync,
  writeSync,
} from 'node:fs';
import { posix } from 'node:path';
import type { TarEntry } from '@berth/image';
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  fchmodat,
  fchownat,
  fsetxattr,
  hasErrno,
  linkat,
  lsetxattr,
  mkdirat,
  mknodat,
  O,
  openat,
  openat2,
  RESOLVE,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  symlinkat,
  unlinkat,
  utimensat,
} from '@berth/sys';
import { ImageRootfsError } from './errors.js';
import { entryPath, linkTargetPath } from './path.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * Bounds on what one layer may unpack to. The defaults are far above any real image and stop a hostile
 * layer (a decompression bomb, millions of empty files) before it fills the disk.
 */
export interface UnpackLimits {
  /** tar entries, whiteouts and directories included (default 4 000 000) */
  maxEntries?: number;
  /** bytes of one regular file (default 64 GiB) */
  maxEntrySize?: number;
  /** bytes of regular file data in the whole layer (default 256 GiB) */
  maxTotalSize?: number;
  /**
   * uncompressed tar bytes per compressed byte (default 2000), checked once the tar stream passes
   * `ratioFloor` bytes. gzip cannot exceed about 1032:1, so the default only stops zstd bombs; `maxTotalSize`
   * bounds gzip ones.
   */
  maxCompressionRatio?: number;
  /** uncompressed bytes before the ratio is checked (default 1 GiB) */
  ratioFloor?: number;
}

export const DEFAULT_UNPACK_LIMITS: Required<UnpackLimits> = {
  maxEntries: 4_000_000,
  maxEntrySize: 64 * 2 ** 30,
  maxTotalSize: 256 * 2 ** 30,
  maxCompressionRatio: 2000,
  ratioFloor: 2 ** 30,
};

export interface UnpackOptions {
  /**
   * `overlay` (default): keep whiteouts in the form overlayfs reads from a lower layer (a 0/0 character device,
   * `trusted.overlay.opaque=y`), so each layer unpacks once into its own directory.
   * `apply`: apply them to what is already in `dir` (delete), for flattening layers into one tree.
   */
  whiteouts?: 'overlay' | 'apply';
  /** when set, the uncompressed stream must hash to this DiffID, else the unpack fails */
  diffId?: string;
  /** chown entries to their uid/gid (default: when running as root) */
  sameOwner?: boolean;
  /** override any of DEFAULT_UNPACK_LIMITS */
  limits?: UnpackLimits;
}

export interface UnpackStats {
  entries: number;
  /** bytes of regular file data written */
  bytes: number;
  whiteouts: number;
  /** xattrs not applied: by policy (see `xattrPolicy`) or because the file system has no xattr support */
  skippedXattrs: number;
  diffId: string;
}

/**
 * What happens to an extended attribute a layer carries (pax `SCHILY.xattr.*`):
 * - `apply`: `user.*`, `security.capability` (file capabilities such as ping's cap_net_raw are part of images:
 *   containers/storage, containerd and umoci keep them; the container's bounding set still limits them) and the
 *   POSIX ACLs `system.posix_acl_access`/`system.posix_acl_default`.
 * - `reject` (the layer fails, EUNSAFE): overlayfs' own `trusted.overlay.*` and `user.overlay.*`. berth
 *   mounts unpacked layers as overlay lower dirs, where these would forge opaque dirs, redirects and
 *   metacopy origins; berth writes `trusted.overlay.opaque` itself, from `.wh..wh..opq` markers only.
 * - `skip` (counted in `skippedXattrs`): every other `security.*` (SELinux labels are the host policy's to
 *   set, IMA/EVM signatures belong to the host's keyrings, as umoci ignores `security.selinux`), every other
 *   `trusted.*` (meaningful only to privileged host processes) and any other namespace.
 */
export function xattrPolicy(name: string): 'apply' | 'reject' | 'skip' {
  if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) return 'reject';
  if (name.startsWith('user.')) return 'apply';
  if (name === 'security.capability') return 'apply';
  if (name === 'system.posix_acl_access' || name === 'system.posix_acl_default') return 'apply';
  return 'skip';
}

function fail(code: 'EUNSAFE' | 'EUNPACK', name: string, why: string, cause?: unknown): ImageRootfsError {
  return new ImageRootfsError(code, `layer entry ${JSON.stringify(name)}: ${why}`, {
    op: 'unpack layer',
    path: name,
    ...(cause !== undefined ? { cause } : {}),
  });
}

function limit(what: string, option: keyof UnpackLimits, value: number): ImageRootfsError {
  return new ImageRootfsError(
    'ELIMIT',
    `layer ${what} (limits.${option} is ${value}; raise it if the image is trusted)`,
    { op: 'unpack layer' },
  );
}

// O_EXCL never follows a symlink and O_NOFOLLOW says so twice: whatever is at the name is refused, not written
const CREATE = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW;
// a directory that is verified to be one: a symlink in its place fails (ENOTDIR), it is never followed
const DIR = O.PATH | O.DIRECTORY | O.NOFOLLOW;
const BENEATH = RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS;
/** directory fds kept open for the entries that follow; tar lists a directory's entries together */
const DIR_CACHE = 256;

interface QueuedDir {
  entry: TarEntry;
  dev: number;
  ino: number;
}

/**
 * Every name is created, changed and removed relative to a directory fd that was opened without following
 * symlinks, from the layer root down: no path is ever checked first and used later, and no call follows a
 * symlink a layer made. Entries are written with synchronous calls on purpose: a layer is thousands of small
 * files, and every fs/promises call is a round trip through libuv's thread pool that costs more than the work.
 */
class Unpacker {
  readonly #rootFd: number;
  readonly #apply: boolean;
  readonly #owner: boolean;
  readonly #limits: Required<UnpackLimits>;
  /** verified directory fds (O_PATH) by path relative to the root, least recently used first */
  readonly #dirs = new Map<string, number>();
  /**
   * Directory metadata is applied last (creating children would reset mtimes), through an fd re-opened beneath
   * the root without following symlinks and checked to be the same inode; a removed path drops its entry.
   */
  readonly #dirMeta = new Map<string, QueuedDir>();
  /** paths this layer created, so an opaque marker only hides what lower layers had (apply mode) */
  readonly #created = new Set<string>();
  stats = { entries: 0, bytes: 0, whiteouts: 0, skippedXattrs: 0 };

  constructor(rootFd: number, opts: UnpackOptions) {
    this.#rootFd = rootFd;
    this.#apply = opts.whiteouts === 'apply';
    this.#owner = opts.sameOwner ?? process.getuid?.() === 0;
    this.#limits = { ...DEFAULT_UNPACK_LIMITS, ...opts.limits };
  }

  get limits(): Required<UnpackLimits> {
    return this.#limits;
  }

  close(): void {
    for (const fd of this.#dirs.values()) closeSync(fd);
    this.#dirs.clear();
  }

  /**
   * The fd of directory `rel`, opened from its parent's fd with O_NOFOLLOW|O_DIRECTORY; missing directories
   * are created (mode 0755, as tar does for implied parents). A symlink or a file on the way is an error.
   */
  #dir(name: string, rel: string, create = true): number {
    if (rel === '.') return this.#rootFd;
    const cached = this.#dirs.get(rel);
    if (cached !== undefined) {
      this.#dirs.delete(rel);
      this.#dirs.set(rel, cached);
      return cached;
    }
    const parent = this.#dir(name, posix.dirname(rel), create);
    const base = posix.basename(rel);
    let fd: number;
    try {
      fd = openat(parent, base, DIR);
    } catch (err) {
      if (!create || !hasErrno(err, 'ENOENT')) throw this.#notDir(name, rel, err);
      mkdirat(parent, base, 0o755);
      if (this.#apply) this.#created.add(rel);
      fd = openat(parent, base, DIR);
    }
    this.#dirs.set(rel, fd);
    return fd;
  }

  /**
   * Closes the least recently used directory fds beyond DIR_CACHE. Only between entries: an entry's own calls
   * hold fds from #dir, which must stay open until it is done.
   */
  #trim(): void {
    while (this.#dirs.size > DIR_CACHE) {
      const [oldest, oldFd] = this.#dirs.entries().next().value as [string, number];
      this.#dirs.delete(oldest);
      closeSync(oldFd);
    }
  }

  #notDir(name: string, rel: string, err: unknown): Error {
    if (hasErrno(err, 'ENOTDIR', 'ELOOP')) {
      // for the message only: the open above already refused it
      let what = 'not a directory';
      try {
        if (
          readdirSync(`/proc/self/fd/${this.#dir(name, posix.dirname(rel), false)}`, { withFileTypes: true })
            .find((d) => d.name === posix.basename(rel))
            ?.isSymbolicLink()
        )
          what = 'a symlink: the entry would be written outside its directory';
      } catch {
        // the plain message then
      }
      return fail('EUNSAFE', name, `parent ${rel} is ${what}`, err);
    }
    return err as Error;
  }

  /** Forgets cached fds and queued metadata of `rel` and, when it was a directory, of everything below it. */
  #forget(rel: string, wasDir: boolean): void {
    this.#dirMeta.delete(rel);
    this.#created.delete(rel);
    const fd = this.#dirs.get(rel);
    if (fd !== undefined) {
      closeSync(fd);
      this.#dirs.delete(rel);
    }
    if (!wasDir) return;
    const prefix = rel === '.' ? '' : `${rel}/`;
    for (const [d, dfd] of this.#dirs) {
      if (d.startsWith(prefix)) {
        closeSync(dfd);
        this.#dirs.delete(d);
      }
    }
    for (const d of this.#dirMeta.keys()) if (d.startsWith(prefix)) this.#dirMeta.delete(d);
    for (const d of this.#created) if (d.startsWith(prefix)) this.#created.delete(d);
  }

  /** Removes `base` in directory fd `pfd`, recursively, without following anything; absent is fine. */
  #remove(pfd: number, base: string, rel: string): void {
    try {
      unlinkat(pfd, base, 0);
      this.#forget(rel, false);
      return;
    } catch (err) {
      if (hasErrno(err, 'ENOENT')) return;
      if (!hasErrno(err, 'EISDIR', 'EPERM')) throw err;
    }
    this.#forget(rel, true);
    this.#removeTree(pfd, base);
  }

  #removeTree(pfd: number, base: string): void {
    const fd = openat(pfd, base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
    try {
      for (const d of readdirSync(`/proc/self/fd/${fd}`, { withFileTypes: true })) {
        if (d.isDirectory()) this.#removeTree(fd, d.name);
        else unlinkat(fd, d.name, 0);
      }
    } finally {
      closeSync(fd);
    }
    unlinkat(pfd, base, AT_REMOVEDIR);
  }

  /** Runs `create`; when something is in the way, removes it (a later entry replaces an earlier one) and retries. */
  #replace<T>(pfd: number, base: string, rel: string, create: () => T): T {
    try {
      return create();
    } catch (err) {
      // mknod-made nodes and symlinks fail O_NOFOLLOW opens with ELOOP rather than EEXIST: same meaning here
      if (!hasErrno(err, 'EEXIST', 'ELOOP')) throw err;
    }
    this.#remove(pfd, base, rel);
    return create();
  }

  /** The xattrs of an entry that policy lets through; a forbidden one fails the layer. */
  #xattrs(entry: TarEntry): [string, Buffer][] {
    if (entry.xattrs.size === 0) return [];
    const out: [string, Buffer][] = [];
    for (const [name, value] of entry.xattrs) {
      const p = xattrPolicy(name);
      if (p === 'reject') {
        throw fail(
          'EUNSAFE',
          entry.name,
          `carries the xattr ${name}: overlay's own attributes never come from a layer`,
        );
      }
      if (p === 'skip') this.stats.skippedXattrs++;
      else out.push([name, value]);
    }
    return out;
  }

  #setXattr(set: () => void): void {
    try {
      set();
    } catch (err) {
      // a file system without xattrs: skipped and counted, as containers/storage does
      if (!hasErrno(err, 'ENOTSUP')) throw err;
      this.stats.skippedXattrs++;
    }
  }

  async apply(entry: TarEntry, body: AsyncIterable<Buffer>): Promise<void> {
    this.#trim();
    if (++this.stats.entries > this.#limits.maxEntries) {
      throw limit(`has more than ${this.#limits.maxEntries} entries`, 'maxEntries', this.#limits.maxEntries);
    }
    const rel = entryPath(entry.name);
    // policy is checked before anything is made, for the root entry too
    const xattrs = this.#xattrs(entry);
    // the layer root's own metadata is not applied: the directory is berth's (a store or snapshot dir)
    if (rel === '.') return;
    const parent = posix.dirname(rel);
    const base = posix.basename(rel);
    const pfd = this.#dir(entry.name, parent);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.stats.whiteouts++;
      if (base === OPAQUE_MARKER) return this.#opaque(pfd, parent);
      const hidden = base.slice(WHITEOUT_PREFIX.length);
      if (hidden === '' || hidden === '.' || hidden === '..')
        throw fail('EUNSAFE', entry.name, 'whiteout names no file');
      this.#remove(pfd, hidden, posix.join(parent, hidden));
      if (!this.#apply) mknodat(pfd, hidden, S_IFCHR | 0o000, 0, 0);
      return;
    }
    if (this.#apply) this.#created.add(rel);
    switch (entry.type) {
      case 'dir':
        return this.#directory(entry, pfd, base, rel, xattrs);
      case 'file':
        return this.#file(entry, pfd, base, rel, body, xattrs);
      case 'link': {
        const target = linkTargetPath(entry.name, entry.linkname);
        if (target === rel) return;
        if (target.startsWith(`${rel}/`)) {
          throw fail(
            'EUNPACK',
            entry.name,
            `hard link target ${target} is inside the path the link replaces`,
          );
        }
        let tfd: number;
        try {
          tfd = this.#dir(entry.name, posix.dirname(target), false);
          const probe = openat(tfd, posix.basename(target), O.PATH | O.NOFOLLOW);
          let isDir: boolean;
          try {
            isDir = fstatSync(probe).isDirectory();
          } finally {
            closeSync(probe);
          }
          if (isDir) throw new Error('a directory');
        } catch (err) {
          if (err instanceof ImageRootfsError) throw err;
          throw fail('EUNPACK', entry.name, `hard link target ${target} is not a file earlier in the layer`);
        }
        const tbase = posix.basename(target);
        // linkat without AT_SYMLINK_FOLLOW links a symlink itself; a hard link shares the target's metadata
        this.#replace(pfd, base, rel, () => linkat(tfd, tbase, pfd, base, 0));
        return;
      }
      case 'symlink':
        // the target is never followed here; it is resolved inside the container at run time
        this.#replace(pfd, base, rel, () => symlinkat(entry.linkname, pfd, base));
        return this.#meta(entry, pfd, base, xattrs, false);
      case 'char':
      case 'block':
      case 'fifo': {
        const kind = entry.type === 'char' ? S_IFCHR : entry.type === 'block' ? S_IFBLK : S_IFIFO;
        this.#replace(pfd, base, rel, () =>
          mknodat(pfd, base, kind | (entry.mode & 0o777), entry.devmajor, entry.devminor),
        );
        return this.#meta(entry, pfd, base, xattrs, true);
      }
    }
  }

  #directory(entry: TarEntry, pfd: number, base: string, rel: string, xattrs: [string, Buffer][]): void {
    let fd = this.#dirs.get(rel);
    if (fd === undefined) {
      try {
        mkdirat(pfd, base, 0o700);
      } catch (err) {
        if (!hasErrno(err, 'EEXIST')) throw err;
      }
      try {
        fd = openat(pfd, base, DIR);
      } catch (err) {
        // something else is there: a directory entry replaces it
        if (!hasErrno(err, 'ENOTDIR', 'ELOOP')) throw err;
        this.#remove(pfd, base, rel);
        mkdirat(pfd, base, 0o700);
        fd = openat(pfd, base, DIR);
      }
      this.#dirs.set(rel, fd);
    }
    const st = fstatSync(fd);
    if (xattrs.length > 0) entry = { ...entry, xattrs: new Map(xattrs) };
    else if (entry.xattrs.size > 0) entry = { ...entry, xattrs: new Map() };
    // the last entry for a path wins, as tar's does
    this.#dirMeta.set(rel, { entry, dev: st.dev, ino: st.ino });
  }

  async #file(
    entry: TarEntry,
    pfd: number,
    base: string,
    rel: string,
    body: AsyncIterable<Buffer>,
    xattrs: [string, Buffer][],
  ): Promise<void> {
    if (entry.size > this.#limits.maxEntrySize) {
      throw limit(
        `entry ${JSON.stringify(entry.name)} is ${entry.size} bytes`,
        'maxEntrySize',
        this.#limits.maxEntrySize,
      );
    }
    if (this.stats.bytes + entry.size > this.#limits.maxTotalSize) {
      throw limit(
        `unpacks to more than ${this.#limits.maxTotalSize} bytes`,
        'maxTotalSize',
        this.#limits.maxTotalSize,
      );
    }
    const fd = this.#replace(pfd, base, rel, () => openat(pfd, base, CREATE, 0o600));
    try {
      for await (const chunk of body) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        this.stats.bytes += chunk.length;
      }
      if (this.#owner) fchownSync(fd, entry.uid, entry.gid);
      // chown clears setuid/setgid, so the mode goes on after it
      fchmodSync(fd, entry.mode);
      // and security.capability: xattrs go on after chown too
      for (const [name, value] of xattrs) this.#setXattr(() => fsetxattr(fd, name, value, rel));
      futimesSync(fd, entry.mtime, entry.mtime);
    } finally {
      closeSync(fd);
    }
  }

  /** Owner, mode, xattrs and times of a symlink or node, by name in its verified parent, never following it. */
  #meta(entry: TarEntry, pfd: number, base: string, xattrs: [string, Buffer][], mode: boolean): void {
    if (this.#owner) fchownat(pfd, base, entry.uid, entry.gid, AT_SYMLINK_NOFOLLOW);
    if (mode) fchmodat(pfd, base, entry.mode, AT_SYMLINK_NOFOLLOW);
    // a symlink or node cannot be opened for fsetxattr: the parent's fd names the directory, lsetxattr never
    // follows the final component
    for (const [name, value] of xattrs)
      this.#setXattr(() => lsetxattr(`/proc/self/fd/${pfd}/${base}`, name, value));
    utimensat(pfd, base, entry.mtime, entry.mtime, AT_SYMLINK_NOFOLLOW);
  }

  #opaque(pfd: number, rel: string): void {
    if (this.#apply) {
      for (const child of readdirSync(`/proc/self/fd/${pfd}`)) {
        const childRel = rel === '.' ? child : posix.join(rel, child);
        if (this.#created.has(childRel)) continue;
        this.#remove(pfd, child, childRel);
      }
      return;
    }
    const fd = openat(pfd, '.', O.RDONLY | O.DIRECTORY);
    try {
      fsetxattr(fd, OVERLAY_OPAQUE_XATTR, Buffer.from('y'), rel);
    } finally {
      closeSync(fd);
    }
  }

  /** Opens `rel` beneath the root as a directory, following no symlink: openat2, or a component walk. */
  #reopen(rel: string): number | undefined {
    const flags = O.RDONLY | O.DIRECTORY | O.NOFOLLOW;
    try {
      return openat2(this.#rootFd, rel, { flags, resolve: BENEATH });
    } catch (err) {
      if (hasErrno(err, 'ENOENT', 'ENOTDIR', 'ELOOP', 'EXDEV')) return undefined;
      if (!hasErrno(err, 'ENOSYS', 'EPERM')) throw err;
    }
    // Linux before 5.6 (or a seccomp filter that hides openat2): one O_NOFOLLOW component at a time
    let fd = openat(this.#rootFd, '.', O.PATH | O.DIRECTORY);
    const parts = rel.split('/');
    try {
      for (let i = 0; i < parts.length; i++) {
        const next = openat(fd, parts[i]!, i === parts.length - 1 ? flags : DIR);
        closeSync(fd);
        fd = next;
      }
      return fd;
    } catch (err) {
      closeSync(fd);
      if (hasErrno(err, 'ENOENT', 'ENOTDIR', 'ELOOP')) return undefined;
      throw err;
    }
  }

  finish(): void {
    this.close();
    // children before parents, so a parent's mode never stops us reaching a child
    for (const [rel, { entry, dev, ino }] of [...this.#dirMeta].reverse()) {
      const fd = this.#reopen(rel);
      // replaced or removed since: its metadata went with it
      if (fd === undefined) continue;
      try {
        const st = fstatSync(fd);
        if (st.dev !== dev || st.ino !== ino) continue;
        if (this.#owner) fchownSync(fd, entry.uid, entry.gid);
        fchmodSync(fd, entry.mode);
        for (const [name, value] of entry.xattrs) this.#setXattr(() => fsetxattr(fd, name, value, rel));
        futimesSync(fd, entry.mtime, entry.mtime);
      } finally {
        closeSync(fd);
      }
    }
  }
}

/**
 * Unpacks one layer (gzip, zstd or plain tar, told apart by magic bytes) into `dir`, streaming. Every entry is
 * checked before it is written: a path with `..`, an absolute path or a symlink parent rejects the layer, and
 * nothing is ever written, changed or removed through a symlink (see `Unpacker`).
 */
export async function unpackLayer(
  source: string | Uint8Array | AsyncIterable<Uint8Array>,
  dir: string,
  options: UnpackOptions = {},
): Promise<UnpackStats> {
  // the image package (registry client, TLS, zlib) loads only when a layer is unpacked, never on `run -b`
  const { decompress, readTar } = await import('@berth/image');
  mkdirSync(dir, { recursive: true });
  const rootFd = openat(AT_FDCWD, dir, O.PATH | O.DIRECTORY);
  const u = new Unpacker(rootFd, options);
  const { maxCompressionRatio, ratioFloor } = u.limits;
  const file = typeof source === 'string' ? createReadStream(source, { highWaterMark: 1 << 20 }) : undefined;
  let packed = 0;
  const counted = (async function* () {
    const input = file ?? (source instanceof Uint8Array ? [source] : (source as AsyncIterable<Uint8Array>));
    for await (const c of input as AsyncIterable<Uint8Array>) {
      packed += c.length;
      yield c;
    }
  })();
  const hash = createHash('sha256');
  let unpacked = 0;
  const tarStream = (async function* () {
    for await (const c of decompress(counted) as AsyncIterable<Buffer>) {
      unpacked += c.length;
      if (unpacked > ratioFloor && unpacked > packed * maxCompressionRatio) {
        throw limit(
          `decompresses more than ${maxCompressionRatio} times its compressed size (${unpacked} bytes from ${packed})`,
          'maxCompressionRatio',
          maxCompressionRatio,
        );
      }
      hash.update(c);
      yield c;
    }
  })();
  try {
    for await (const { entry, body } of readTar(tarStream)) {
      try {
        await u.apply(entry, body);
      } catch (err) {
        if (err instanceof ImageRootfsError) throw err;
        throw fail('EUNPACK', entry.name, (err as Error).message, err);
      }
    }
    // the tar end marker may come before the end of the stream: hash what follows too
    for await (const _ of tarStream) {
      // draining
    }
    try {
      u.finish();
    } catch (err) {
      throw new ImageRootfsError('EUNPACK', `layer directory metadata: ${(err as Error).message}`, {
        op: 'unpack layer',
        path: dir,
        cause: err,
      });
    }
  } finally {
    u.close();
    closeSync(rootFd);
    file?.destroy();
  }
  const diffId = 'sha256:' + hash.digest('hex');
  if (options.diffId !== undefined && diffId !== options.diffId) {
    throw new ImageRootfsError(
      'EUNPACK',
      `layer unpacked into ${dir} has diff id ${diffId}, expected ${options.diffId}`,
      {
        op: 'verify layer',
        path: dir,
      },
    );
  }
  return { ...u.stats, diffId };
}
