import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { BerthError } from '@berth/sys';

/** A kernel module the guest loads, in load order. */
export interface GuestModule {
  name: string;
  /** The file, relative to the cache entry. */
  file: string;
  sha256: string;
}

/** A guest kernel (and the modules berth loads into it) in the local cache. */
export interface GuestKernel {
  /** The kernel release, e.g. `6.1.0-18-amd64`. */
  version: string;
  /** The uncompressed (PVH ELF) or bzImage kernel QEMU boots with `-kernel`. */
  kernel: string;
  /** sha256 of the kernel file, checked on every use of the cache entry. */
  sha256: string;
  /** The modules the agent loads, in order (their dependencies first). */
  modules: Array<GuestModule & { path: string }>;
  /** Where it came from: a Debian package name and version, or a local path. */
  source: string;
}

export interface KernelCacheOptions {
  /** The cache directory (default /var/lib/berth/vm/kernels). */
  dir: string;
  /** A kernel to use as is instead of the cached distribution kernel (`BERTH_VM_KERNEL`); its drivers must be built in. */
  override?: string;
  /** The distribution package to fetch (default: what `linux-image-amd64` depends on). */
  package?: string;
}

/**
 * The modules the guest needs from a distribution kernel (Debian builds
 * them as modules): virtio-mmio (microvm's bus), virtio-serial (stdio and
 * control), 9p over virtio (the rootfs). Their dependencies are read from
 * each module's own `depends=` and loaded first.
 */
export const GUEST_MODULES = [
  'virtio_mmio',
  'virtio_console',
  '9pnet_virtio',
  '9p',
  'virtio_net',
  'virtio_balloon',
] as const;

/**
 * Modules only a VM with a NIC needs (virtio_net and what it depends on):
 * left out of the initramfs of a VM without one.
 */
export const NET_ONLY_MODULES: ReadonlySet<string> = new Set(['virtio_net', 'net_failover', 'failover']);

/** Whether a cache entry's manifest was made for every module berth now loads (an older one lacks some). */
export function hasGuestModules(m: { modules: ReadonlyArray<{ name: string }>; wanted?: string[] }): boolean {
  const have = new Set([...(m.wanted ?? []), ...m.modules.map((x) => x.name)]);
  return GUEST_MODULES.every((w) => have.has(w));
}

/** A short tag of the module list, part of a cache entry's name: a new list gets an entry of its own. */
function modulesTag(): string {
  return createHash('sha256').update(GUEST_MODULES.join(',')).digest('hex').slice(0, 8);
}

const MANIFEST = 'manifest.json';

interface Manifest {
  version: string;
  source: string;
  kernel: string;
  sha256: string;
  modules: GuestModule[];
  /** The modules asked for (GUEST_MODULES when the entry was made); builtins among them are not in `modules`. */
  wanted?: string[];
}

export const DEFAULT_KERNEL_DIR = '/var/lib/berth/vm/kernels';

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function run(cmd: string, args: string[], cwd?: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...(cwd ? { cwd } : {}), maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').slice(-2).join('; ');
    throw new BerthError(`guest kernel: ${cmd} ${args.join(' ')} failed: ${why}`, { code: 'EKERNEL' });
  }
  return r.stdout;
}

/** The field `key=` of a module's .modinfo section (found by scanning: the section is plain NUL-separated text). */
export function modinfoField(module: Buffer, key: string): string | undefined {
  const needle = Buffer.from(`\0${key}=`);
  const at = module.indexOf(needle);
  if (at < 0) return undefined;
  const start = at + needle.length;
  const end = module.indexOf(0, start);
  return module.toString('utf8', start, end < 0 ? undefined : end);
}

/**
 * The load order of `wanted` and everything they depend on, dependencies
 * first, from each module's `depends=` (the distribution ships no modules.dep).
 * `files` maps a module name (with `-` as `_`) to its bytes; builtins are skipped.
 */
export function moduleLoadOrder(
  wanted: readonly string[],
  files: ReadonlyMap<string, () => Buffer>,
  builtin: ReadonlySet<string> = new Set(),
): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (raw: string, chain: string[]) => {
    const name = raw.replace(/-/g, '_');
    if (builtin.has(name) || state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new BerthError(`guest kernel: module dependency cycle: ${[...chain, name].join(' -> ')}`, {
        code: 'EKERNEL',
      });
    }
    const file = files.get(name);
    if (!file) {
      throw new BerthError(
        `guest kernel: module ${name} (needed by ${chain.at(-1) ?? 'berth'}) is not in the package`,
        {
          code: 'EKERNEL',
        },
      );
    }
    state.set(name, 'visiting');
    for (const dep of (modinfoField(file(), 'depends') ?? '').split(',').filter(Boolean))
      visit(dep, [...chain, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const w of wanted) visit(w, []);
  return order;
}

/** The uncompressed kernel inside a bzImage (as scripts/extract-vmlinux does): the first payload that decompresses to an ELF file. */
export function extractVmlinux(bzImage: string, out: string): void {
  const data = readFileSync(bzImage);
  const tries: Array<[Buffer, (at: number) => Buffer | undefined]> = [
    [
      Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]),
      (at) => {
        const r = spawnSync('xz', ['-dc', '--single-stream'], {
          input: data.subarray(at),
          maxBuffer: 1 << 30,
        });
        return r.stdout?.length ? r.stdout : undefined;
      },
    ],
    [
      Buffer.from([0x28, 0xb5, 0x2f, 0xfd]),
      (at) => {
        const r = spawnSync('zstd', ['-dc'], { input: data.subarray(at), maxBuffer: 1 << 30 });
        return r.stdout?.length ? r.stdout : undefined;
      },
    ],
    [
      Buffer.from([0x1f, 0x8b, 0x08]),
      (at) => {
        try {
          return gunzipSync(data.subarray(at));
        } catch {
          return undefined;
        }
      },
    ],
  ];
  for (const [magic, decompress] of tries) {
    for (let at = data.indexOf(magic); at >= 0; at = data.indexOf(magic, at + 1)) {
      const elf = decompress(at);
      if (elf?.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) {
        writeFileSync(out, elf, { mode: 0o644 });
        return;
      }
    }
  }
  throw new BerthError(`guest kernel: no xz, zstd or gzip ELF payload in ${bzImage}`, { code: 'EKERNEL' });
}

function readManifest(entry: string): Manifest | undefined {
  try {
    return JSON.parse(readFileSync(join(entry, MANIFEST), 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

const STAMP = '.verified.json';

/** What identifies a file's content without reading it: any write changes its ctime. */
function fileId(path: string): string {
  const st = statSync(path, { bigint: true });
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * Checks every file of a cache entry against its manifest; returns the kernel
 * or throws EKERNEL. A file is hashed again whenever its inode, size, mtime or
 * ctime changed since it was last found good (hashing the 60 MiB kernel on
 * every boot would cost more than the rest of `create`).
 */
function verified(entry: string, m: Manifest): GuestKernel {
  let stamps: Record<string, string> = {};
  try {
    stamps = JSON.parse(readFileSync(join(entry, STAMP), 'utf8')) as Record<string, string>;
  } catch {
    // none yet
  }
  let changed = false;
  const check = (file: string, sha: string) => {
    const path = join(entry, file);
    let got: string;
    try {
      const id = fileId(path);
      if (stamps[file] === `${id}:${sha}`) return path;
      got = sha256File(path);
      if (got === sha && fileId(path) === id) {
        stamps[file] = `${id}:${sha}`;
        changed = true;
      }
    } catch (e) {
      throw new BerthError(`guest kernel: ${path}: ${(e as Error).message}`, { code: 'EKERNEL', path });
    }
    if (got !== sha) {
      throw new BerthError(
        `guest kernel: ${path} does not match its sha256 (cache damaged; remove ${entry})`,
        {
          code: 'EKERNEL',
          path,
        },
      );
    }
    return path;
  };
  const kernel: GuestKernel = {
    version: m.version,
    kernel: check(m.kernel, m.sha256),
    sha256: m.sha256,
    source: m.source,
    modules: m.modules.map((mod) => ({ ...mod, path: check(mod.file, mod.sha256) })),
  };
  if (changed) {
    const tmp = join(entry, `${STAMP}.${process.pid}.tmp`);
    try {
      writeFileSync(tmp, JSON.stringify(stamps));
      renameSync(tmp, join(entry, STAMP));
    } catch {
      rmSync(tmp, { force: true }); // a read-only cache: verify again next time
    }
  }
  return kernel;
}

/** The package `linux-image-amd64` depends on (the distribution's current kernel). */
function currentKernelPackage(): string {
  const out = run('apt-cache', ['depends', '--no-recommends', '--no-suggests', 'linux-image-amd64']);
  const dep = /Depends:\s*(linux-image-[^\s]+)/.exec(out)?.[1];
  if (!dep)
    throw new BerthError('guest kernel: apt-cache names no package for linux-image-amd64', {
      code: 'EKERNEL',
    });
  return dep;
}

/** Fetches a kernel package without installing it and fills a cache entry. */
function fetchKernel(dir: string, pkg: string): string {
  if (process.arch !== 'x64') {
    throw new BerthError(
      `guest kernel: the distribution kernel is fetched for x86_64 only; set BERTH_VM_KERNEL`,
      {
        code: 'EKERNEL',
      },
    );
  }
  mkdirSync(dir, { recursive: true });
  const work = join(dir, `.fetch-${process.pid}-${Date.now()}`);
  mkdirSync(work, { recursive: true });
  try {
    run('apt-get', ['download', '-q', pkg], work);
    const deb = readdirSync(work).find((f) => f.endsWith('.deb'));
    if (!deb) throw new BerthError(`guest kernel: apt-get download ${pkg} left no .deb`, { code: 'EKERNEL' });
    const pkgVersion = run('dpkg-deb', ['-f', join(work, deb), 'Version']).trim();
    const x = join(work, 'x');
    mkdirSync(x);
    run('dpkg-deb', ['-x', join(work, deb), x]);
    const boot = readdirSync(join(x, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!boot) throw new BerthError(`guest kernel: ${pkg} has no /boot/vmlinuz-*`, { code: 'EKERNEL' });
    const version = boot.slice('vmlinuz-'.length);
    // the module list is part of the name: an entry made for an older list stays usable by
    // processes that have it open, and is never rewritten under them
    const entryName = `${version}_${pkgVersion}_m${modulesTag()}`.replace(/[^A-Za-z0-9._+-]/g, '_');
    const staging = join(work, 'entry');
    mkdirSync(join(staging, 'modules'), { recursive: true });
    extractVmlinux(join(x, 'boot', boot), join(staging, 'vmlinux'));
    const modDir = join(x, 'lib', 'modules', version);
    const files = new Map<string, string>();
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else if (e.name.endsWith('.ko')) files.set(e.name.slice(0, -3).replace(/-/g, '_'), join(d, e.name));
      }
    };
    walk(join(modDir, 'kernel'));
    const builtin = new Set(
      (existsSync(join(modDir, 'modules.builtin'))
        ? readFileSync(join(modDir, 'modules.builtin'), 'utf8')
        : ''
      )
        .split('\n')
        .filter(Boolean)
        .map((l) => basename(l, '.ko').replace(/-/g, '_')),
    );
    const order = moduleLoadOrder(
      GUEST_MODULES,
      new Map([...files].map(([n, p]) => [n, () => readFileSync(p)])),
      builtin,
    );
    const modules: GuestModule[] = order.map((name, i) => {
      const file = join('modules', `${String(i).padStart(2, '0')}-${name}.ko`);
      const bytes = readFileSync(files.get(name)!);
      writeFileSync(join(staging, file), bytes);
      return { name, file, sha256: createHash('sha256').update(bytes).digest('hex') };
    });
    const manifest: Manifest = {
      version,
      source: `${pkg} ${pkgVersion} (Debian)`,
      kernel: 'vmlinux',
      sha256: sha256File(join(staging, 'vmlinux')),
      modules,
      wanted: [...GUEST_MODULES],
    };
    writeFileSync(join(staging, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    const entry = join(dir, entryName);
    rmSync(entry, { recursive: true, force: true });
    renameSync(staging, entry);
    return entry;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The cache entries in `dir`, newest first. */
function entries(dir: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => !n.startsWith('.') && existsSync(join(dir, n, MANIFEST)));
  } catch {
    return [];
  }
  return names
    .map((n) => join(dir, n))
    .sort((a, b) => statSync(join(b, MANIFEST)).mtimeMs - statSync(join(a, MANIFEST)).mtimeMs);
}

/**
 * The guest kernel: `override` as is, else the newest verified cache entry,
 * else the distribution's kernel package fetched now (apt-get download +
 * dpkg-deb, never installed), unpacked to an uncompressed kernel and the
 * modules the guest needs, and cached by version.
 */
export function ensureKernel(options: KernelCacheOptions): GuestKernel {
  if (options.override) {
    const path = resolve(options.override);
    if (!existsSync(path)) {
      throw new BerthError(`BERTH_VM_KERNEL: ${path} does not exist`, { code: 'EKERNEL', path });
    }
    return { version: 'custom', kernel: path, sha256: sha256File(path), modules: [], source: path };
  }
  const dir = options.dir;
  const wanted = options.package;
  for (const entry of entries(dir)) {
    const m = readManifest(entry);
    // an entry made before berth loaded a module it now needs (virtio_net, virtio_balloon) is passed over
    if (m && hasGuestModules(m) && (!wanted || m.source.startsWith(`${wanted} `))) return verified(entry, m);
  }
  const entry = fetchKernel(dir, wanted ?? currentKernelPackage());
  return verified(entry, readManifest(entry)!);
}

/** The cached kernels. */
export function listKernels(dir: string): GuestKernel[] {
  return entries(dir).flatMap((e) => {
    const m = readManifest(e);
    return m ? [verified(e, m)] : [];
  });
}

/** Removes every cached kernel but the newest; returns the removed versions. */
export function pruneKernels(dir: string): string[] {
  const all = entries(dir);
  return all.slice(1).map((e) => {
    const v = readManifest(e)?.version ?? basename(e);
    rmSync(e, { recursive: true, force: true });
    return v;
  });
}

/** Whether an ELF kernel has the PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) QEMU needs to boot it directly. */
export function hasPvhNote(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    if (!head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) || head[4] !== 2) return false;
    const phoff = Number(head.readBigUInt64LE(32));
    const phentsize = head.readUInt16LE(54);
    const phnum = head.readUInt16LE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const p = ph.subarray(i * phentsize);
      if (p.readUInt32LE(0) !== 4) continue; // PT_NOTE
      const off = Number(p.readBigUInt64LE(8));
      const size = Number(p.readBigUInt64LE(32));
      const notes = Buffer.alloc(size);
      readSync(fd, notes, 0, size, off);
      for (let at = 0; at + 12 <= size; ) {
        const namesz = notes.readUInt32LE(at);
        const descsz = notes.readUInt32LE(at + 4);
        const type = notes.readUInt32LE(at + 8);
        const name = notes.toString('latin1', at + 12, at + 12 + namesz).replace(/\0+$/, '');
        if (name === 'Xen' && type === 18) return true;
        at += 12 + Math.ceil(namesz / 4) * 4 + Math.ceil(descsz / 4) * 4;
      }
    }
    return false;
  } finally {
    closeSync(fd);
  }
}
