import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, type Stats } from 'node:fs';
import { lstat, mkdir, readFile, readlink, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
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
  constructor(readonly origin: string) {}

  async file(path: string): Promise<SourceFile | undefined> {
    let rel = cleanPath(this.origin, path);
    // follow symlinks by hand so they cannot lead outside the layout
    for (let hops = 0; hops < 16; hops++) {
      const abs = join(this.origin, rel);
      const st = await statOrUndefined(abs);
      if (st === undefined) return undefined;
      if (st.isFile()) return { path: abs, size: st.size };
      if (!st.isSymbolicLink()) return undefined;
      rel = cleanPath(this.origin, posix.join(posix.dirname(rel), await readlink(abs)));
    }
    throw archiveError(this.origin, `too many symlinks at ${path}`);
  }

  async readJson<T>(path: string): Promise<T | undefined> {
    const f = await this.file(path);
    return f === undefined ? undefined : parseJson<T>(this.origin, path, await readFile(f.path));
  }

  async close(): Promise<void> {}
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
