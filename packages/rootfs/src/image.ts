import type { ImageConfig } from '@berth/image';
import { ImageRootfsError } from './layers/errors.js';
import { resolveImageUser } from './layers/user.js';

/** The prefix of the annotations berth acts on (`org.berth.backend`, …): never taken from an image's labels. */
export const RUNTIME_ANNOTATION_PREFIX = 'org.berth.';

export {
  type EnsureLayerOptions,
  ensureLayer,
  ensureLayers,
  layerDir,
  layersRoot,
  pruneLayers,
} from './layers/cache.js';
export {
  ImageRootfsError,
  type ImageRootfsErrorCode,
  type ImageRootfsErrorDetails,
} from './layers/errors.js';
export { readFileInRoot } from './layers/in-root.js';
export { entryPath, linkTargetPath } from './layers/path.js';
export {
  DEFAULT_UNPACK_LIMITS,
  OPAQUE_MARKER,
  OVERLAY_OPAQUE_XATTR,
  type UnpackLimits,
  type UnpackOptions,
  type UnpackStats,
  unpackLayer,
  WHITEOUT_PREFIX,
  xattrPolicy,
} from './layers/unpack.js';
export { type ResolvedUser, resolveImageUser } from './layers/user.js';
export { capsForUserns, mergeLayers, type OwnerShift, shiftOwners } from './snapshot/copy.js';
export { isMounted, mountOverlay, type OverlayDirs, overlayOptions, unmount } from './snapshot/mount.js';
export {
  deleteSnapshot,
  listSnapshots,
  type PrepareSnapshotOptions,
  prepareSnapshot,
  type Snapshot,
  type SnapshotInfo,
  type SnapshotMode,
  snapshotDir,
} from './snapshot/snapshot.js';

/** The parts of an OCI runtime config.json that an image decides; everything else passes through untouched. */
export interface BundleSpecMount {
  destination: string;
  source?: string;
  type?: string;
  options?: string[];
}

export interface BundleSpec {
  ociVersion?: string;
  process?: {
    terminal?: boolean;
    user?: { uid: number; gid: number; additionalGids?: number[]; umask?: number };
    args?: string[];
    env?: string[];
    cwd?: string;
    [k: string]: unknown;
  };
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: BundleSpecMount[];
  annotations?: Record<string, string>;
  linux?: {
    namespaces?: { type: string; path?: string }[];
    resources?: {
      memory?: { limit?: number; [k: string]: unknown };
      cpu?: { quota?: number; period?: number; [k: string]: unknown };
      pids?: { limit: number };
      [k: string]: unknown;
    };
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

export interface BundleOverrides {
  /** replaces the image's Cmd (`berth run IMAGE CMD...`) */
  args?: string[];
  /** replaces the image's Entrypoint; the image's Cmd is then dropped, as docker does */
  entrypoint?: string[];
  /** KEY=VALUE, over the image's Env */
  env?: string[];
  cwd?: string;
  /** user[:group] or uid[:gid], over the image's User */
  user?: string;
  /** the container's rootfs, to resolve user and group names from its /etc/passwd and /etc/group */
  rootfs?: string;
  hostname?: string;
  terminal?: boolean;
  readOnly?: boolean;
  /** appended to the base spec's mounts (bind volumes from -v) */
  mounts?: BundleSpecMount[];
  /** bytes */
  memory?: number;
  /** CPUs as a fraction: 1.5 means a quota of 150 ms every 100 ms */
  cpus?: number;
  pidsLimit?: number;
  /** `none`: a private network namespace (the base default); `host`: the host's */
  network?: 'none' | 'host';
  /** how image Volumes are provided: `tmpfs` mounts, or `ignore` (default: leave them in the rootfs) */
  volumes?: 'tmpfs' | 'ignore';
}

function envKey(kv: string): string {
  const i = kv.indexOf('=');
  return i < 0 ? kv : kv.slice(0, i);
}

/** Later lists win per key, keeping the first position of each key. */
export function mergeEnv(...lists: (string[] | undefined)[]): string[] {
  const out = new Map<string, string>();
  for (const list of lists) for (const kv of list ?? []) out.set(envKey(kv), kv);
  return [...out.values()];
}

function fail(field: string, why: string): never {
  throw new ImageRootfsError('EBUNDLE', `${field}: ${why}`, { op: 'bundle from image', path: field });
}

/**
 * config.json for a container of this image, per the image spec's conversion rules (Entrypoint + Cmd → args,
 * Env, WorkingDir, User, Volumes, Labels/ExposedPorts/StopSignal → annotations), over `baseSpec` (berth's
 * defaults), with the user's flags last.
 */
export async function bundleFromImage(
  image: ImageConfig,
  baseSpec: BundleSpec,
  overrides: BundleOverrides = {},
): Promise<BundleSpec> {
  const spec = structuredClone(baseSpec);
  const c = image.config ?? {};
  const entrypoint = overrides.entrypoint ?? c.Entrypoint ?? [];
  const cmd = overrides.args ?? (overrides.entrypoint !== undefined ? [] : (c.Cmd ?? []));
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) fail('process.args', 'the image has no Entrypoint or Cmd and no command was given');
  const proc = { ...(spec.process ?? {}) };
  proc.args = args;
  proc.env = mergeEnv(proc.env, c.Env, overrides.env);
  proc.cwd = overrides.cwd ?? (c.WorkingDir ? c.WorkingDir : (proc.cwd ?? '/'));
  if (!proc.cwd.startsWith('/')) fail('process.cwd', `${JSON.stringify(proc.cwd)} must be an absolute path`);
  if (overrides.terminal !== undefined) proc.terminal = overrides.terminal;
  const user = overrides.user ?? (c.User ? c.User : undefined);
  if (user !== undefined) {
    const r = await resolveImageUser(user, overrides.rootfs);
    proc.user = { ...(proc.user ?? {}), uid: r.uid, gid: r.gid };
    if (r.additionalGids !== undefined) proc.user.additionalGids = r.additionalGids;
    else delete proc.user.additionalGids;
  }
  spec.process = proc;

  // an image's labels are its annotations (the image spec's conversion), but never berth's own:
  // those choose the backend, a user namespace's host root, an idmapped root — the operator's to
  // choose, not the image's
  const labels = Object.entries(c.Labels ?? {}).filter(([k]) => !k.startsWith(RUNTIME_ANNOTATION_PREFIX));
  const annotations: Record<string, string> = { ...Object.fromEntries(labels), ...(spec.annotations ?? {}) };
  annotations['org.opencontainers.image.os'] = image.os;
  annotations['org.opencontainers.image.architecture'] = image.architecture;
  if (image.variant) annotations['org.opencontainers.image.variant'] = image.variant;
  if (image.author) annotations['org.opencontainers.image.author'] = image.author;
  if (image.created) annotations['org.opencontainers.image.created'] = image.created;
  if (c.ExposedPorts)
    annotations['org.opencontainers.image.exposedPorts'] = Object.keys(c.ExposedPorts).join(',');
  if (c.StopSignal) annotations['org.opencontainers.image.stopSignal'] = c.StopSignal;
  spec.annotations = annotations;

  if (overrides.hostname !== undefined) spec.hostname = overrides.hostname;
  if (overrides.readOnly !== undefined)
    spec.root = { path: spec.root?.path ?? 'rootfs', readonly: overrides.readOnly };
  const mounts = [...(spec.mounts ?? []), ...(overrides.mounts ?? [])];
  if (overrides.volumes === 'tmpfs') {
    for (const dest of Object.keys(c.Volumes ?? {})) {
      if (mounts.some((m) => m.destination === dest)) continue;
      mounts.push({
        destination: dest,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'nodev', 'mode=755'],
      });
    }
  }
  spec.mounts = mounts;

  const wantsResources =
    overrides.memory !== undefined || overrides.cpus !== undefined || overrides.pidsLimit !== undefined;
  if (wantsResources || overrides.network !== undefined) {
    const linux = { ...(spec.linux ?? {}) };
    if (wantsResources) {
      const res = { ...(linux.resources ?? {}) };
      if (overrides.memory !== undefined) {
        if (!(overrides.memory > 0))
          fail('linux.resources.memory.limit', 'must be a positive number of bytes');
        res.memory = { ...(res.memory ?? {}), limit: Math.floor(overrides.memory) };
      }
      if (overrides.cpus !== undefined) {
        if (!(overrides.cpus > 0)) fail('linux.resources.cpu.quota', 'cpus must be positive');
        res.cpu = { ...(res.cpu ?? {}), period: 100_000, quota: Math.round(overrides.cpus * 100_000) };
      }
      if (overrides.pidsLimit !== undefined) res.pids = { limit: overrides.pidsLimit };
      linux.resources = res;
    }
    if (overrides.network !== undefined) {
      const ns = (linux.namespaces ?? []).filter((n) => n.type !== 'network');
      if (overrides.network === 'none') ns.push({ type: 'network' });
      linux.namespaces = ns;
    }
    spec.linux = linux;
  }
  return spec;
}
