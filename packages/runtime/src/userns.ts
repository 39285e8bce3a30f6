/**
 * User namespaces as the runtime composes them (issue #9): which maps are
 * written and by whom, what the launcher does before the clone (as root: a
 * private mount namespace with idmapped image layers and the overlay; idmapped
 * bind mounts, prepared as detached copies), and how the rootfs plan changes inside a user
 * namespace (/dev nodes bound from the host, /sys bound when there is no
 * network namespace of its own). The mechanism is the launcher's (userns.h).
 */
import { chmodSync, chownSync, readFileSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import {
  formatIdMap,
  type IdMapping,
  mapsRootToRoot,
  planIdmap,
  type SetgroupsMode,
  toHostId,
  validateIdMappings,
} from '@berth/namespaces';
import { parseMountOptions } from '@berth/rootfs';
import type { Spec } from '@berth/spec';
import { BerthError, CLONE_NEWNET, CLONE_NEWNS, type IdmapWriterStep, MS, type PlanStep } from '@berth/sys';
import { isRootless, rootlessIdmapWriter } from './rootless.js';

/** Annotation: `true` lets a user namespace map container root to host root (refused otherwise). */
export const ANNOTATION_HOST_ROOT = 'org.berth.userns.host-root';
/** Annotation: `true` bind-mounts root.path idmapped (host ids as they are on disk → the container's ids). */
export const ANNOTATION_ROOTFS_IDMAP = 'org.berth.rootfs.idmap';

function invalid(message: string): BerthError {
  return new BerthError(message, { code: 'EINVALIDSPEC' });
}

export interface UsernsConfig {
  /** A new user namespace (else joined by path). */
  create: boolean;
  /** The joined namespace's path. */
  path?: string;
  uidMappings: IdMapping[];
  gidMappings: IdMapping[];
}

/**
 * The user namespace of a config, checked (JSON paths in errors), or undefined
 * without one. A new namespace needs uid and gid mappings (runc says the same);
 * container root as host root only with the annotation; mappings for a joined
 * /proc/PID/ns/user must be that namespace's.
 */
export function usernsConfig(spec: Spec): UsernsConfig | undefined {
  const linux = spec.linux ?? {};
  const index = (linux.namespaces ?? []).findIndex((n) => n.type === 'user');
  const hasMaps = (linux.uidMappings?.length ?? 0) > 0 || (linux.gidMappings?.length ?? 0) > 0;
  if (index < 0) {
    if (hasMaps)
      throw invalid(
        `linux.${linux.uidMappings?.length ? 'uidMappings' : 'gidMappings'}: requires a "user" entry in linux.namespaces`,
      );
    return undefined;
  }
  const uid = validateIdMappings(linux.uidMappings ?? [], 'linux.uidMappings');
  const gid = validateIdMappings(linux.gidMappings ?? [], 'linux.gidMappings');
  const path = linux.namespaces![index]!.path;
  if (path) {
    if (hasMaps) checkJoinedMaps(path, uid, gid, index);
    return { create: false, path, uidMappings: uid, gidMappings: gid };
  }
  if (!uid.length)
    throw invalid(`linux.uidMappings: a new user namespace (linux.namespaces[${index}]) needs uid mappings`);
  if (!gid.length)
    throw invalid(`linux.gidMappings: a new user namespace (linux.namespaces[${index}]) needs gid mappings`);
  if (
    !isRootless() &&
    (mapsRootToRoot(uid) || mapsRootToRoot(gid)) &&
    spec.annotations?.[ANNOTATION_HOST_ROOT] !== 'true'
  ) {
    throw invalid(
      `linux.${mapsRootToRoot(uid) ? 'uidMappings' : 'gidMappings'}: maps container root to host root, which undoes the user namespace; set the annotation ${ANNOTATION_HOST_ROOT}=true if that is meant`,
    );
  }
  return { create: true, uidMappings: uid, gidMappings: gid };
}

function parseProcMap(text: string): IdMapping[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((f) => f.length === 3 && f.every((n) => Number.isInteger(n)))
    .map(([containerID, hostID, size]) => ({ containerID: containerID!, hostID: hostID!, size: size! }));
}

/** Mappings given with a joined /proc/PID/ns/user must be that namespace's (as runc checks). */
function checkJoinedMaps(path: string, uid: IdMapping[], gid: IdMapping[], index: number): void {
  const m = /^\/proc\/(\d+)\/ns\/user$/.exec(path);
  if (!m) {
    throw invalid(
      `linux.uidMappings: linux.namespaces[${index}] joins ${path}, whose maps berth cannot read; leave the mappings out when joining a user namespace by a path other than /proc/PID/ns/user`,
    );
  }
  const same = (a: IdMapping[], file: string) => {
    let have: IdMapping[];
    try {
      have = parseProcMap(readFileSync(`/proc/${m[1]}/${file}`, 'utf8'));
    } catch {
      return true; // the path check (planContainer) names a missing namespace
    }
    const key = (x: IdMapping[]) =>
      x
        .map((e) => `${e.containerID}:${e.hostID}:${e.size}`)
        .sort()
        .join(',');
    return !a.length || key(a) === key(have);
  };
  if (!same(uid, 'uid_map') || !same(gid, 'gid_map')) {
    throw invalid(
      `linux.uidMappings: the mappings differ from those of the user namespace linux.namespaces[${index}] joins (${path})`,
    );
  }
}

/** The mapped root of a new user namespace, on the host. */
export function hostRoot(u: UsernsConfig): { uid: number; gid: number } | undefined {
  const uid = toHostId(u.uidMappings, 0);
  const gid = toHostId(u.gidMappings, 0);
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

export interface UsernsPlanInput {
  rootfs: string;
  bundle: string;
  /** The clone flags of the namespaces created (CLONE_NEWNET decides about /sys). */
  cloneFlags: number;
  overlay?: { lower: string[]; upper: string; work: string };
  /**
   * A directory of the container's own on the host (its state directory's `binds`; its parents
   * searchable by all): as root, bind sources are staged there in the launcher's mount namespace
   * (see `stagedSources`). Without it, the container opens its bind sources itself.
   */
  stageDir?: string;
}

export interface UsernsPlan {
  /** Launcher steps right before the clone: (as root) a private mount namespace and what idmapped mounts need, then `idmap`. */
  beforeClone: PlanStep[];
  /** First in the child: root inside the namespace. */
  afterClone: PlanStep[];
  /** The overlay is mounted before the clone (with idmapped layers): the child must not mount it again. */
  overlayMounted: boolean;
  /**
   * The rootfs is a mount point made before the clone, and the launcher's working directory: the
   * child opens its root as "." (its cwd, carried into its mount namespace by clone), so the
   * container's root never needs to search the directories above the rootfs (a 0700 store).
   */
  rootByCwd: boolean;
  /** The user namespace the plan is for (usernsConfig). */
  config: UsernsConfig;
  /**
   * Host bind sources staged before the clone (index in `mounts` → the staging path): the
   * launcher, as root with the host's view, copies each onto a directory of `stageDir` in its
   * own mount namespace, so that a source the container's mapped root could not reach is
   * still bound (as runc opens sources for it). The container's copy of that namespace has
   * them locked as the host's mounts are (a read-only host mount stays read-only).
   */
  stagedSources: Map<number, string>;
}

/** What the launcher prepares before the clone for idmapped bind mounts (planIdmappedMounts). */
export interface IdmappedMountsPlan {
  /** `idmapUserns` (one per distinct mapping) and `idmapTree` steps: before the clone, as root. */
  steps: PlanStep[];
  /** The index in `mounts` → its prepared tree (RootfsConfig.preparedBinds). */
  trees: Map<number, number>;
}

const isBind = (o: { type?: string; options?: string[] }) =>
  o.type === 'bind' || (o.options ?? []).some((x) => x === 'bind' || x === 'rbind');

/** The launcher's slots: user namespaces for mappings (slot 0 is planUserns's), prepared trees. */
const IDMAP_SLOTS = 64;
const TREE_SLOTS = 1024;

/**
 * Idmapped bind mounts (runc 1.2's rules): a mount is idmapped with the "idmap" option
 * (submounts of an rbind keep their ids), "ridmap" (all of them), or with mount
 * uidMappings/gidMappings and neither option (as "idmap"). The maps are the mount's own,
 * else the container's new user namespace's; the container needs no user namespace when the
 * mount has its own. Each source is copied before the clone by the launcher, as root and with
 * the host's view of the path (a source the container's user namespace cannot reach is fine),
 * idmapped and given its flags there, and attached in the container in the mounts' order. A
 * source inside `rootfs` is resolved in it (as the image has it, before any mount).
 */
export function planIdmappedMounts(
  spec: Spec,
  bundle: string,
  u: UsernsConfig | undefined,
  rootfs?: string,
): IdmappedMountsPlan {
  const steps: PlanStep[] = [];
  const trees = new Map<number, number>();
  const slots = new Map<string, number>();
  (spec.mounts ?? []).forEach((m, i) => {
    const where = `mounts[${i}]`;
    const opts = parseMountOptions(m.options, `${where}.options`);
    const own = (m.uidMappings?.length ?? 0) > 0 || (m.gidMappings?.length ?? 0) > 0;
    if (!opts.idmap && !own) return;
    const mode = opts.idmap ?? 'idmap';
    if (!isBind(m)) throw invalid(`${where}: idmapped mounts are only supported for bind mounts`);
    if (!m.source) throw invalid(`${where}.source: an idmapped bind mount needs a source`);
    if (isRootless())
      throw new BerthError(`${where}: idmapped mounts need root (CAP_SYS_ADMIN on the host)`, {
        code: 'EROOTLESS',
      });
    let uid: IdMapping[];
    let gid: IdMapping[];
    if (own) {
      uid = validateIdMappings(m.uidMappings ?? [], `${where}.uidMappings`);
      gid = validateIdMappings(m.gidMappings ?? [], `${where}.gidMappings`);
      if (!uid.length || !gid.length)
        throw invalid(`${where}: an idmapped mount needs both uidMappings and gidMappings`);
    } else if (u?.create) {
      uid = u.uidMappings;
      gid = u.gidMappings;
    } else {
      throw invalid(
        u
          ? `${where}.options: "${mode}" without uidMappings and gidMappings takes a new user namespace's maps; the container joins one`
          : `${where}.options: "${mode}" without uidMappings and gidMappings needs a user namespace (linux.namespaces "user")`,
      );
    }
    const key = `${formatIdMap(uid)}|${formatIdMap(gid)}`;
    let slot = slots.get(key);
    if (slot === undefined) {
      slot = slots.size + 1;
      if (slot >= IDMAP_SLOTS)
        throw new BerthError(
          `${where}: more than ${IDMAP_SLOTS - 1} different mappings for idmapped mounts`,
          {
            code: 'EUNSUPPORTED',
          },
        );
      slots.set(key, slot);
      steps.push({
        op: 'idmapUserns',
        slot,
        uidMap: formatIdMap(uid),
        gidMap: formatIdMap(gid),
        setgroups: 0,
        writer: { mode: 0 },
        describe: `create the user namespace for the idmapped mount ${where}`,
      });
    }
    const tree = trees.size;
    if (tree >= TREE_SLOTS)
      throw new BerthError(`${where}: more than ${TREE_SLOTS} idmapped mounts`, { code: 'EUNSUPPORTED' });
    trees.set(i, tree);
    const source = posix.resolve(bundle, m.source);
    // a source inside the rootfs is resolved in it, never by its host path (an image's symlink)
    const rel = rootfs === undefined ? '..' : posix.relative(rootfs, source);
    const inRootfs = rel !== '..' && !rel.startsWith('../') && !posix.isAbsolute(rel);
    steps.push({
      op: 'idmapTree',
      source: inRootfs ? `/${rel}` : source,
      ...(inRootfs ? { root: rootfs } : {}),
      slot,
      recursive: (opts.flags & MS.REC) !== 0,
      idmapRecursive: mode === 'ridmap',
      flags: opts.flags & ~(MS.BIND | MS.REC | MS.REMOUNT),
      tree,
      describe: `prepare the idmapped mount of ${source} (${where})`,
    });
  });
  return { steps, trees };
}

/** Every directory from / down to `dir` lets others search it (the mapped root walks to what is staged there). */
function searchableByAll(dir: string): boolean {
  for (let d = dir; ; d = posix.dirname(d)) {
    try {
      if ((statSync(d).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (d === '/') return true;
  }
}

/** The plain host bind sources of `spec`, staged under `input.stageDir` (see UsernsPlan.stagedSources). */
function stageBindSources(
  spec: Spec,
  input: UsernsPlanInput,
  before: PlanStep[],
  staged: Map<number, string>,
): void {
  (spec.mounts ?? []).forEach((m, i) => {
    if (!isBind(m) || !m.source || m.uidMappings?.length || m.gidMappings?.length) return;
    const opts = parseMountOptions(m.options, `mounts[${i}].options`);
    if (opts.idmap) return; // prepared as a detached copy (planIdmappedMounts)
    const source = posix.resolve(input.bundle, m.source);
    const rel = posix.relative(input.rootfs, source);
    if (rel !== '..' && !rel.startsWith('../')) return; // the container's own path, resolved in its root
    let dir: boolean;
    try {
      dir = statSync(source).isDirectory();
    } catch {
      return; // the rootfs plan says it is missing
    }
    if (!staged.size)
      before.push({
        op: 'mkdir',
        path: input.stageDir!,
        mode: 0o711,
        describe: 'create the bind staging directory',
      });
    const at = posix.join(input.stageDir!, String(i));
    before.push(
      dir
        ? { op: 'mkdir', path: at, mode: 0o711, describe: `create the staging directory of mounts[${i}]` }
        : { op: 'mkfile', path: at, mode: 0o600, describe: `create the staging file of mounts[${i}]` },
      {
        op: 'idmapBind',
        source,
        target: at,
        slot: -1,
        recursive: (opts.flags & MS.REC) !== 0,
        describe: `stage the bind source ${source} (mounts[${i}])`,
      },
    );
    staged.set(i, at);
  });
}

/**
 * Plans the user namespace for planContainer, or undefined without one.
 * Maps are written by the launcher for its own child (never a pid from the
 * plan): as root directly; without root by the rootless writer (newuidmap).
 */
export function planUserns(spec: Spec, input: UsernsPlanInput): UsernsPlan | undefined {
  const u = usernsConfig(spec);
  if (!u) return undefined;
  const rootIdmap = spec.annotations?.[ANNOTATION_ROOTFS_IDMAP];
  if (rootIdmap !== undefined && rootIdmap !== 'true' && rootIdmap !== 'false') {
    throw invalid(
      `annotations["${ANNOTATION_ROOTFS_IDMAP}"]: ${JSON.stringify(rootIdmap)} is not "true" or "false"`,
    );
  }
  if (!u.create) {
    if (rootIdmap === 'true') {
      throw invalid(
        `annotations["${ANNOTATION_ROOTFS_IDMAP}"]: an idmapped root needs a new user namespace; the container joins one (linux.namespaces "user" with a path)`,
      );
    }
    return {
      beforeClone: [],
      afterClone: [{ op: 'usernsRoot', setgroups: 0 }],
      overlayMounted: false,
      rootByCwd: false,
      config: u,
      stagedSources: new Map(),
    };
  }
  const rootless = isRootless();
  let writer: IdmapWriterStep = { mode: 0 };
  let setgroups: SetgroupsMode = 0;
  if (rootless) {
    writer = rootlessIdmapWriter(u.uidMappings, u.gidMappings);
    // an unprivileged writer of gid_map must deny setgroups first (user_namespaces(7))
    if (writer.mode === 0) setgroups = 1;
  }
  const maps = planIdmap({ uidMappings: u.uidMappings, gidMappings: u.gidMappings, setgroups, writer });
  const before: PlanStep[] = [];
  const stagedSources = new Map<number, string>();
  let overlayMounted = false;
  const wantRootIdmap = rootIdmap === 'true' && !input.overlay;
  let rootByCwd = false;
  if (!rootless) {
    // A mount namespace of the launcher's own (the host's mounts its slaves): what is mounted
    // here with host root's rights reaches the container (its mount namespace is a copy of
    // this one) and never the host; it goes away with the launcher.
    before.push({
      op: 'unshare',
      flags: CLONE_NEWNS,
      describe: 'make a private mount namespace for the launcher',
    });
    before.push({ op: 'mount', target: '/', flags: MS.SLAVE | MS.REC, describe: 'make / a slave mount' });
    // the user namespaces idmapped mounts take their mapping from (helpers, reaped at once)
    const slot = (uid: IdMapping[], gid: IdMapping[], n: number): PlanStep => ({
      op: 'idmapUserns',
      slot: n,
      uidMap: formatIdMap(uid),
      gidMap: formatIdMap(gid),
      setgroups: 0,
      writer: { mode: 0 },
    });
    before.push(slot(u.uidMappings, u.gidMappings, 0));
    if (input.overlay) {
      // One image store for every mapping: each layer is seen through an idmapped mount
      // (on-disk 0 is the container's 0), the overlay is mounted over them by host root, and
      // what the container writes lands in its upper directory with its mapped ids.
      for (const lower of input.overlay.lower) {
        before.push({
          op: 'idmapBind',
          source: lower,
          target: lower,
          slot: 0,
          recursive: false,
          describe: `idmapped mount of the image layer ${lower}`,
        });
      }
      const { lower, upper, work } = input.overlay;
      before.push({
        op: 'mount',
        source: 'overlay',
        target: input.rootfs,
        fstype: 'overlay',
        flags: 0,
        data: `lowerdir=${lower.join(':')},upperdir=${upper},workdir=${work}`,
        describe: `mount the image snapshot (overlay, idmapped layers) on ${input.rootfs}`,
      });
      overlayMounted = true;
    }
    if (wantRootIdmap) {
      before.push({
        op: 'idmapBind',
        source: input.rootfs,
        target: input.rootfs,
        slot: 0,
        recursive: false,
        describe: `idmapped mount of the root filesystem ${input.rootfs}`,
      });
    }
    if (!input.overlay && !wantRootIdmap) {
      before.push({
        op: 'mount',
        source: input.rootfs,
        target: input.rootfs,
        flags: MS.BIND | MS.REC,
        describe: `bind the root filesystem ${input.rootfs} onto itself`,
      });
    }
    before.push({
      op: 'chdir',
      path: input.rootfs,
      describe: `change to the root filesystem ${input.rootfs}`,
    });
    rootByCwd = true;
    if (input.stageDir && searchableByAll(posix.dirname(input.stageDir)))
      stageBindSources(spec, input, before, stagedSources);
  } else if (wantRootIdmap) {
    throw new BerthError(`annotations["${ANNOTATION_ROOTFS_IDMAP}"]: idmapped mounts need root`, {
      code: 'EROOTLESS',
    });
  }
  before.push(maps.beforeClone);
  const after: PlanStep[] = [maps.afterClone];
  if (rootByCwd) after.push({ op: 'rootRebind' });
  return { beforeClone: before, afterClone: after, overlayMounted, rootByCwd, config: u, stagedSources };
}

/**
 * The rootfs plan inside a user namespace: device nodes cannot be made there
 * (mknod needs CAP_MKNOD in the host's namespace), so each is an empty file
 * with the host's node bound onto it, as runc does; and sysfs cannot be
 * mounted without a network namespace the user namespace owns, so /sys is the
 * host's, bound recursively with the mount's flags (runc does the same).
 */
export function adaptRootfsForUserns(
  steps: readonly PlanStep[],
  cloneFlags: number,
  rootByCwd: { rootfs: string } | undefined,
): PlanStep[] {
  const out: PlanStep[] = [];
  const ownNet = (cloneFlags & CLONE_NEWNET) !== 0;
  for (const s of steps) {
    if (rootByCwd && s.op === 'root') continue; // opened as "." first thing in the child
    if (
      rootByCwd &&
      s.op === 'mount' &&
      !s.inRoot &&
      (s.flags & MS.BIND) !== 0 &&
      s.source === rootByCwd.rootfs &&
      s.target === rootByCwd.rootfs
    )
      continue; // the rootfs is a mount point already (made before the clone)
    if (s.op === 'mknod' && s.inRoot && (s.mode & 0o170000) !== 0o010000) {
      checkHostDevice(s);
      out.push({
        op: 'mkfile',
        path: s.path,
        mode: 0,
        inRoot: true,
        describe: `create ${s.path} (to bind the host's device onto)`,
      });
      out.push({
        op: 'mount',
        source: s.path,
        target: s.path,
        flags: MS.BIND,
        inRoot: true,
        describe: `bind the host's device ${s.path} (a user namespace cannot make device nodes)`,
      });
    } else if (s.op === 'mount' && s.fstype === 'sysfs' && !ownNet) {
      out.push({
        op: 'mount',
        source: '/sys',
        target: s.target,
        flags: MS.BIND | MS.REC | (s.flags & (MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC)),
        inRoot: s.inRoot ?? false,
        describe: `bind the host's /sys on ${s.target} (sysfs needs a network namespace of the user namespace's own)`,
      });
    } else out.push(s);
  }
  return out;
}

/** The host node bound for a device must be that device, under /dev: a config names no other host file this way. */
function checkHostDevice(s: Extract<PlanStep, { op: 'mknod' }>): void {
  const path = posix.normalize(s.path);
  let ok = false;
  try {
    const st = statSync(path);
    const kind = s.mode & 0o170000;
    ok =
      path.startsWith('/dev/') &&
      ((kind === 0o020000 && st.isCharacterDevice()) || (kind === 0o060000 && st.isBlockDevice())) &&
      st.rdev === makedev(s.major, s.minor);
  } catch {
    ok = false;
  }
  if (!ok) {
    throw invalid(
      `linux.devices: ${s.path} (${s.major}:${s.minor}) cannot be made in a user namespace, and the host has no such device at that path to bind`,
    );
  }
}

/** Linux's dev_t encoding (glibc makedev). */
function makedev(major: number, minor: number): number {
  return (
    (minor & 0xff) +
    (major & 0xfff) * 2 ** 8 +
    Math.floor(minor / 256) * 2 ** 20 +
    Math.floor(major / 4096) * 2 ** 32
  );
}

/**
 * The image snapshot's upper directory belongs to the container's root (its
 * mapped host ids): the overlay's root directory takes its owner from it. Only
 * for a new user namespace made by root; the directory is the runtime's own.
 */
export function ownSnapshotUpper(spec: Spec, upper: string): void {
  if (isRootless()) return;
  const u = usernsConfig(spec);
  if (!u?.create) return;
  const root = hostRoot(u);
  if (root) chownSync(upper, root.uid, root.gid);
}

// ---------------------------------------------------------------------------
// `berth run --userns=auto|keep-id|host`, `--uidmap/--gidmap` (podman's flags)

/** What `berth run IMAGE` asks for. */
export type UsernsRequest =
  | { mode: 'host' }
  | { mode: 'auto'; size?: number }
  | { mode: 'keep-id'; uid: number; gid: number }
  | { mode: 'maps'; uidMappings: IdMapping[]; gidMappings: IdMapping[] };

/** The size of an automatic range (podman's default for --userns=auto is also 65536 at most). */
export const AUTO_RANGE_SIZE = 65536;
/**
 * Where automatic ranges start without a `containers` entry in /etc/subuid:
 * far above the ranges useradd hands out (100000 upward, 65536 each), and
 * every range /etc/subuid or /etc/subgid lists is skipped anyway.
 */
export const AUTO_RANGE_BASE = 1_000_000_000;
const AUTO_FILE = 'userns.json';

interface Range {
  start: number;
  size: number;
}

function subIdRanges(file: string, user?: string): Range[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const out: Range[] = [];
  for (const line of text.split('\n')) {
    const [name, start, size] = line.trim().split(':');
    if (!name || name.startsWith('#') || start === undefined || size === undefined) continue;
    if (user !== undefined && name !== user) continue;
    const s = Number(start);
    const n = Number(size);
    if (Number.isInteger(s) && Number.isInteger(n) && n > 0) out.push({ start: s, size: n });
  }
  return out;
}

const overlaps = (a: Range, b: Range) => a.start < b.start + b.size && b.start < a.start + a.size;

/**
 * Picks a free range of `size` ids for container `id` and records it in
 * `<store>/containers/<id>/userns.json` (the container's own directory, removed
 * at delete: that frees the range). Under a lock, so two runs never get the same
 * range. The pool: the `containers` entries of /etc/subuid (as podman), else
 * ids from 1000000000 up, never a range /etc/subuid or /etc/subgid gives a user.
 */
export async function allocateAutoRange(
  storeRoot: string,
  id: string,
  size = AUTO_RANGE_SIZE,
  etc = '/etc',
): Promise<number> {
  const { lockFile, withProcessLock } = await import('@berth/sys');
  const { readdirSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const containers = join(storeRoot, 'containers');
  return withProcessLock(
    lockFile(join(storeRoot, '@locks'), 'userns-auto'),
    async () => {
      const used: Range[] = [];
      for (const name of readdirSync(containers)) {
        try {
          const r = JSON.parse(readFileSync(join(containers, name, AUTO_FILE), 'utf8')) as Range;
          if (Number.isInteger(r.start) && Number.isInteger(r.size)) used.push(r);
        } catch {
          // no automatic range there
        }
      }
      const pool = subIdRanges(join(etc, 'subuid'), 'containers');
      const others = [...subIdRanges(join(etc, 'subuid')), ...subIdRanges(join(etc, 'subgid'))].filter(
        (r) => !pool.some((p) => p.start === r.start && p.size === r.size),
      );
      const candidates = pool.length
        ? pool
        : [{ start: AUTO_RANGE_BASE, size: 4294967294 - AUTO_RANGE_BASE }];
      for (const p of candidates) {
        for (let start = p.start; start + size <= p.start + p.size; ) {
          const want = { start, size };
          const clash = [...used, ...(pool.length ? [] : others)].find((r) => overlaps(r, want));
          if (!clash) {
            writeFileSync(join(containers, id, AUTO_FILE), JSON.stringify(want), { mode: 0o644 });
            return start;
          }
          start = clash.start + clash.size;
        }
      }
      throw new BerthError(`--userns=auto: no free range of ${size} ids is left`, { code: 'ENOSPC' });
    },
    { what: 'the automatic user namespace ranges' },
  );
}

/**
 * The maps of a `berth run` request. `keep-id` (as root) keeps `uid`/`gid` (the
 * user who ran sudo: $SUDO_UID, $SUDO_GID) as the same ids inside, every other
 * container id from an automatic range; the process runs as that user.
 */
export async function resolveUsernsRequest(
  req: UsernsRequest,
  storeRoot: string,
  id: string,
): Promise<
  { uidMappings: IdMapping[]; gidMappings: IdMapping[]; user?: { uid: number; gid: number } } | undefined
> {
  if (req.mode === 'host') return undefined;
  if (!isRootless()) {
    // the container's root (a mapped id) must search the store's root to reach the files bound
    // from the container's own directory (resolv.conf, hosts: containers/ID/net); listing stays root's
    const mode = statSync(storeRoot).mode & 0o7777;
    if ((mode & 0o011) !== 0o011) chmodSync(storeRoot, mode | 0o011);
  }
  if (req.mode === 'maps') {
    const uidMappings = validateIdMappings(req.uidMappings, '--uidmap');
    const gidMappings = validateIdMappings(
      req.gidMappings.length ? req.gidMappings : req.uidMappings,
      '--gidmap',
    );
    return { uidMappings, gidMappings };
  }
  const size = req.mode === 'auto' ? (req.size ?? AUTO_RANGE_SIZE) : AUTO_RANGE_SIZE;
  const base = await allocateAutoRange(storeRoot, id, size);
  if (req.mode === 'auto') {
    const all = [{ containerID: 0, hostID: base, size }];
    return { uidMappings: all, gidMappings: all };
  }
  const keep = (own: number): IdMapping[] => {
    if (own >= size)
      return [
        { containerID: 0, hostID: base, size },
        { containerID: own, hostID: own, size: 1 },
      ];
    const maps: IdMapping[] = [];
    if (own > 0) maps.push({ containerID: 0, hostID: base, size: own });
    maps.push({ containerID: own, hostID: own, size: 1 });
    if (own + 1 < size) maps.push({ containerID: own + 1, hostID: base + own, size: size - own - 1 });
    return maps;
  };
  return { uidMappings: keep(req.uid), gidMappings: keep(req.gid), user: { uid: req.uid, gid: req.gid } };
}

/** Puts a user namespace with these maps into an image bundle's config (the snapshot is idmapped at create). */
export function withUserns(
  spec: Spec,
  maps: { uidMappings: IdMapping[]; gidMappings: IdMapping[]; user?: { uid: number; gid: number } },
  userGiven: boolean,
): void {
  spec.linux = spec.linux ?? {};
  const linux = spec.linux;
  linux.namespaces = [{ type: 'user' }, ...(linux.namespaces ?? []).filter((n) => n.type !== 'user')];
  linux.uidMappings = maps.uidMappings;
  linux.gidMappings = maps.gidMappings;
  if (maps.user && !userGiven && spec.process) {
    spec.process.user = { ...spec.process.user, uid: maps.user.uid, gid: maps.user.gid };
  }
}
