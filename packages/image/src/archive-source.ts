import { createHash } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, type Stats } from 'node:fs';
import { lstat, mkdir, readFile, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { hasErrno, O, openInRoot } from '@berth/sys';
import type { BlobStore } from './blob-store.js';
import { decompress } from './decompress.js';
import { ImageError, isErrno } from './errors.js';
import { randomSuffix } from './fsutil.js';
import { readTar } from './tar/reader.js';

/** A file of an image layout or a docker-save archive, with its digest once known. */
export interface SourceFile {
  /** where the bytes are on disk now */
  path: string;
  size: number;
  /** computed while the archive was read; directories compute it on demand */
  digest?: string;
}

/**
 * Read access to an OCI image layout or a `docker save` tree, whether it came as a directory or as a tar
 * (optionally gzip or zstd compressed). A tar is read once, in order, into a scratch directory inside the
 * store, hashing every file on the way: blobs are then renamed into the store, never copied twice.
 */
export interface ArchiveSource {
  readonly origin: string;
  /** archive path → file; symlinks (legacy docker save links duplicate layers) already resolved */
  file(path: string): Promise<SourceFile | undefined>;
  readJson<T>(path: string): Promise<T | undefined>;
  /** whether files may be moved into the store (they live in our scratch directory) */
  readonly owned: boolean;
  close(): Promise<void>;
}

function archiveError(origin: string, why: string, cause?: unknown): ImageError {
  return new ImageError('EARCHIVE', `${origin}: ${why}`, {
    op: 'read archive',
    path: origin,
    ...(cause !== undefined ? { cause } : {}),
  });
}

/** Normalises an archive path; `..`, absolute paths and nul bytes make the archive invalid, never clamped. */
function cleanPath(origin: string, name: string): string {
  if (name.includes('\0') || name.startsWith('/'))
    throw archiveError(origin, `entry ${JSON.stringify(name)} is not a relative path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..'))
    throw archiveError(origin, `entry ${JSON.stringify(name)} climbs out of the archive`);
  return parts.join('/');
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if (isErrno(err, 'ENOENT') || isErrno(err, 'ENOTDIR')) return undefined;
    throw err;
  }
}

class DirSource implements ArchiveSource {
  readonly owned = false;
  private dirfd = -1;
  private readonly fds: number[] = [];
  constructor(readonly origin: string) {}

  /**
   * `path` opened inside the layout as if it were the root (openat2 RESOLVE_IN_ROOT): its links,
   * in any component, never lead outside it, and the file is checked through the fd it is then
   * read from (`/proc/self/fd/N`), so that nothing can be swapped in between. Only a regular file
   * counts: a fifo or a device is none.
   */
  async file(path: string): Promise<SourceFile | undefined> {
    const rel = cleanPath(this.origin, path);
    if (this.dirfd < 0) this.dirfd = openSync(this.origin, O.PATH | O.DIRECTORY | O.CLOEXEC);
    let fd: number;
    try {
      fd = openInRoot(this.dirfd, rel, O.RDONLY | O.NONBLOCK | O.NOCTTY);
    } catch (err) {
      if (hasErrno(err, 'ENOENT', 'ENOTDIR', 'ELOOP', 'EXDEV')) return undefined;
      throw err;
    }
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      return undefined;
    }
    this.fds.push(fd);
    return { path: `/proc/self/fd/${fd}`, size: st.size };
  }

  async readJson<T>(path: string): Promise<T | undefined> {
    const f = await this.file(path);
    return f === undefined ? undefined : parseJson<T>(this.origin, path, await readFile(f.path));
  }

  async close(): Promise<void> {
    for (const fd of this.fds.splice(0)) closeSync(fd);
    if (this.dirfd >= 0) closeSync(this.dirfd);
    this.dirfd = -1;
  }
}

class TarSource implements ArchiveSource {
  readonly owned = true;
  readonly files = new Map<string, SourceFile>();
  readonly links = new Map<string, string>();
  constructor(
    readonly origin: string,
    readonly scratch: string,
  ) {}

  async file(path: string): Promise<SourceFile | undefined> {
    let rel = cleanPath(this.origin, path);
    for (let hops = 0; hops < 16; hops++) {
      const f = this.files.get(rel);
      if (f !== undefined) return f;
      const target = this.links.get(rel);
      if (target === undefined) return undefined;
      rel = target;
    }
    throw archiveError(this.origin, `too many symlinks at ${path}`);
  }

  async readJson<T>(path: string): Promise<T | undefined> {
    const f = await this.file(path);
    return f === undefined ? undefined : parseJson<T>(this.origin, path, await readFile(f.path));
  }

  async close(): Promise<void> {
    await rm(this.scratch, { recursive: true, force: true });
  }
}

function parseJson<T>(origin: string, path: string, data: Buffer): T {
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (err) {
    throw archiveError(origin, `${path} is not valid json`, err);
  }
}

/**
 * A compressed archive may unpack to at most this many bytes per byte of it, once past
 * LOAD_RATIO_FLOOR bytes: the limit layers are unpacked with (@berth/rootfs). gzip cannot pass
 * about 1032:1, so this stops zstd and xz bombs (33 KB of zstd made 1 GiB in the scratch
 * directory, beside the image store) while a real image, even one of zeros, still loads.
 */
const LOAD_MAX_RATIO = 2000;
const LOAD_RATIO_FLOOR = 256 * 2 ** 20;

/** Opens a layout directory as it is, or reads a tar archive into a scratch directory of `store`. */
export async function openArchive(store: Pick<BlobStore, 'root'>, source: string): Promise<ArchiveSource> {
  const st = await statOrUndefined(source);
  if (st === undefined) throw archiveError(source, 'does not exist');
  if (st.isDirectory()) return new DirSource(source);
  // the pid in the name lets a prune tell a running load's scratch files from a dead one's
  const scratch = join(store.root, 'ingest', `archive-${process.pid}-${randomSuffix()}`);
  await mkdir(scratch, { recursive: true, mode: 0o700 });
  const src = new TarSource(source, scratch);
  let n = 0;
  let unpacked = 0; // file bytes written so far, against the archive's bytes read: a bomb is refused
  try {
    const input = createReadStream(source, { highWaterMark: 1 << 20 });
    for await (const { entry, body } of readTar(decompress(input))) {
      const rel = cleanPath(source, entry.name);
      if (entry.type === 'dir' || rel === '') continue;
      if (entry.type === 'symlink' || entry.type === 'link') {
        // hard link names are archive paths, symlink targets are relative to their directory
        const target =
          entry.type === 'link' ? entry.linkname : posix.join(posix.dirname(rel), entry.linkname);
        src.links.set(rel, cleanPath(source, target));
        continue;
      }
      if (entry.type !== 'file') throw archiveError(source, `entry ${rel} is a ${entry.type}, not a file`);
      const path = join(scratch, String(n++));
      const hash = createHash('sha256');
      let size = 0;
      await pipeline(
        (async function* () {
          for await (const c of body) {
            hash.update(c);
            size += c.length;
            unpacked += c.length;
            if (unpacked > LOAD_RATIO_FLOOR && unpacked > LOAD_MAX_RATIO * input.bytesRead)
              throw archiveError(
                source,
                `decompresses to more than ${LOAD_MAX_RATIO} times its size (${unpacked} bytes from ${input.bytesRead}): refused as a decompression bomb`,
              );
            yield c;
          }
        })(),
        createWriteStream(path, { mode: 0o600 }),
      );
      src.files.set(rel, { path, size, digest: `sha256:${hash.digest('hex')}` });
    }
  } catch (err) {
    await src.close();
    if (err instanceof ImageError && err.code === 'EARCHIVE') throw err;
    throw archiveError(source, `cannot read the archive: ${(err as Error).message}`, err);
  }
  return src;
}
