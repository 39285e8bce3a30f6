import { statSync } from 'node:fs';
import { isAbsolute, posix, resolve } from 'node:path';
import { planNamespaces } from '@berth/namespaces';
import { planRootfs } from '@berth/rootfs';
import { type Process, RLIMITS, type Spec } from '@berth/spec';
import {
  BerthError,
  CLONE_NEWCGROUP,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWTIME,
  CLONE_NEWUTS,
  type CompiledSeccomp,
  inUserNamespace,
  MS,
  type PlanStep,
} from '@berth/sys';
import { capabilitySets } from './caps.js';
import { canRaiseLimits, clampRlimit, hostHardLimits, UNLIMITED } from './rlimits.js';
import { isRootless } from './rootless.js';
import {
  checkLinuxSupport,
  checkSelinuxContext,
  hostLsms,
  planProcessSecurity,
  planTimeNamespace,
  type SecurityContext,
} from './security.js';
import { planSysctls } from './sysctl.js';
import { adaptRootfsForUserns, planIdmappedMounts, planUserns } from './userns.js';

/** Sync ids: where the container's first process stops for the runtime. */
export const SYNC_NS_READY = 1;
export const SYNC_READY_TO_EXEC = 2;
/** Mounts are done, pivot_root is next: the runtime runs the createContainer hooks in the container. */
export const SYNC_CREATE_CONTAINER = 3;

/** runc's session keyring permissions: keep the kernel's, add "user may search" (0x80000). */
export const KEYRING_PERM_MASK = 0xffffffff;
export const KEYRING_PERM_SET = 0x00080000;

export interface PlanContext {
  bundle: string;
  /** Foreground: the launcher stays, waits for the container and exits with its status. */
  foreground: boolean;
  /** In the foreground without a pty: stdio through pipes the launcher copies (CreateOptions.relayStdio). */
  relayStdio?: boolean;
  /**
   * The container's own directory for staged bind sources (its state directory's `binds`):
   * a user-namespace container's host bind sources are staged there (UsernsPlan.stagedSources).
   */
  stageDir?: string;
  /** Detached create: the exec fifo `start` opens. */
  fifo?: string;
  /** A console socket to hand the pty master to (runc --console-socket). */
  consoleSocket?: string;
  /** Extra fds passed through (runc --preserve-fds). */
  preserveFds?: number;
  /** An overlay to mount on the rootfs inside the container's mount namespace. */
  overlay?: { lower: string[]; upper: string; work: string };
  cgroupLayout?: 'v1' | 'v2' | 'hybrid';
  /** The container's cgroup directories (controller → host dir), shown at a `cgroup` mount. */
  cgroupPaths?: Record<string, string>;
  /**
   * The container's process joins its cgroup itself, without the RCU grace period a pid
   * written to cgroup.procs costs: it is created in the cgroup2 directory `v2` (clone3
   * CLONE_INTO_CGROUP), and moves itself into the v1 directories `v1` right after the first
   * sync (before a new cgroup namespace is made). Absent: the runtime moves it.
   */
  cgroupJoin?: { v1: string[]; v2?: string };
  /** `linux.seccomp` compiled (`compileProfile`); required when the config has one. */
  seccomp?: CompiledSeccomp;
  /** The host's LSMs (default: read from the host). */
  lsms?: { apparmor: boolean; selinux: boolean };
  /** Join a new session keyring of this name before exec (runc: `_ses.ID`); absent: keep the runtime's (--no-new-keyring). */
  keyring?: string;
  /**
   * The runtime's own namespaces (/proc/self/ns/*) as `dev:ino`, by proc name (`mnt`, `uts`):
   * a joined mount or uts namespace that is one of these is refused. Default: read from /proc/self/ns.
   */
  ownNamespaces?: Partial<Record<string, string>>;
}

export interface ContainerPlan {
  steps: PlanStep[];
  rootfs: string;
  warnings: string[];
  /** Bind sources were staged in `PlanContext.stageDir`: remove it once the container is created. */
  staged?: boolean;
}

/** Composes the launcher plan for a validated config: namespaces, rootfs, then the process. */
export function planContainer(spec: Spec, ctx: PlanContext): ContainerPlan {
  const warnings: string[] = [];
  const proc = spec.process;
  if (!proc) throw new BerthError('process: config.json has no process to run', { code: 'EINVALIDSPEC' });
  if (!spec.root?.path) throw new BerthError('root.path: must be set', { code: 'EINVALIDSPEC' });
  const linux = spec.linux ?? {};
  if (linux.seccomp && !ctx.seccomp)
    throw new BerthError('linux.seccomp: the profile was not compiled (compileProfile) before planning', {
      code: 'EINTERNAL',
    });
  checkLinuxSupport(spec, ctx.lsms);
  if (proc.terminal && !ctx.foreground && !ctx.consoleSocket) {
    throw new BerthError('process.terminal: a detached container with a terminal needs --console-socket', {
      code: 'EINVALIDSPEC',
    });
  }

  const rootfs = resolve(ctx.bundle, spec.root.path);
  const sysctls = planSysctls(spec);
  const ns = planNamespaces(linux.namespaces ?? [], { privileged: !isRootless() });
  checkJoinedNamespaces(spec, ns.cloneFlags, ns.join, ctx.ownNamespaces);
  // a user namespace: maps written by the launcher for its child, idmapped mounts (userns.ts)
  const userns = planUserns(spec, {
    rootfs,
    bundle: ctx.bundle,
    cloneFlags: ns.cloneFlags,
    ...(ctx.overlay ? { overlay: ctx.overlay } : {}),
    ...(ctx.stageDir ? { stageDir: ctx.stageDir } : {}),
  });
  const terminal = proc.terminal === true;
  // The exec fifo and the console socket are the runtime's, on the host: made, opened and
  // connected before any namespace is joined (a joined mount namespace may not see them).
  const steps: PlanStep[] = [];
  if (ctx.fifo) {
    steps.push({
      op: 'mknod',
      path: ctx.fifo,
      mode: 0o010622,
      major: 0,
      minor: 0,
      // the runtime's own (root's, or the user's without root: nobody may chown to another)
      uid: process.geteuid?.() ?? 0,
      gid: process.getegid?.() ?? 0,
      describe: 'create exec fifo',
    });
    steps.push({ op: 'fifoOpen', path: ctx.fifo, describe: 'open exec fifo' });
  }
  if (terminal && ctx.consoleSocket) {
    steps.push({
      op: 'pty',
      phase: 0,
      socket: ctx.consoleSocket,
      describe: `connect to console socket ${ctx.consoleSocket}`,
    });
  }
  steps.push(...ns.steps);
  // clone(2) cannot make a time namespace (0x80 is in its exit-signal bits): unshare it first
  steps.push(...planTimeNamespace(spec, (ns.cloneFlags & CLONE_NEWTIME) !== 0, CLONE_NEWTIME));
  // idmapped bind mounts: copies made before the clone, attached in the mounts' order
  const idmapped = planIdmappedMounts(spec, ctx.bundle, userns?.config, rootfs);
  const maps = userns?.beforeClone.at(-1);
  if (maps?.op === 'idmap') steps.push(...userns!.beforeClone.slice(0, -1), ...idmapped.steps, maps);
  else steps.push(...(userns?.beforeClone ?? []), ...idmapped.steps);
  // A new cgroup namespace is made after the sync, once the runtime has put the process in
  // its cgroup (runc's order): its root is then the container's cgroup, not the runtime's,
  // and a cgroup2 mounted in it shows the container's subtree only.
  const newCgroupNs = (ns.cloneFlags & CLONE_NEWCGROUP) !== 0;
  steps.push({
    op: 'clone',
    flags: ns.cloneFlags & ~CLONE_NEWTIME & ~CLONE_NEWCGROUP,
    detach: !ctx.foreground,
    pty: terminal && !ctx.consoleSocket,
    ...(ctx.relayStdio && !terminal ? { relay: true } : {}),
    ...(ctx.cgroupJoin?.v2 ? { cgroup: ctx.cgroupJoin.v2 } : {}),
  });
  if (userns) steps.push(...userns.afterClone);
  steps.push({ op: 'sync', id: SYNC_NS_READY, describe: 'wait for the runtime (namespaces ready)' });
  if (ctx.cgroupJoin?.v1.length)
    steps.push({ op: 'cgroupJoin', paths: ctx.cgroupJoin.v1, describe: "join the container's cgroup" });
  if (newCgroupNs)
    steps.push({
      op: 'unshare',
      flags: CLONE_NEWCGROUP,
      describe: "create the cgroup namespace (in the container's cgroup)",
    });
  // its cgroup's CPUs, not those of the runtime that started it (`taskset -c 0 berth run`: runc
  // 1.2). Every CPU, which the kernel narrows to the cpuset's; a join into a cpuset made after
  // this (by the runtime, meanwhile) sets the cpuset's CPUs itself, so the order does not matter.
  steps.push({ op: 'affinity', cpus: [], reset: true });
  // a new network namespace has lo down: up, as runc and crun do (a joined one is its owner's)
  if ((ns.cloneFlags & CLONE_NEWNET) !== 0) steps.push({ op: 'loopback', describe: 'set up lo' });
  if (!terminal) steps.push({ op: 'setsid' });
  if (ctx.keyring !== undefined) steps.push(keyringStep(ctx.keyring));
  if (ctx.overlay && !userns?.overlayMounted) {
    const { lower, upper, work } = ctx.overlay;
    steps.push({ op: 'mount', target: '/', flags: MS.SLAVE | MS.REC, describe: 'make / a slave mount' });
    steps.push({
      op: 'mount',
      source: 'overlay',
      target: rootfs,
      fstype: 'overlay',
      flags: 0,
      data: `lowerdir=${lower.join(':')},upperdir=${upper},workdir=${work}`,
      describe: `mount the image snapshot (overlay) on ${rootfs}`,
    });
  }
  if (proc.oomScoreAdj !== undefined) {
    steps.push({
      op: 'procWrite',
      path: 'self/oom_score_adj',
      content: String(proc.oomScoreAdj),
      describe: `set process.oomScoreAdj to ${proc.oomScoreAdj} (/proc/self/oom_score_adj)`,
    });
  }
  // where SELinux is off the label is dropped, as runc does (label.FormatMountLabel)
  const mountLabel = linux.mountLabel && (ctx.lsms ?? hostLsms()).selinux ? linux.mountLabel : undefined;
  if (mountLabel) checkSelinuxContext('linux.mountLabel', mountLabel);
  const rootfsSteps = planRootfs({
    rootfs,
    bundle: ctx.bundle,
    readonly: spec.root.readonly === true,
    mounts: spec.mounts ?? [],
    devices: linux.devices ?? [],
    maskedPaths: linux.maskedPaths ?? [],
    readonlyPaths: linux.readonlyPaths ?? [],
    ...(linux.rootfsPropagation ? { rootfsPropagation: linux.rootfsPropagation } : {}),
    ...(mountLabel ? { mountLabel } : {}),
    ...(ctx.cgroupLayout ? { cgroupLayout: ctx.cgroupLayout } : {}),
    ...(ctx.cgroupPaths ? { cgroupPaths: ctx.cgroupPaths } : {}),
    ...(idmapped.trees.size ? { preparedBinds: idmapped.trees } : {}),
    ...(userns?.stagedSources.size ? { stagedSources: userns.stagedSources } : {}),
    // The terminal first, with /dev/console bound to it (the runtime spec's default device, as
    // runc and crun do: before paths are made read-only or masked and / read-only), then the
    // sysctls go in before /proc/sys becomes read-only (readonlyPaths). Last, the working
    // directory is made if the image lacks it (runc's MkdirAll in the new root).
    afterPivot: [
      ...(terminal ? [terminalStep(proc, ctx.consoleSocket, true)] : []),
      ...sysctls,
      ...(proc.cwd && posix.normalize(proc.cwd) !== '/'
        ? [
            {
              op: 'mkdir' as const,
              path: proc.cwd,
              mode: 0o755,
              inRoot: true,
              describe: `create working directory ${proc.cwd}`,
            },
          ]
        : []),
    ],
    // A new cgroup namespace, where cgroup2 can be mounted in it: not where the container joins a
    // user namespace (the new cgroup namespace is then not that user namespace's, and the kernel
    // refuses the mount with EPERM or EBUSY); /sys/fs/cgroup is then the container's cgroup
    // bound, the same view (runc falls back to that bind on those errors)
    cgroupNamespace:
      (linux.namespaces?.some((n) => n.type === 'cgroup' && !n.path) ?? false) &&
      !linux.namespaces?.some((n) => n.type === 'user' && n.path),
    // only a new IPC namespace's mqueue is the container's own to label (linux.mountLabel)
    ipcNamespace: linux.namespaces?.some((n) => n.type === 'ipc' && !n.path) ?? false,
  });
  // root in a user namespace already (rootless podman's runtime, rootlesskit) can no more make
  // device nodes or mount sysfs without a network namespace than a container's new one can
  steps.push(
    ...(userns
      ? adaptRootfsForUserns(rootfsSteps, ns.cloneFlags, userns.rootByCwd ? { rootfs } : undefined)
      : inUserNamespace()
        ? adaptRootfsForUserns(rootfsSteps, ns.cloneFlags, undefined)
        : rootfsSteps),
  );
  if (spec.hooks?.createContainer?.length) {
    // runc runs them after the mounts, before pivot_root, in the container's namespaces
    const pivot = steps.findIndex((x) => x.op === 'pivotRoot' || x.op === 'chroot');
    steps.splice(pivot < 0 ? steps.length : pivot, 0, {
      op: 'sync',
      id: SYNC_CREATE_CONTAINER,
      describe: 'wait for the runtime (createContainer hooks)',
    });
  }
  if (spec.hostname !== undefined) steps.push({ op: 'sethostname', name: spec.hostname });
  if (spec.domainname !== undefined) steps.push({ op: 'setdomainname', name: spec.domainname });
  steps.push(
    ...planProcess(proc, ctx.preserveFds ?? 0, warnings, {
      seccomp: ctx.seccomp,
      personality: linux.personality,
      memoryPolicy: linux.memoryPolicy,
      ...(ctx.lsms ? { lsms: ctx.lsms } : {}),
    }),
  );
  if (ctx.fifo) {
    steps.push({ op: 'ready' });
    steps.push({ op: 'fifoWait', describe: 'wait for start (exec fifo)' });
  } else {
    steps.push({ op: 'sync', id: SYNC_READY_TO_EXEC, describe: 'wait for the runtime (ready to exec)' });
  }
  steps.push({ op: 'exec', argv: proc.args ?? [], env: processEnv(proc.env) });
  return { steps, rootfs, warnings, ...(userns?.stagedSources.size ? { staged: true } : {}) };
}

/**
 * The environment as runc gives it to the process: one entry per name, its last value, where
 * the name first appears (Go's Setenv, one name after the other).
 */
export function processEnv(env: readonly string[] | undefined): string[] {
  if (!env?.length) return [];
  const name = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  const last = new Map<string, string>();
  for (const e of env) last.set(name(e), e);
  // a Map keeps a name where it was first set
  return last.size === env.length ? [...env] : [...last.values()];
}

/**
 * The pty for a process with a terminal: made in the container, its master sent to the console
 * socket or the launcher; `console`: bound onto the container's /dev/console too (its own
 * terminal at create, not an exec'd process's).
 */
export function terminalStep(proc: Process, consoleSocket: string | undefined, console = false): PlanStep {
  return {
    op: 'pty',
    phase: 1,
    ...(console ? { console: true } : {}),
    ...(consoleSocket ? { socket: consoleSocket } : {}),
    rows: proc.consoleSize?.height ?? 0,
    cols: proc.consoleSize?.width ?? 0,
    describe: 'set up the terminal',
  };
}

/**
 * The process half of a plan, shared by create and exec: rlimits, umask, user
 * and capabilities, no_new_privs, working directory, and the executable looked
 * up before anything waits (so a missing binary fails early, with its name).
 */
export function planProcess(
  proc: Process,
  preserveFds: number,
  warnings: string[],
  security: SecurityContext = {},
): PlanStep[] {
  const steps: PlanStep[] = [];
  const confine = planProcessSecurity(proc, security);
  const host = proc.rlimits?.length ? { hard: hostHardLimits(), canRaise: canRaiseLimits() } : undefined;
  for (const rl of proc.rlimits ?? []) {
    const resource = RLIMITS[rl.type];
    if (resource === undefined || !host) continue;
    const cap = (v: number) => (BigInt(v) >= UNLIMITED ? UNLIMITED : BigInt(v));
    const { soft, hard, warning } = clampRlimit(rl.type, cap(rl.soft), cap(rl.hard), host);
    if (warning) warnings.push(warning);
    steps.push({ op: 'setrlimit', resource, soft, hard, describe: `set ${rl.type} to ${soft}/${hard}` });
  }
  steps.push({ op: 'umask', mask: proc.user?.umask ?? 0o022 });
  const { sets, missing, unknown } = capabilitySets(proc.capabilities);
  for (const name of missing) {
    warnings.push(`capability ${name} is not in this host's bounding set: the container runs without it`);
  }
  for (const name of unknown) {
    warnings.push(
      `capability ${JSON.stringify(name)} is not a known capability: ignored, the container runs without it`,
    );
  }
  // the working directory as root first (it stays the process's after the user changes),
  // again after for a directory only the user may enter: runc's order. Before the LSM,
  // scheduler and (without no_new_privs) seccomp steps, so that a filter never sees it.
  const cwd = proc.cwd || '/';
  if (!isAbsolute(cwd))
    throw new BerthError(`process.cwd: ${JSON.stringify(cwd)} must be an absolute path`, {
      code: 'EINVALIDSPEC',
    });
  steps.push({
    op: 'chdir',
    path: cwd,
    first: true,
    describe: `change to working directory ${cwd}`,
    inRoot: true,
  });
  // no HOME in the env, or an empty one: the user's home from the container's /etc/passwd, else
  // "/" (runc's); read here, before any LSM or seccomp step
  const env = processEnv(proc.env);
  if (!env.some((e) => e.startsWith('HOME=') && e.length > 5))
    steps.push({ op: 'home', uid: proc.user?.uid ?? 0, describe: 'find HOME in /etc/passwd' });
  steps.push(...confine.beforeCreds);
  // no process.capabilities means empty sets, as runc: the process gets no capability at all
  steps.push({
    op: 'creds',
    uid: proc.user?.uid ?? 0,
    gid: proc.user?.gid ?? 0,
    groups: proc.user?.additionalGids ?? [],
    caps: sets,
  });
  if (proc.noNewPrivileges) steps.push({ op: 'noNewPrivs' });
  // nothing of the runtime's stays open past exec, and the working directory is found in the root
  steps.push({ op: 'closeFds', from: 3 + preserveFds });
  steps.push({ op: 'chdir', path: cwd, describe: `change to working directory ${cwd}`, inRoot: true });
  const args = proc.args ?? [];
  const pathVar = env.findLast((e) => e.startsWith('PATH='))?.slice(5);
  steps.push({ op: 'lookup', name: args[0] ?? '', ...(pathVar !== undefined ? { path: pathVar } : {}) });
  steps.push(...confine.last);
  return steps;
}

/** Joins (or makes) the named session keyring and lets its owner search it, as runc does. */
export function keyringStep(name: string): PlanStep {
  return {
    op: 'keyring',
    name,
    mask: KEYRING_PERM_MASK,
    set: KEYRING_PERM_SET,
    describe: `join session keyring ${name}`,
  };
}

function nsIdentity(path: string): string | undefined {
  try {
    const st = statSync(path);
    return `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

let own: Readonly<Record<string, string>> | undefined;

/**
 * The runtime's own mount and uts namespaces, as `dev:ino`: looked up once (Node's main thread
 * never changes them). This is the plan's early, named error; the check that holds is made on
 * the live process at its first sync, against /proc/self again (checkNotRuntimeNamespaces).
 */
export function ownNamespaces(): Readonly<Record<string, string>> {
  if (own) return own;
  const out: Record<string, string> = {};
  for (const name of ['mnt', 'uts']) {
    const id = nsIdentity(`/proc/self/ns/${name}`);
    if (id) out[name] = id;
  }
  own = Object.freeze(out);
  return own;
}

/**
 * The rules for namespaces given by path: the container needs a mount namespace
 * of its own, new or joined (it mounts and pivots in it; never the runtime's),
 * and a hostname needs a uts namespace that is not the runtime's. Checked again
 * on the live process before any mount (Runtime), this is the early, named error.
 */
function checkJoinedNamespaces(
  spec: Spec,
  cloneFlags: number,
  join: ReadonlyArray<{ kind: string; path: string }>,
  own: Partial<Record<string, string>> = ownNamespaces(),
): void {
  const entries = spec.linux?.namespaces ?? [];
  const index = (type: string) => entries.findIndex((n) => n.type === type);
  const joined = (kind: string) => join.find((j) => j.kind === kind);
  const isOwn = (kind: string, proc: string): boolean => {
    const j = joined(kind);
    if (!j) return false;
    const id = nsIdentity(j.path);
    if (id === undefined) {
      throw new BerthError(
        `linux.namespaces[${index(kind)}].path: ${JSON.stringify(j.path)} is not a namespace file that exists`,
        { code: 'EINVALIDSPEC', path: j.path },
      );
    }
    return own[proc] !== undefined && id === own[proc];
  };
  if (!(cloneFlags & CLONE_NEWNS) && !joined('mount')) {
    throw new BerthError(
      'linux.namespaces: berth needs a mount namespace of its own (add {"type": "mount"})',
      {
        code: 'EINVALIDSPEC',
      },
    );
  }
  if (isOwn('mount', 'mnt')) {
    throw new BerthError(
      `linux.namespaces[${index('mount')}].path: ${joined('mount')!.path} is berth's own mount namespace: the container would change the host's mounts`,
      { code: 'EINVALIDSPEC', path: joined('mount')!.path },
    );
  }
  const naming =
    spec.hostname !== undefined ? 'hostname' : spec.domainname !== undefined ? 'domainname' : undefined;
  if (naming) {
    if (!(cloneFlags & CLONE_NEWUTS) && !joined('uts')) {
      throw new BerthError(`${naming}: setting a ${naming} needs a uts namespace (add {"type": "uts"})`, {
        code: 'EINVALIDSPEC',
      });
    }
    if (isOwn('uts', 'uts')) {
      throw new BerthError(
        `${naming}: linux.namespaces[${index('uts')}].path ${joined('uts')!.path} is berth's own uts namespace: setting a ${naming} would change the host's`,
        { code: 'EINVALIDSPEC', path: joined('uts')!.path },
      );
    }
  }
}
