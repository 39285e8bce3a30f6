import { createReadStream } from 'node:fs';
import { constants, copyFile, mkdir, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { BlobStore } from './blob-store.js';
import { digestHex, hashFile, sha256, verifyBuffer } from './digest.js';
import { ImageError, isErrno } from './errors.js';
import { randomSuffix, writeFileAtomic } from './fsutil.js';
import { lockOwnerAlive } from './lock.js';
import { type PullOptions, pullImage } from './pull.js';
import { familiarName, formatReference, parseReference } from './reference.js';
import type { RegistrySettings } from './settings.js';
import type { ImageConfig, ImageManifest, ImageRecord } from './types.js';

export const DEFAULT_STORE_ROOT = '/var/lib/berth';

/** /var/lib/berth as root; a user's own `${XDG_DATA_HOME:-~/.local/share}/berth` otherwise (as podman does). */
function defaultStoreDir(): string {
  if ((process.geteuid?.() ?? 0) === 0) return DEFAULT_STORE_ROOT;
  const data = process.env['XDG_DATA_HOME'];
  return join(data?.startsWith('/') ? data : join(homedir(), '.local', 'share'), 'berth');
}

export interface RemoveOptions {
  /** image names or manifest digests that containers use: these are never removed */
  inUse?: Set<string>;
}

export interface PruneOptions extends RemoveOptions {
  /** also remove every image that no container uses (default: only unreferenced blobs and stale downloads) */
  all?: boolean;
}

export interface PruneResult {
  removedImages: string[];
  removedBlobs: string[];
  freedBytes: number;
}

function recordFile(name: string): string {
  return `${encodeURIComponent(name)}.json`;
}

/**
 * The content store: blobs by digest (verified before they are named), one record per image name,
 * leases that keep a running pull's blobs safe from a concurrent prune.
 */
export class ImageStore implements BlobStore {
  readonly root: string;

  protected constructor(root: string) {
    this.root = root;
  }

  /** Opens (and creates) a store; the root is `root`, else $BERTH_STORE, else /var/lib/berth (without root: `${XDG_DATA_HOME:-~/.local/share}/berth`). */
  static async open(root?: string): Promise<ImageStore> {
    const dir = root ?? process.env['BERTH_STORE'] ?? defaultStoreDir();
    const store = new ImageStore(dir);
    try {
      for (const sub of ['blobs/sha256', 'ingest', 'images', 'leases']) {
        await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
      }
    } catch (err) {
      throw new ImageError('ESTORE', `cannot create image store at ${dir}`, {
        op: 'open store',
        path: dir,
        cause: err,
      });
    }
    return store;
  }

  /** Pulls `ref` from its registry into the store (see PullOptions); resolves to the stored record. */
  pull(ref: string, options: PullOptions = {}): Promise<ImageRecord> {
    return pullImage(this, ref, options);
  }

  blobPath(digest: string): string {
    return join(this.root, 'blobs', 'sha256', digestHex(digest));
  }

  partialPath(digest: string): string {
    return join(this.root, 'ingest', `${digestHex(digest)}.partial`);
  }

  lockPath(digest: string): string {
    return join(this.root, 'ingest', `${digestHex(digest)}.lock`);
  }

  async hasBlob(digest: string, size?: number): Promise<boolean> {
    try {
      const st = await stat(this.blobPath(digest));
      return size === undefined || st.size === size;
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return false;
      throw err;
    }
  }

  async readBlob(digest: string): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (err) {
      throw new ImageError(
        isErrno(err, 'ENOENT') ? 'ENOTFOUND' : 'ESTORE',
        `blob ${digest} is not in the store at ${this.root}`,
        { op: 'read blob', path: this.blobPath(digest), cause: err },
      );
    }
  }

  openBlob(digest: string): NodeJS.ReadableStream & AsyncIterable<Buffer> {
    return createReadStream(this.blobPath(digest), { highWaterMark: 1 << 20 }) as never;
  }

  /** Small JSON blobs (manifests, configs) are re-verified on every read: they decide what gets trusted next. */
  async readJson<T>(digest: string): Promise<T> {
    const data = await this.readBlob(digest);
    verifyBuffer(data, digest, 'stored blob');
    return JSON.parse(data.toString('utf8')) as T;
  }

  async writeBlob(data: Uint8Array, expected?: string): Promise<string> {
    const digest = sha256(data);
    if (expected !== undefined && expected !== digest) {
      throw new ImageError('EDIGEST', `blob ${expected}: content has digest ${digest}`, {
        op: 'write blob',
        path: expected,
      });
    }
    if (!(await this.hasBlob(digest, data.length))) await writeFileAtomic(this.blobPath(digest), data);
    return digest;
  }

  /**
   * Puts a file into the store under `digest`: hashed first (unless `hashed` says what it hashes to), then
   * renamed into place when `move` allows it, else copied through a temp file, so the name never lies.
   */
  async importBlobFile(
    path: string,
    digest: string,
    options: { move?: boolean; hashed?: string } = {},
  ): Promise<void> {
    const target = this.blobPath(digest);
    if (await this.hasBlob(digest)) return;
    const actual = options.hashed ?? (await hashFile(path));
    if (actual !== digest) {
      throw new ImageError('EDIGEST', `blob ${digest}: content has digest ${actual}`, {
        op: 'verify blob',
        path,
      });
    }
    const tmp = `${target}.${randomSuffix()}.tmp`;
    try {
      if (options.move === true) await rename(path, tmp);
      else await copyFile(path, tmp, constants.COPYFILE_FICLONE);
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new ImageError('ESTORE', `cannot store blob ${digest} from ${path}`, {
        op: 'import blob',
        path,
        cause: err,
      });
    }
  }

  async imageConfig(record: ImageRecord): Promise<ImageConfig> {
    return this.readJson<ImageConfig>(record.config.digest);
  }

  async manifest(record: ImageRecord): Promise<ImageManifest> {
    return this.readJson<ImageManifest>(record.digest);
  }

  async putRecord(record: ImageRecord): Promise<void> {
    await writeFileAtomic(
      join(this.root, 'images', recordFile(record.name)),
      JSON.stringify(record, null, 2),
    );
  }

  async list(): Promise<ImageRecord[]> {
    const dir = join(this.root, 'images');
    const out: ImageRecord[] = [];
    for (const f of await readdir(dir)) {
      if (!f.endsWith('.json')) continue;
      try {
        out.push(JSON.parse(await readFile(join(dir, f), 'utf8')) as ImageRecord);
      } catch (err) {
        // a record removed between readdir and read is simply gone
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * Finds an image by name (`busybox`, `localhost:5000/x:1`), by `name@digest`, or by manifest digest
   * (`sha256:…`, or at least 12 hex digits of it, as `docker images` shows them).
   */
  async get(ref: string): Promise<ImageRecord | undefined> {
    const all = await this.list();
    const hex = ref.startsWith('sha256:') ? ref.slice(7) : ref;
    if (/^[a-f0-9]{12,64}$/.test(hex)) {
      const byDigest = all.filter((r) => digestHex(r.digest).startsWith(hex));
      if (byDigest.length > 0) return byDigest[0];
      if (ref.startsWith('sha256:')) return undefined;
    }
    const parsed = parseReference(ref);
    if (parsed.digest !== undefined) {
      const repository = `${parsed.registry}/${parsed.repository}`;
      return all.find((r) => r.digest === parsed.digest && r.repository === repository);
    }
    const name = formatReference(parsed);
    return all.find((r) => r.name === name);
  }

  /**
   * `get`, and for a short name that is not in the store under its Docker meaning, the names registries.conf
   * resolves it to (an alias, or each search registry), so `myapp` finds the image `berth pull myapp` stored as
   * `registry.example/team/myapp`. Reads registries.conf only on that miss.
   */
  async resolve(ref: string, settings?: RegistrySettings): Promise<ImageRecord | undefined> {
    const found = await this.get(ref);
    if (found !== undefined) return found;
    const conf = await import('./registries-conf.js');
    if (/^(sha256:)?[a-f0-9]{12,64}$/.test(ref) || !conf.isShortName(ref)) return undefined;
    let resolution: ReturnType<typeof conf.resolveShortName>;
    try {
      resolution = conf.resolveShortName(await conf.loadRegistriesConfig(settings), ref);
    } catch (err) {
      // an ambiguous short name is not an error for a local lookup: the pull that follows will say so
      if (err instanceof ImageError && err.code === 'EREF') return undefined;
      throw err;
    }
    for (const candidate of resolution.candidates) {
      const hit = await this.get(formatReference(candidate));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  async require(ref: string): Promise<ImageRecord> {
    const r = await this.get(ref);
    if (r === undefined) {
      throw new ImageError('ENOTFOUND', `image ${ref} is not in the store at ${this.root}: pull it first`, {
        op: 'find image',
        path: this.root,
      });
    }
    return r;
  }

  /** Gives an image a second name (the record is copied, blobs are shared). */
  async tag(ref: string, newName: string): Promise<ImageRecord> {
    const src = await this.require(ref);
    const parsed = parseReference(newName);
    const record: ImageRecord = {
      ...src,
      name: formatReference(parsed),
      repository: `${parsed.registry}/${parsed.repository}`,
      storedAt: new Date().toISOString(),
    };
    if (parsed.tag !== undefined) record.tag = parsed.tag;
    else delete record.tag;
    await this.putRecord(record);
    return record;
  }

  /** Removes one image name, then the blobs nothing else references. Refuses an image a container uses. */
  async remove(ref: string, options: RemoveOptions = {}): Promise<ImageRecord> {
    const record = await this.require(ref);
    const inUse = options.inUse ?? new Set();
    if (inUse.has(record.name) || inUse.has(record.digest)) {
      throw new ImageError(
        'EINUSE',
        `image ${record.name} is used by a container: remove the container first`,
        {
          op: 'remove image',
          path: record.name,
        },
      );
    }
    await rm(join(this.root, 'images', recordFile(record.name)), { force: true });
    await this.#collect();
    return record;
  }

  async prune(options: PruneOptions = {}): Promise<PruneResult> {
    const inUse = options.inUse ?? new Set();
    const removedImages: string[] = [];
    if (options.all === true) {
      for (const r of await this.list()) {
        if (inUse.has(r.name) || inUse.has(r.digest)) continue;
        await rm(join(this.root, 'images', recordFile(r.name)), { force: true });
        removedImages.push(r.name);
      }
    }
    const { removedBlobs, freedBytes } = await this.#collect();
    return { removedImages, removedBlobs, freedBytes };
  }

  /** Digests every record and every live lease references: what garbage collection must keep. */
  async referencedDigests(): Promise<Set<string>> {
    const keep = new Set<string>();
    for (const r of await this.list()) {
      keep.add(r.digest);
      keep.add(r.config.digest);
      if (r.indexDigest !== undefined) keep.add(r.indexDigest);
      for (const l of r.layers) keep.add(l.digest);
    }
    const leases = join(this.root, 'leases');
    for (const f of await readdir(leases)) {
      const path = join(leases, f);
      try {
        const lease = JSON.parse(await readFile(path, 'utf8')) as { pid: number; digests: string[] };
        let alive = true;
        try {
          process.kill(lease.pid, 0);
        } catch (err) {
          alive = isErrno(err, 'EPERM');
        }
        if (alive) for (const d of lease.digests) keep.add(d);
        else await rm(path, { force: true });
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) await rm(path, { force: true });
      }
    }
    return keep;
  }

  /** Marks digests as in use by a running operation until the returned function is called. */
  async lease(digests: Iterable<string>): Promise<() => Promise<void>> {
    const path = join(this.root, 'leases', `${process.pid}-${Math.random().toString(36).slice(2)}.json`);
    await writeFileAtomic(path, JSON.stringify({ pid: process.pid, digests: [...digests] }));
    return () => rm(path, { force: true });
  }

  async #collect(): Promise<{ removedBlobs: string[]; freedBytes: number }> {
    const keep = await this.referencedDigests();
    const removedBlobs: string[] = [];
    let freedBytes = 0;
    const blobs = join(this.root, 'blobs', 'sha256');
    for (const f of await readdir(blobs)) {
      const digest = `sha256:${f}`;
      if (keep.has(digest) || f.endsWith('.tmp')) continue;
      try {
        const st = await stat(join(blobs, f));
        await unlink(join(blobs, f));
        freedBytes += st.size;
        removedBlobs.push(digest);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
    const ingest = join(this.root, 'ingest');
    for (const f of await readdir(ingest)) {
      const load = /^archive-([0-9]+)-/.exec(f);
      if (load !== null && !pidAlive(Number(load[1]))) {
        await rm(join(ingest, f), { recursive: true, force: true });
        continue;
      }
      if (!f.endsWith('.partial')) continue;
      const lock = join(ingest, f.replace(/\.partial$/, '.lock'));
      if (await lockOwnerAlive(lock)) continue;
      const st = await stat(join(ingest, f)).catch(() => undefined);
      await rm(join(ingest, f), { force: true });
      freedBytes += st?.size ?? 0;
    }
    return { removedBlobs, freedBytes };
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

/** `docker images` columns: familiar name, tag, short digest, size, created. */
export function describeImage(r: ImageRecord): {
  repository: string;
  tag: string;
  digest: string;
  size: number;
  created: string;
} {
  const parsed = parseReference(r.name);
  return {
    repository: familiarName(parsed),
    tag: r.tag ?? '<none>',
    digest: r.digest,
    size: r.size,
    created: r.created ?? '',
  };
}
