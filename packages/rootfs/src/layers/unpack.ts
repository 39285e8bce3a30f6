import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod,
  chown,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  rm,
  symlink,
  utimes,
} from 'node:fs/promises';
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

async function existing(path: string) {
  try {
    return await lstat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
}

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
    return rel === '.' ? this.#root : posix.join(this.#root, rel);
  }

  /** Creates missing parents; a parent that is a symlink or a file means the entry would land elsewhere. */
  async #parents(name: string, rel: string): Promise<void> {
    if (this.#dirs.has(rel)) return;
    await this.#parents(name, posix.dirname(rel));
    const abs = this.#abs(rel);
    const st = await existing(abs);
    if (st === undefined) {
      await mkdir(abs, { mode: 0o755 });
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

  async apply(entry: TarEntry, body: AsyncIterable<Buffer>): Promise<void> {
    this.stats.entries++;
    const rel = entryPath(entry.name);
    if (rel === '.') return;
    const parent = posix.dirname(rel);
    const base = posix.basename(rel);
    await this.#parents(entry.name, parent);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.stats.whiteouts++;
      if (base === OPAQUE_MARKER) return this.#opaque(parent);
      const hidden = base.slice(WHITEOUT_PREFIX.length);
      if (hidden === '' || hidden === '.' || hidden === '..')
        throw fail('EUNSAFE', entry.name, 'whiteout names no file');
      return this.#whiteout(posix.join(parent, hidden));
    }
    const abs = this.#abs(rel);
    const old = await existing(abs);
    if (old !== undefined && !(old.isDirectory() && entry.type === 'dir')) {
      await rm(abs, { recursive: true, force: true });
      this.#forget(rel);
    }
    this.#created.add(rel);
    switch (entry.type) {
      case 'dir':
        if (old === undefined || !old.isDirectory()) await mkdir(abs, { mode: 0o700 });
        this.#dirs.add(rel);
        this.#dirMeta.push({ rel, entry });
        return;
      case 'file':
        await this.#file(abs, body);
        break;
      case 'link': {
        const target = linkTargetPath(entry.name, entry.linkname);
        await this.#parents(entry.name, posix.dirname(target));
        const st = await existing(this.#abs(target));
        if (st === undefined || st.isDirectory()) {
          throw fail('EUNPACK', entry.name, `hard link target ${target} is not a file earlier in the layer`);
        }
        await link(this.#abs(target), abs);
        // a hard link shares the target's inode: its metadata is the target's
        return;
      }
      case 'symlink':
        // the target is never followed here; it is resolved inside the container at run time
        await symlink(entry.linkname, abs);
        break;
      case 'char':
      case 'block':
      case 'fifo': {
        const kind = entry.type === 'char' ? S_IFCHR : entry.type === 'block' ? S_IFBLK : S_IFIFO;
        mknod(abs, kind | (entry.mode & 0o777), entry.devmajor, entry.devminor);
        break;
      }
    }
    await this.#meta(abs, entry);
  }

  async #file(abs: string, body: AsyncIterable<Buffer>): Promise<void> {
    // O_CREAT|O_EXCL never follows a symlink: the path was just cleared, so anything there now is a race we refuse
    const fh = await open(abs, 'wx', 0o600);
    try {
      for await (const chunk of body) {
        await fh.write(chunk);
        this.stats.bytes += chunk.length;
      }
    } finally {
      await fh.close();
    }
  }

  async #meta(abs: string, e: TarEntry): Promise<void> {
    const isLink = e.type === 'symlink';
    if (this.#owner) await (isLink ? lchown(abs, e.uid, e.gid) : chown(abs, e.uid, e.gid));
    // chown clears setuid/setgid, so the mode goes on after it
    if (!isLink) await chmod(abs, e.mode);
    for (const [name, value] of e.xattrs) lsetxattr(abs, name, value);
    const t = e.mtime;
    await (isLink ? lutimes(abs, t, t) : utimes(abs, t, t));
  }

  async #whiteout(rel: string): Promise<void> {
    const abs = this.#abs(rel);
    await rm(abs, { recursive: true, force: true });
    this.#forget(rel);
    if (this.#opts.whiteouts === 'apply') return;
    mknod(abs, S_IFCHR | 0o000, 0, 0);
  }

  async #opaque(rel: string): Promise<void> {
    const abs = this.#abs(rel);
    if (this.#opts.whiteouts === 'apply') {
      for (const child of await readdir(abs)) {
        const childRel = rel === '.' ? child : posix.join(rel, child);
        if (this.#created.has(childRel)) continue;
        await rm(posix.join(abs, child), { recursive: true, force: true });
        this.#forget(childRel);
      }
      return;
    }
    lsetxattr(abs, OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
  }

  async finish(): Promise<void> {
    for (const { rel, entry } of this.#dirMeta.reverse()) await this.#meta(this.#abs(rel), entry);
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
    await u.finish();
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
