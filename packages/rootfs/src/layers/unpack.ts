import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  createReadStream,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  rmSync,
  type Stats,
  symlinkSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { decompress, readTar, type TarEntry } from '@berth/image';
import { ImageRootfsError, isErrno } from './errors.js';
import { lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from './libc.js';
import { entryPath, linkTargetPath } from './path.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

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
}

export interface UnpackStats {
  entries: number;
  /** bytes of regular file data written */
  bytes: number;
  whiteouts: number;
  diffId: string;
}

function fail(code: 'EUNSAFE' | 'EUNPACK', name: string, why: string, cause?: unknown): ImageRootfsError {
  return new ImageRootfsError(code, `layer entry ${JSON.stringify(name)}: ${why}`, {
    op: 'unpack layer',
    path: name,
    ...(cause !== undefined ? { cause } : {}),
  });
}

function existing(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

// O_EXCL never follows a symlink and O_NOFOLLOW says so twice: whatever is at the path is refused, not written through
const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/**
 * Entries are written with synchronous calls on purpose: a layer is thousands of small files, and every
 * fs/promises call is a round trip through libuv's thread pool (futex wake-ups, epoll) that cost more system
 * time than the work itself. Files are created optimistically (O_EXCL) and only looked at when that fails.
 */
class Unpacker {
  readonly #root: string;
  readonly #opts: UnpackOptions;
  readonly #owner: boolean;
  /** directories already checked to be real directories inside the root */
  readonly #dirs = new Set<string>(['.']);
  /** directory metadata is applied last: creating children would reset their mtimes */
  readonly #dirMeta: { rel: string; entry: TarEntry }[] = [];
  /** paths this layer created, so an opaque marker only hides what lower layers had (apply mode) */
  readonly #created = new Set<string>();
  stats = { entries: 0, bytes: 0, whiteouts: 0 };

  constructor(root: string, opts: UnpackOptions) {
    this.#root = root;
    this.#opts = opts;
    this.#owner = opts.sameOwner ?? process.getuid?.() === 0;
  }

  #abs(rel: string): string {
    return rel === '.' ? this.#root : `${this.#root}/${rel}`;
  }

  /** Creates missing parents; a parent that is a symlink or a file means the entry would land elsewhere. */
  #parents(name: string, rel: string): void {
    if (this.#dirs.has(rel)) return;
    this.#parents(name, posix.dirname(rel));
    const abs = this.#abs(rel);
    const st = existing(abs);
    if (st === undefined) {
      mkdirSync(abs, { mode: 0o755 });
      this.#created.add(rel);
    } else if (st.isSymbolicLink()) {
      throw fail(
        'EUNSAFE',
        name,
        `parent ${rel} is a symlink: the entry would be written outside its directory`,
      );
    } else if (!st.isDirectory()) {
      throw fail('EUNSAFE', name, `parent ${rel} is not a directory`);
    }
    this.#dirs.add(rel);
  }

  /** A removed path takes its checked descendants with it: a later entry may put a symlink in its place. */
  #forget(rel: string): void {
    this.#dirs.delete(rel);
    const prefix = `${rel}/`;
    for (const d of this.#dirs) if (d.startsWith(prefix)) this.#dirs.delete(d);
  }

  /** Runs `create`; when something is in the way, removes it (a later entry replaces an earlier one) and retries. */
  #replace<T>(rel: string, create: () => T): T {
    try {
      return create();
    } catch (err) {
      const exists = isErrno(err, 'EEXIST') || (err instanceof ImageRootfsError && err.errno === 'EEXIST');
      if (!exists) throw err;
    }
    rmSync(this.#abs(rel), { recursive: true, force: true });
    this.#forget(rel);
    return create();
  }

  async apply(entry: TarEntry, body: AsyncIterable<Buffer>): Promise<void> {
    this.stats.entries++;
    const rel = entryPath(entry.name);
    if (rel === '.') return;
    const parent = posix.dirname(rel);
    const base = posix.basename(rel);
    this.#parents(entry.name, parent);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.stats.whiteouts++;
      if (base === OPAQUE_MARKER) return this.#opaque(parent);
      const hidden = base.slice(WHITEOUT_PREFIX.length);
      if (hidden === '' || hidden === '.' || hidden === '..')
        throw fail('EUNSAFE', entry.name, 'whiteout names no file');
      return this.#whiteout(posix.join(parent, hidden));
    }
    const abs = this.#abs(rel);
    this.#created.add(rel);
    switch (entry.type) {
      case 'dir': {
        try {
          mkdirSync(abs, { mode: 0o700 });
        } catch (err) {
          if (!isErrno(err, 'EEXIST')) throw err;
          if (!existing(abs)?.isDirectory()) {
            rmSync(abs, { force: true });
            this.#forget(rel);
            mkdirSync(abs, { mode: 0o700 });
          }
        }
        this.#dirs.add(rel);
        this.#dirMeta.push({ rel, entry });
        return;
      }
      case 'file':
        return this.#file(rel, abs, entry, body);
      case 'link': {
        const target = linkTargetPath(entry.name, entry.linkname);
        this.#parents(entry.name, posix.dirname(target));
        const st = existing(this.#abs(target));
        if (st === undefined || st.isDirectory()) {
          throw fail('EUNPACK', entry.name, `hard link target ${target} is not a file earlier in the layer`);
        }
        if (target === rel) return;
        this.#replace(rel, () => linkSync(this.#abs(target), abs));
        // a hard link shares the target's inode: its metadata is the target's
        return;
      }
      case 'symlink':
        // the target is never followed here; it is resolved inside the container at run time
        this.#replace(rel, () => symlinkSync(entry.linkname, abs));
        if (this.#owner) lchownSync(abs, entry.uid, entry.gid);
        for (const [name, value] of entry.xattrs) lsetxattr(abs, name, value);
        lutimesSync(abs, entry.mtime, entry.mtime);
        return;
      case 'char':
      case 'block':
      case 'fifo': {
        const kind = entry.type === 'char' ? S_IFCHR : entry.type === 'block' ? S_IFBLK : S_IFIFO;
        this.#replace(rel, () => mknod(abs, kind | (entry.mode & 0o777), entry.devmajor, entry.devminor));
        this.#meta(abs, entry);
        return;
      }
    }
  }

  async #file(rel: string, abs: string, entry: TarEntry, body: AsyncIterable<Buffer>): Promise<void> {
    const fd = this.#replace(rel, () => {
      try {
        return openSync(abs, CREATE, 0o600);
      } catch (err) {
        // mknod-made nodes and symlinks fail O_NOFOLLOW with ELOOP rather than EEXIST: same meaning here
        if (isErrno(err, 'ELOOP')) throw Object.assign(new Error('exists'), { code: 'EEXIST' });
        throw err;
      }
    });
    try {
      for await (const chunk of body) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        this.stats.bytes += chunk.length;
      }
      if (this.#owner) fchownSync(fd, entry.uid, entry.gid);
      // chown clears setuid/setgid, so the mode goes on after it
      fchmodSync(fd, entry.mode);
      futimesSync(fd, entry.mtime, entry.mtime);
    } finally {
      closeSync(fd);
    }
    for (const [name, value] of entry.xattrs) lsetxattr(abs, name, value);
  }

  #meta(abs: string, e: TarEntry): void {
    if (this.#owner) chownSync(abs, e.uid, e.gid);
    chmodSync(abs, e.mode);
    for (const [name, value] of e.xattrs) lsetxattr(abs, name, value);
    utimesSync(abs, e.mtime, e.mtime);
  }

  #whiteout(rel: string): void {
    const abs = this.#abs(rel);
    rmSync(abs, { recursive: true, force: true });
    this.#forget(rel);
    if (this.#opts.whiteouts === 'apply') return;
    mknod(abs, S_IFCHR | 0o000, 0, 0);
  }

  #opaque(rel: string): void {
    const abs = this.#abs(rel);
    if (this.#opts.whiteouts === 'apply') {
      for (const child of readdirSync(abs)) {
        const childRel = rel === '.' ? child : posix.join(rel, child);
        if (this.#created.has(childRel)) continue;
        rmSync(posix.join(abs, child), { recursive: true, force: true });
        this.#forget(childRel);
      }
      return;
    }
    lsetxattr(abs, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
  }

  finish(): void {
    for (const { rel, entry } of this.#dirMeta.reverse()) this.#meta(this.#abs(rel), entry);
  }
}

/**
 * Unpacks one layer (gzip, zstd or plain tar, told apart by magic bytes) into `dir`, streaming. Every entry is
 * checked before it is written: a path with `..`, an absolute path or a symlink parent rejects the layer.
 */
export async function unpackLayer(
  source: string | Uint8Array | AsyncIterable<Uint8Array>,
  dir: string,
  options: UnpackOptions = {},
): Promise<UnpackStats> {
  await mkdir(dir, { recursive: true });
  const input =
    typeof source === 'string'
      ? createReadStream(source, { highWaterMark: 1 << 20 })
      : source instanceof Uint8Array
        ? Readable.from([source])
        : source;
  const hash = createHash('sha256');
  const tarStream = (async function* () {
    for await (const c of decompress(input) as AsyncIterable<Buffer>) {
      hash.update(c);
      yield c;
    }
  })();
  const u = new Unpacker(dir, options);
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
    u.finish();
  } finally {
    if (typeof source === 'string') (input as ReturnType<typeof createReadStream>).destroy();
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
