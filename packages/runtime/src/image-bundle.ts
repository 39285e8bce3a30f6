import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  writeFileSync,
} from 'node:fs';
import { release } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { ImageRecord, ImageStore, PullOptions } from '@berth/image';
import { toHostId } from '@berth/namespaces';
import type { BundleSpec, BundleSpecMount } from '@berth/rootfs';
import { defaultSpec, formatSpec, type Spec } from '@berth/spec';
import { BerthError, removeTree } from '@berth/sys';
import { BUILTIN_IMAGE, DEFAULT_IMAGE, ensureDefaultImage } from './builtin.js';
import { isRootless, rootlessIds, toRootlessSpec } from './rootless.js';
import { validateId } from './state.js';
import { resolveUsernsRequest, type UsernsRequest, withUserns } from './userns.js';

export interface ImageRunOptions {
  /** Replaces the image's Cmd. */
  args?: string[];
  /** Replaces the image's Entrypoint (and drops its Cmd). */
  entrypoint?: string[];
  /** KEY=VALUE entries added to (or replacing in) the image's Env. */
  env?: string[];
  cwd?: string;
  /** `uid[:gid]` or a user name from the image's /etc/passwd. */
  user?: string;
  terminal?: boolean;
  hostname?: string;
  readonly?: boolean;
  /**
   * `none` (the default): a network namespace with only lo; `host`: the host's network;
   * `ns:PATH`: join that network namespace; any other value (`bridge`, a network's name):
   * a namespace of its own whose resolv.conf, hosts and hostname are bind-mounted from
   * `networkFilesDir` (the runtime attaches it to that network; see `ImageBundle`).
   */
  network?: string;
  /** Bind mounts: `SRC:DST[:ro]`. */
  volumes?: string[];
  /** linux.resources.memory.limit, bytes */
  memory?: number;
  /** CPUs: 1.5 becomes cpu.quota 150000 per cpu.period 100000 */
  cpus?: number;
  pidsLimit?: number;
  /** How a missing image is pulled (progress, platform, credentials); `false`: never pull. */
  pull?: PullOptions | false;
  /** `overlay` (default where the kernel and the store allow it) or `copy` (a merged copy of the layers). */
  snapshotter?: 'overlay' | 'copy';
  /**
   * The container's `linux.seccomp`, made from its finished config (a default
   * profile depends on the capabilities); absent or returning undefined: none.
   */
  seccomp?: (spec: Spec) => NonNullable<Spec['linux']>['seccomp'];
  /** process.apparmorProfile (`berth run --security-opt apparmor=PROFILE`). */
  apparmorProfile?: string;
  /** A user namespace (`berth run --userns`, `--uidmap/--gidmap`; see userns.ts). */
  userns?: UsernsRequest;
}

export interface ImageBundle {
  bundle: string;
  /** Absent when the copy snapshotter made a plain rootfs. Lower layers are listed top first, as overlayfs wants. */
  overlay?: { lower: string[]; upper: string; work: string };
  ownedDirs: string[];
  spec: Spec;
  image: ImageRecord;
  /** `name@digest`: what the container runs, for listings and for rmi's in-use check */
  ref: string;
  /** Where the container's resolv.conf, hosts and hostname go (bridge and named networks). */
  networkFilesDir?: string;
}

/** A random container id, like podman's: 12 hex digits. */
export function randomId(): string {
  return randomBytes(6).toString('hex');
}

const OVERLAYFS_MAGIC = 0x794c7630;

/** overlayfs as upper and work dirs on overlayfs fails (nested containers): such stores use the copy snapshotter. */
function overlayUsable(dir: string): boolean {
  if (process.env['BERTH_SNAPSHOTTER'] === 'copy') return false;
  try {
    if (statfsSync(dir).type === OVERLAYFS_MAGIC) return false;
  } catch {
    return false;
  }
  return overlayInKernel(hostKernel);
}

/** What overlayInKernel looks at: files it reads, and paths it checks. */
export interface KernelFiles {
  /** A file's text: an absolute path, or a name in this kernel's /lib/modules directory. */
  read(name: string): string | undefined;
  exists(path: string): boolean;
}

const hostKernel: KernelFiles = {
  read(name) {
    try {
      return readFileSync(name.startsWith('/') ? name : `/lib/modules/${release()}/${name}`, 'latin1');
    } catch {
      return undefined;
    }
  },
  exists: existsSync,
};

/**
 * Whether this kernel has overlayfs, or loads it at its first mount: a fresh Debian 12 host has it
 * as a module nobody has loaded yet (in modules.dep, not yet in /proc/filesystems), and the kernel
 * loads a file system's module when it is first mounted (`fs-overlay`), unless module loading is
 * switched off or there is no modprobe to do it.
 */
export function overlayInKernel(k: KernelFiles): boolean {
  if (/\toverlay$/m.test(k.read('/proc/filesystems') ?? '') || k.exists('/sys/module/overlay')) return true;
  const module = /(^|\/)overlay\.ko(\.[a-z]+)?:?( |$)/m;
  if (module.test(k.read('modules.builtin') ?? '')) return true;
  if (!module.test(k.read('modules.dep') ?? '')) return false;
  const modprobe = k.read('/proc/sys/kernel/modprobe')?.trim();
  return k.read('/proc/sys/kernel/modules_disabled')?.trim() === '0' && !!modprobe && k.exists(modprobe);
}

/** `busybox` means docker.io/library/busybox when the store has it, else the built-in image (made on demand). */
function isDefaultName(ref: string): boolean {
  return ref === DEFAULT_IMAGE || ref === `${DEFAULT_IMAGE}:latest` || ref === BUILTIN_IMAGE;
}

/** Finds `ref` in the store, pulling it when it is missing (as podman does). */
export async function resolveImage(
  store: ImageStore,
  ref: string,
  pull: PullOptions | false = {},
): Promise<ImageRecord> {
  if (ref !== BUILTIN_IMAGE) {
    const found = await store.get(ref);
    if (found !== undefined) return found;
  }
  if (isDefaultName(ref)) return (await ensureDefaultImage(store)).record;
  if (pull === false) return store.require(ref);
  // ensureLayers checks every DiffID when it unpacks: no need to decompress each layer twice
  return store.pull(ref, { verifyDiffIds: false, ...pull });
}

function volumeMounts(volumes: string[]): BundleSpecMount[] {
  return volumes.map((v) => {
    const [src, dst, opts, ...more] = v.split(':');
    // podman's options, comma-separated: ro or rw, and idmap (a user namespace's ids, see userns.ts)
    const flags = opts === undefined ? [] : opts.split(',');
    const mode = flags.find((f) => f === 'ro' || f === 'rw');
    const idmap = flags.includes('idmap');
    if (
      !src ||
      !dst ||
      more.length ||
      flags.some((f) => f !== 'ro' && f !== 'rw' && f !== 'idmap') ||
      flags.filter((f) => f !== 'idmap').length > 1
    ) {
      throw new BerthError(
        `volume ${JSON.stringify(v)} must be SRC:DST[:OPTIONS], OPTIONS ro or rw and idmap, comma-separated`,
        { code: 'EINVAL' },
      );
    }
    if (!isAbsolute(dst))
      throw new BerthError(`volume ${JSON.stringify(v)}: DST must be an absolute path`, { code: 'EINVAL' });
    return {
      destination: dst,
      type: 'bind',
      source: resolve(src),
      options: ['rbind', mode === 'ro' ? 'ro' : 'rw', ...(idmap ? ['ridmap'] : [])],
    };
  });
}

/**
 * /etc/passwd and /etc/group as the container will see them (the topmost layer that has each), copied into
 * `dir` so user names resolve before any overlay is mounted.
 */
function userDb(
  layersTopFirst: string[],
  dir: string,
  readFileInRoot: (root: string, rel: string) => Buffer | undefined,
): string {
  mkdirSync(join(dir, 'etc'), { recursive: true });
  for (const f of ['passwd', 'group']) {
    // each layer read in its own root: an image's link to /etc/passwd never reads the host's
    for (const layer of layersTopFirst) {
      const text = readFileInRoot(layer, `etc/${f}`);
      if (text === undefined) continue;
      writeFileSync(join(dir, 'etc', f), text);
      break;
    }
  }
  return dir;
}

/**
 * Makes a bundle for running an image of the store (pulled first when missing): its layers unpacked once and
 * shared, config.json from berth's defaults, the image config (Entrypoint + Cmd, Env, WorkingDir, User) and
 * the user's flags, and an empty upper/work pair for the overlay the container mounts over the layers inside
 * its own mount namespace, so no host mount is ever left behind. Where overlayfs cannot work, the layers are
 * merged into a private copy instead and `overlay` is absent.
 */
export async function makeImageBundle(
  storeRoot: string,
  id: string,
  image: string | ImageRecord,
  o: ImageRunOptions = {},
): Promise<ImageBundle> {
  validateId(id); // the id names the snapshot's directory
  const [{ ImageStore }, rootfs] = await Promise.all([import('@berth/image'), import('@berth/rootfs')]);
  const store = await ImageStore.open(storeRoot);
  const record = typeof image === 'string' ? await resolveImage(store, image, o.pull ?? {}) : image;
  const dir = join(storeRoot, 'containers', id);
  try {
    mkdirSync(join(storeRoot, 'containers'), { recursive: true, mode: 0o711 });
    // the container's files (its snapshot's upper layer, a copied rootfs: whatever it wrote, set-id
    // programs included) are nobody else's to reach, whatever the store's own mode (CVE-2021-41091)
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new BerthError(`container ${id} already exists`, { code: 'EEXIST', path: id });
    }
    throw e;
  }
  try {
    const ref = record.name.includes('@') ? record.name : `${record.name}@${record.digest}`;
    // written before the layers are unpacked, so a concurrent prune keeps them (see pruneLayers)
    writeFileSync(
      join(dir, 'image.json'),
      JSON.stringify({ image: ref, diffIds: record.layers.map((l) => l.diffId) }),
    );
    const layers = await rootfs.ensureLayers(store, record);
    const topFirst = [...layers].reverse();
    const rootDir = join(dir, 'rootfs');
    mkdirSync(rootDir);
    const useOverlay = (o.snapshotter ?? (overlayUsable(storeRoot) ? 'overlay' : 'copy')) === 'overlay';
    let overlay: ImageBundle['overlay'];
    if (useOverlay) {
      overlay = { lower: topFirst, upper: join(dir, 'upper'), work: join(dir, 'work') };
      mkdirSync(overlay.upper);
      mkdirSync(overlay.work);
    } else {
      await rootfs.mergeLayers(layers, rootDir);
    }
    for (const e of o.env ?? []) {
      if (e.indexOf('=') <= 0)
        throw new BerthError(`environment entry ${JSON.stringify(e)} must be KEY=VALUE`, { code: 'EINVAL' });
    }
    if (o.cwd !== undefined && !isAbsolute(o.cwd))
      throw new BerthError(`--workdir ${JSON.stringify(o.cwd)} must be an absolute path`, { code: 'EINVAL' });
    const base = defaultSpec() as BundleSpec;
    base.root = { path: rootDir, readonly: o.readonly === true };
    base.hostname = (o.hostname ?? id).slice(0, 63);
    base.annotations = { 'org.opencontainers.image.ref.name': record.name };
    const wantsUser = o.user !== undefined || (await store.imageConfig(record)).config?.User;
    const users = wantsUser
      ? useOverlay
        ? userDb(topFirst, join(dir, 'userdb'), rootfs.readFileInRoot)
        : rootDir
      : undefined;
    const spec = await rootfs.bundleFromImage(await store.imageConfig(record), base, {
      ...(o.args?.length ? { args: o.args } : {}),
      ...(o.entrypoint ? { entrypoint: o.entrypoint } : {}),
      env: [...(o.terminal ? ['TERM=xterm'] : []), ...(o.env ?? [])],
      ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
      ...(o.user !== undefined ? { user: o.user } : {}),
      ...(users !== undefined ? { rootfs: users } : {}),
      terminal: o.terminal === true,
      mounts: volumeMounts(o.volumes ?? []),
      ...(o.memory !== undefined ? { memory: o.memory } : {}),
      ...(o.cpus !== undefined ? { cpus: o.cpus } : {}),
      ...(o.pidsLimit !== undefined ? { pidsLimit: o.pidsLimit } : {}),
      ...(o.network !== undefined ? { network: o.network === 'host' ? 'host' : 'none' } : {}),
    });
    rmSync(join(dir, 'userdb'), { recursive: true, force: true });
    if (o.network === 'host') {
      // the host's sysfs cannot be mounted without a network namespace of our own: bind it
      spec.mounts = (spec.mounts ?? []).map((m) =>
        m.destination === '/sys'
          ? {
              destination: '/sys',
              type: 'bind',
              source: '/sys',
              options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
            }
          : m,
      );
    }
    const networkFilesDir = networkSetup(spec as Spec, o.network, dir);
    if (o.userns) {
      const maps = await resolveUsernsRequest(o.userns, storeRoot, id);
      if (maps) {
        withUserns(spec as Spec, maps, o.user !== undefined);
        // its root (a mapped id) searches the directory for the files bound from it (net/): its
        // group alone may, as moby gives a remapped root its data root (root:GID 0710)
        if (!isRootless()) {
          chownSync(dir, 0, toHostId(maps.gidMappings, 0) ?? 0);
          chmodSync(dir, 0o710);
        }
        // The overlay's layers are idmapped for the container (userns.ts); a private copy is the
        // container's own, and is given to its range instead (its files carry the image's ids)
        if (!useOverlay && !isRootless())
          await rootfs.shiftOwners(rootDir, {
            uid: (i) => toHostId(maps.uidMappings, i),
            gid: (i) => toHostId(maps.gidMappings, i),
          });
      }
    }
    // without root: a user namespace that maps the user to container root (see rootless.ts)
    if (isRootless()) Object.assign(spec, toRootlessSpec(spec as Spec, rootlessIds()));
    const seccomp = o.seccomp?.(spec as Spec);
    if (seccomp) spec.linux = { ...spec.linux, seccomp };
    if (o.apparmorProfile) spec.process = { ...spec.process!, apparmorProfile: o.apparmorProfile };
    writeFileSync(join(dir, 'config.json'), formatSpec(spec as Spec));
    return {
      bundle: dir,
      ...(overlay !== undefined ? { overlay } : {}),
      ownedDirs: [dir],
      spec: spec as Spec,
      image: record,
      ref,
      ...(networkFilesDir !== undefined ? { networkFilesDir } : {}),
    };
  } catch (e) {
    removeTree(dir);
    throw e;
  }
}

/**
 * The network part of an image bundle: `ns:PATH` joins that namespace; a bridge or named network gets
 * empty resolv.conf, hosts and hostname files in `<dir>/net`, bind-mounted over the image's (the runtime
 * fills them when it attaches the container). Returns that directory.
 */
function networkSetup(spec: Spec, network: string | undefined, dir: string): string | undefined {
  if (network === undefined || network === 'none' || network === 'host') return undefined;
  if (network.startsWith('ns:')) {
    const path = network.slice(3);
    if (!isAbsolute(path))
      throw new BerthError(`--network ns:PATH needs an absolute path, not ${JSON.stringify(path)}`, {
        code: 'EINVAL',
      });
    const linux = spec.linux ?? {};
    linux.namespaces = [
      ...(linux.namespaces ?? []).filter((n) => n.type !== 'network'),
      { type: 'network', path },
    ];
    spec.linux = linux;
    return undefined;
  }
  const files = join(dir, 'net');
  mkdirSync(files, { mode: 0o755 });
  const mounts = spec.mounts ?? [];
  for (const f of ['resolv.conf', 'hosts', 'hostname']) {
    writeFileSync(join(files, f), '', { mode: 0o644 });
    if (mounts.some((m) => m.destination === `/etc/${f}`)) continue; // a -v of the user's wins
    mounts.push({ destination: `/etc/${f}`, type: 'bind', source: join(files, f), options: ['rbind', 'rw'] });
  }
  spec.mounts = mounts;
  return files;
}
