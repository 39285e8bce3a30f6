import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { BerthError, MS, type PlanStep } from '@berth/sys';
import { parseMountOptions, propagationFlags } from './options.js';

/** An OCI mount (`mounts[]` of config.json). */
export interface MountEntry {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  /** An idmapped bind mount's own maps (with them, the mount is idmapped even without "idmap"). */
  uidMappings?: readonly unknown[];
  gidMappings?: readonly unknown[];
}

/** An OCI device (`linux.devices[]`). */
export interface DeviceEntry {
  path: string;
  type: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface RootfsConfig {
  /** Absolute host path of the root filesystem (root.path resolved against the bundle). */
  rootfs: string;
  /** The bundle directory: relative bind-mount sources are resolved against it. */
  bundle: string;
  readonly?: boolean;
  mounts?: readonly MountEntry[];
  devices?: readonly DeviceEntry[];
  maskedPaths?: readonly string[];
  readonlyPaths?: readonly string[];
  rootfsPropagation?: string;
  /**
   * `linux.mountLabel`: the SELinux context given to the mounts that take one
   * (`context="…"`; every mount but bind, proc, sysfs, mqueue and cgroup mounts,
   * as runc; an mqueue mount's root directory gets it as its label instead, where
   * the container has an IPC namespace of its own). Pass it only where SELinux is
   * enabled: runc drops it elsewhere.
   */
  mountLabel?: string;
  /**
   * Whether the container gets a new IPC namespace: only then is its mqueue
   * filesystem its own, to label (the host's, or another container's, keeps its label).
   */
  ipcNamespace?: boolean;
  /** `cgroup` mounts: what the host has (v1/hybrid cannot be mounted as one filesystem). */
  cgroupLayout?: 'v1' | 'v2' | 'hybrid';
  /** Whether the container gets its own cgroup namespace. */
  cgroupNamespace?: boolean;
  /** Steps to run right after pivot_root, before paths are made read-only or masked (sysctls). */
  afterPivot?: readonly PlanStep[];
  /** The container's cgroup directories on the host, by controller (`unified` for cgroup2), to show under a `cgroup` mount. */
  cgroupPaths?: Readonly<Record<string, string>>;
  /**
   * Idmapped bind mounts, prepared before the clone (`idmapTree` steps, made by
   * `@berth/runtime`): the index in `mounts` → the prepared tree. Each is attached with a
   * `bindTree` step; an idmapped mount that is not here is refused, never bound plainly.
   */
  preparedBinds?: ReadonlyMap<number, number>;
  /**
   * Bind sources staged before the clone (`@berth/runtime`, user namespaces): the index in
   * `mounts` → the host path the launcher copied the source onto; the bind is made from there.
   */
  stagedSources?: ReadonlyMap<number, string>;
}

/** The devices every container gets (runc's and the OCI spec's default set). */
export const DEFAULT_DEVICES: readonly DeviceEntry[] = [
  { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o666 },
  { path: '/dev/zero', type: 'c', major: 1, minor: 5, fileMode: 0o666 },
  { path: '/dev/full', type: 'c', major: 1, minor: 7, fileMode: 0o666 },
  { path: '/dev/random', type: 'c', major: 1, minor: 8, fileMode: 0o666 },
  { path: '/dev/urandom', type: 'c', major: 1, minor: 9, fileMode: 0o666 },
  { path: '/dev/tty', type: 'c', major: 5, minor: 0, fileMode: 0o666 },
];

/** The symlinks of a standard /dev. */
export const DEV_SYMLINKS: ReadonlyArray<[target: string, path: string]> = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
  ['/proc/kcore', '/dev/core'],
  ['pts/ptmx', '/dev/ptmx'],
];

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;

function invalid(message: string): BerthError {
  return new BerthError(message, { code: 'EINVALIDSPEC' });
}

/**
 * Plans the container's root filesystem for the launcher, in runc's order:
 * make the host's mounts slaves of ours, bind the rootfs onto itself, mount
 * every `mounts[]` entry inside it, create /dev nodes and links, pivot_root,
 * then readonly paths, masked paths and a read-only `/`.
 *
 * Every path inside the container stays a container path here (`inRoot`
 * steps): the launcher resolves it against a directory fd of the root when
 * it acts, after the earlier mounts exist. Nothing is looked up now and used
 * later, so no symlink in the image can send a mount or a device node to the
 * host.
 */
export function planRootfs(config: RootfsConfig): PlanStep[] {
  const root = posix.resolve(config.rootfs);
  const steps: PlanStep[] = [];
  let rootProp = MS.SLAVE | MS.REC;
  if (config.rootfsPropagation !== undefined) {
    const p = propagationFlags(config.rootfsPropagation);
    if (p === undefined)
      throw invalid(
        `linux.rootfsPropagation: ${JSON.stringify(config.rootfsPropagation)} is not a propagation mode`,
      );
    rootProp = p;
  }
  // Until pivot_root the host's mounts are slaves of the host (private if asked): nothing made here
  // propagates out, and every bind can be made. The asked propagation is set on the new / afterwards.
  const setup = (rootProp & MS.PRIVATE) !== 0 ? MS.PRIVATE | MS.REC : MS.SLAVE | MS.REC;
  steps.push({
    op: 'mount',
    target: '/',
    flags: setup,
    describe: setup & MS.PRIVATE ? 'make / a private mount' : 'make / a slave mount',
  });
  steps.push({
    op: 'mount',
    source: root,
    target: root,
    flags: MS.BIND | MS.REC,
    describe: `bind the root filesystem ${root} onto itself`,
  });
  steps.push({ op: 'root', path: root });

  // The default devices and /dev links are made unless /dev is a bind mount (runc's rule): in
  // a tmpfs mounted there, or in the image's own /dev when nothing is
  let devIsBind = false;
  (config.mounts ?? []).forEach((m, i) => {
    // a relative destination is relative to / (deprecated, still valid: config.md); one that
    // names the rootfs's host path is taken inside it, as runc does (IsLexicallyInRoot)
    let dest = posix.normalize(`/${m.destination}`);
    const underRoot = posix.relative(config.rootfs, dest);
    if (posix.isAbsolute(m.destination) && underRoot !== '..' && !underRoot.startsWith('../'))
      dest = posix.normalize(`/${underRoot}`);
    if (dest === '/dev')
      devIsBind = m.type === 'bind' || (m.options ?? []).some((o) => o === 'bind' || o === 'rbind');
    steps.push(...planMount(m, i, dest, config));
  });

  if (!devIsBind) {
    for (const dev of DEFAULT_DEVICES) steps.push(deviceStep(dev));
    for (const [k, dev] of (config.devices ?? []).entries())
      steps.push(deviceStep(dev, `linux.devices[${k}]: `));
    for (const [target, path] of DEV_SYMLINKS) steps.push({ op: 'symlink', target, path, inRoot: true });
  } else {
    for (const [k, dev] of (config.devices ?? []).entries())
      steps.push(deviceStep(dev, `linux.devices[${k}]: `));
  }

  // A read-only /dev tmpfs is mounted writable, filled (pts, shm, devices, links), and made
  // read-only after pivot_root, as runc does (finalizeRootfs)
  const devRo = steps.find(
    (x): x is Extract<PlanStep, { op: 'mount' }> =>
      x.op === 'mount' && x.target === '/dev' && x.fstype !== undefined && (x.flags & MS.RDONLY) !== 0,
  );
  if (devRo) devRo.flags &= ~MS.RDONLY;

  steps.push({ op: 'pivotRoot', root, describe: `pivot_root to ${root}` });
  steps.push(...(config.afterPivot ?? []));
  if (devRo)
    steps.push({
      op: 'mount',
      target: '/dev',
      flags: MS.BIND | MS.REMOUNT | MS.RDONLY | (devRo.flags & (MS.NOSUID | MS.NODEV | MS.NOEXEC)),
      inRoot: true,
      describe: 'remount /dev read-only',
    });
  // each path once (a second mount over the same path would hide the first for nothing)
  for (const p of new Set(config.readonlyPaths ?? []))
    steps.push({ op: 'readonly', path: p, optional: true, inRoot: true });
  // a masked directory's tmpfs carries linux.mountLabel too (runc's maskPath)
  const maskData = withMountLabel(undefined, 'tmpfs', config.mountLabel);
  for (const p of new Set(config.maskedPaths ?? []))
    steps.push({
      op: 'mask',
      path: p,
      optional: true,
      inRoot: true,
      ...(maskData ? { data: maskData } : {}),
    });
  if (config.readonly) {
    steps.push({
      op: 'mount',
      target: '/',
      flags: MS.BIND | MS.REMOUNT | MS.RDONLY,
      describe: 'remount / read-only (root.readonly)',
    });
  }
  // last: a shared or unbindable / would refuse the binds above (read-only and masked paths)
  if (config.rootfsPropagation !== undefined) {
    steps.push({
      op: 'mount',
      target: '/',
      flags: rootProp,
      describe: `set propagation of / to ${config.rootfsPropagation}`,
    });
  }
  return steps;
}

function planMount(m: MountEntry, i: number, dest: string, config: RootfsConfig): PlanStep[] {
  const where = `mounts[${i}]`;
  const opts = parseMountOptions(m.options, `${where}.options`);
  const type = m.type ?? '';
  const isBind = (opts.flags & MS.BIND) !== 0 || type === 'bind';
  const steps: PlanStep[] = [];
  // the JSON path first: a failure names the entry of config.json it came from
  const label = `${where}: mount ${m.source ?? type} on ${m.destination}`;

  if (isBind) {
    if (!m.source) throw invalid(`${where}.source: a bind mount needs a source`);
    // A bind mount takes no filesystem data: the kernel would ignore a word here, so a typo of
    // a flag ("nosiud") would leave the mount without it. `x-…` words are userspace's (mount(8)).
    const unknown = opts.dataAt.find((k) => !m.options![k]!.startsWith('x-'));
    if (unknown !== undefined)
      throw invalid(
        `${where}.options[${unknown}]: ${JSON.stringify(m.options![unknown])} is not a mount option berth knows (a bind mount takes flags, not filesystem data)`,
      );
    const source = posix.resolve(config.bundle, m.source);
    const inRootfs = posix.relative(config.rootfs, source);
    const tree = config.preparedBinds?.get(i);
    if (tree === undefined && (opts.idmap || m.uidMappings?.length || m.gidMappings?.length))
      throw new BerthError(
        `${where}: an idmapped mount is prepared before the clone (@berth/runtime); this plan has none for it`,
        { code: 'EUNSUPPORTED' },
      );
    if (
      inRootfs !== '..' &&
      !inRootfs.startsWith('../') &&
      !posix.isAbsolute(inRootfs) &&
      tree === undefined
    ) {
      // A source inside the rootfs is the container's path: resolved in its root when the
      // mount is made (it may be under an earlier mount), never by its host path, where a
      // symlink in the image could lead anywhere on the host.
      const rest = opts.flags & ~(MS.BIND | MS.REC | MS.REMOUNT);
      steps.push({
        op: 'mount',
        source: `/${inRootfs}`,
        target: dest,
        flags: MS.BIND | (opts.flags & MS.REC) | rest,
        describe: `${where}: bind ${m.source} (in the container) on ${m.destination}`,
        inRoot: true,
        sourceInRoot: true,
      });
    } else {
      let isDir: boolean;
      try {
        isDir = statSync(source).isDirectory();
      } catch {
        throw new BerthError(`${where}.source: ${source} does not exist`, { code: 'ENOENT', path: source });
      }
      steps.push(
        isDir
          ? { op: 'mkdir', path: dest, mode: 0o755, inRoot: true }
          : { op: 'mkfile', path: dest, mode: 0o644, inRoot: true },
      );
      if (tree !== undefined) {
        // made (idmapped, with its flags) before the clone: attached here, in the mounts' order
        steps.push({
          op: 'bindTree',
          tree,
          target: dest,
          describe: `${where}: bind ${source} on ${m.destination} (idmapped)`,
          inRoot: true,
        });
      } else {
        // The launcher applies the flags to the new mount before attaching it (for
        // rbind, to every submount too), so it is never visible writable.
        const rest = opts.flags & ~(MS.BIND | MS.REC | MS.REMOUNT);
        steps.push({
          op: 'mount',
          source: config.stagedSources?.get(i) ?? source,
          target: dest,
          flags: MS.BIND | (opts.flags & MS.REC) | rest,
          describe: `${where}: bind ${source} on ${m.destination}`,
          inRoot: true,
        });
      }
    }
  } else if (opts.idmap || m.uidMappings?.length || m.gidMappings?.length) {
    throw invalid(`${where}: idmapped mounts are only supported for bind mounts`);
  } else if (type === 'cgroup' || type === 'cgroup2') {
    steps.push(...planCgroupMount(m, dest, opts.flags, config));
  } else {
    if (!type) throw invalid(`${where}.type: must be set for a non-bind mount`);
    if (opts.tmpcopyup && type !== 'tmpfs')
      throw invalid(`${where}.options: tmpcopyup needs a tmpfs mount, not ${JSON.stringify(type)}`);
    // a tmpfs on a directory made for it keeps tmpfs's 1777; on the image's own, that one's mode
    steps.push({
      op: 'mkdir',
      path: dest,
      mode: 0o755,
      inRoot: true,
      ...(type === 'tmpfs' ? { noteMade: true } : {}),
    });
    const data = withMountLabel(opts.data, type, config.mountLabel);
    const labelled = data !== opts.data;
    steps.push({
      op: 'mount',
      source: m.source ?? type,
      target: dest,
      fstype: type,
      flags: opts.flags & ~MS.REMOUNT,
      ...(data ? { data } : {}),
      // the kernel's EINVAL for a context the policy does not know names the field
      describe: labelled
        ? `${label} with context ${JSON.stringify(config.mountLabel)} (linux.mountLabel)`
        : label,
      inRoot: true,
      ...(opts.tmpcopyup ? { tmpcopyup: true } : {}),
    });
    // mqueue: its superblock is the IPC namespace's, made with the namespace, so a context=
    // option is refused (EINVAL: "same superblock, different security settings"); runc
    // labels its root directory instead (label.SetFileLabel), here by fd. Only a new IPC
    // namespace's: relabelling the host's (or another container's) would change it.
    if (type === 'mqueue' && config.mountLabel && config.ipcNamespace) {
      checkMountLabel(config.mountLabel);
      steps.push({
        op: 'lsm',
        attr: dest,
        value: config.mountLabel,
        inRoot: true,
        describe: `set the SELinux label of ${m.destination} to ${JSON.stringify(config.mountLabel)} (linux.mountLabel)`,
      });
    }
  }
  for (const p of opts.propagation) {
    steps.push({
      op: 'mount',
      target: dest,
      flags: p,
      describe: `${where}: set propagation of ${m.destination}`,
      inRoot: true,
    });
  }
  return steps;
}

/**
 * Filesystems that take no SELinux `context=` option (runc's label.FormatMountLabel callers
 * skip them): proc and sysfs, and mqueue, whose superblock exists before the mount.
 */
const NO_CONTEXT = new Set(['proc', 'sysfs', 'mqueue']);

function checkMountLabel(label: string): void {
  if (/["\n\0]/.test(label) || label.trim() === '')
    throw invalid(`linux.mountLabel: ${JSON.stringify(label)} is not an SELinux context`);
}

/** The mount's data with `context="LABEL"` added, for the filesystems that take one. */
export function withMountLabel(
  data: string | undefined,
  type: string,
  label: string | undefined,
): string | undefined {
  if (!label || NO_CONTEXT.has(type)) return data;
  checkMountLabel(label);
  if (data && /(^|,)(context|fscontext|defcontext|rootcontext)=/.test(data)) return data; // the mount names its own context: it wins, as in runc
  const context = `context="${label}"`;
  return data ? `${data},${context}` : context;
}

function deviceStep(dev: DeviceEntry, where = ''): PlanStep {
  const kind = dev.type === 'b' ? S_IFBLK : dev.type === 'p' ? S_IFIFO : S_IFCHR;
  return {
    op: 'mknod',
    inRoot: true,
    path: dev.path,
    mode: kind | ((dev.fileMode ?? 0o666) & 0o7777),
    major: dev.major ?? 0,
    minor: dev.minor ?? 0,
    uid: dev.uid ?? 0,
    gid: dev.gid ?? 0,
    describe: `${where}create device ${dev.path}`,
  };
}

/**
 * A `cgroup` mount shows the container its own cgroup. With a cgroup namespace
 * on a v2 host that is a cgroup2 mount; otherwise (v1, hybrid, or no cgroup
 * namespace) a tmpfs with the container's cgroup directories bound into it,
 * one per controller, as runc does.
 */
function planCgroupMount(m: MountEntry, dest: string, flags: number, config: RootfsConfig): PlanStep[] {
  const label = `mount ${m.source ?? 'cgroup'} on ${m.destination}`;
  const steps: PlanStep[] = [{ op: 'mkdir', path: dest, mode: 0o755, inRoot: true }];
  const paths = config.cgroupPaths ?? {};
  const unified = paths['unified'];
  if (config.cgroupLayout === 'v2' && config.cgroupNamespace) {
    steps.push({
      op: 'mount',
      source: 'cgroup2',
      target: dest,
      fstype: 'cgroup2',
      flags,
      describe: label,
      inRoot: true,
    });
    return steps;
  }
  if (config.cgroupLayout === 'v2' && unified) {
    steps.push({
      op: 'mount',
      source: unified,
      target: dest,
      flags: MS.BIND | MS.REC | (flags & ~MS.REC),
      describe: `bind the container's cgroup on ${m.destination}`,
      inRoot: true,
    });
    return steps;
  }
  const base = MS.NOSUID | MS.NODEV | MS.NOEXEC;
  steps.push({
    op: 'mount',
    source: 'tmpfs',
    target: dest,
    fstype: 'tmpfs',
    flags: base,
    data: 'mode=755',
    describe: label,
    inRoot: true,
  });
  for (const [name, hostDir] of Object.entries(paths)) {
    const sub = posix.join(dest, name);
    steps.push({ op: 'mkdir', path: sub, mode: 0o755, inRoot: true });
    steps.push({
      op: 'mount',
      source: hostDir,
      target: sub,
      flags: MS.BIND | MS.REC | base | (flags & MS.RDONLY),
      describe: `bind cgroup ${name} on ${sub}`,
      inRoot: true,
    });
  }
  if (flags & MS.RDONLY) {
    steps.push({
      op: 'mount',
      target: dest,
      flags: MS.BIND | MS.REMOUNT | base | MS.RDONLY,
      describe: `remount ${m.destination} read-only`,
      inRoot: true,
    });
  }
  return steps;
}
