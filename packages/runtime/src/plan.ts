import { isAbsolute, resolve } from 'node:path';
import { planNamespaces } from '@berth/namespaces';
import { planRootfs } from '@berth/rootfs';
import { type Process, RLIMITS, type Spec } from '@berth/spec';
import { BerthError, CLONE_NEWNS, CLONE_NEWUTS, MS, type PlanStep } from '@berth/sys';
import { capabilitySets } from './caps.js';
import { canRaiseLimits, clampRlimit, hostHardLimits, UNLIMITED } from './rlimits.js';

/** Sync ids: where the container's first process stops for the runtime. */
export const SYNC_NS_READY = 1;
export const SYNC_READY_TO_EXEC = 2;

export interface PlanContext {
  bundle: string;
  /** Foreground: the launcher stays, waits for the container and exits with its status. */
  foreground: boolean;
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
}

export interface ContainerPlan {
  steps: PlanStep[];
  rootfs: string;
  warnings: string[];
}

function unsupported(message: string): BerthError {
  return new BerthError(message, { code: 'EUNSUPPORTED' });
}

/** Composes the launcher plan for a validated config: namespaces, rootfs, then the process. */
export function planContainer(spec: Spec, ctx: PlanContext): ContainerPlan {
  const warnings: string[] = [];
  const proc = spec.process;
  if (!proc) throw new BerthError('process: config.json has no process to run', { code: 'EINVALIDSPEC' });
  if (!spec.root?.path) throw new BerthError('root.path: must be set', { code: 'EINVALIDSPEC' });
  const linux = spec.linux ?? {};
  if (linux.seccomp) throw unsupported('linux.seccomp: seccomp filters are not supported by berth yet');
  if (linux.uidMappings?.length || linux.namespaces?.some((n) => n.type === 'user')) {
    throw unsupported('linux.namespaces: user namespaces are not supported by berth yet');
  }
  if (spec.hooks?.createContainer?.length || spec.hooks?.startContainer?.length) {
    throw unsupported('hooks: createContainer and startContainer hooks are not supported by berth yet');
  }
  if (linux.timeOffsets || linux.namespaces?.some((n) => n.type === 'time' && !n.path)) {
    throw unsupported('linux.namespaces: new time namespaces are not supported by berth yet');
  }
  if (proc.terminal && !ctx.foreground && !ctx.consoleSocket) {
    throw new BerthError('process.terminal: a detached container with a terminal needs --console-socket', {
      code: 'EINVALIDSPEC',
    });
  }

  const rootfs = resolve(ctx.bundle, spec.root.path);
  const ns = planNamespaces(linux.namespaces ?? []);
  if (!(ns.cloneFlags & CLONE_NEWNS)) {
    throw new BerthError('linux.namespaces: berth needs a new mount namespace (add {"type": "mount"})', {
      code: 'EINVALIDSPEC',
    });
  }
  if ((spec.hostname !== undefined || spec.domainname !== undefined) && !(ns.cloneFlags & CLONE_NEWUTS)) {
    throw new BerthError('hostname: setting a hostname needs a new uts namespace', { code: 'EINVALIDSPEC' });
  }
  const terminal = proc.terminal === true;
  const steps: PlanStep[] = [...ns.steps];
  if (ctx.fifo) {
    steps.push({
      op: 'mknod',
      path: ctx.fifo,
      mode: 0o010622,
      major: 0,
      minor: 0,
      uid: 0,
      gid: 0,
      describe: 'create exec fifo',
    });
  }
  steps.push({
    op: 'clone',
    flags: ns.cloneFlags,
    detach: !ctx.foreground,
    pty: terminal && !ctx.consoleSocket,
  });
  steps.push({ op: 'sync', id: SYNC_NS_READY, describe: 'wait for the runtime (namespaces ready)' });
  if (!terminal) steps.push({ op: 'setsid' });
  if (ctx.fifo) steps.push({ op: 'fifoOpen', path: ctx.fifo, describe: 'open exec fifo' });
  if (terminal && ctx.consoleSocket) {
    steps.push({
      op: 'pty',
      phase: 0,
      socket: ctx.consoleSocket,
      describe: `connect to console socket ${ctx.consoleSocket}`,
    });
  }
  if (ctx.overlay) {
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
    steps.push({ op: 'write', path: '/proc/self/oom_score_adj', content: String(proc.oomScoreAdj) });
  }
  steps.push(
    ...planRootfs({
      rootfs,
      bundle: ctx.bundle,
      readonly: spec.root.readonly === true,
      mounts: spec.mounts ?? [],
      devices: linux.devices ?? [],
      maskedPaths: linux.maskedPaths ?? [],
      readonlyPaths: linux.readonlyPaths ?? [],
      ...(linux.rootfsPropagation ? { rootfsPropagation: linux.rootfsPropagation } : {}),
      ...(ctx.cgroupLayout ? { cgroupLayout: ctx.cgroupLayout } : {}),
      ...(ctx.cgroupPaths ? { cgroupPaths: ctx.cgroupPaths } : {}),
      // sysctls go in before /proc/sys becomes read-only (readonlyPaths)
      afterPivot: Object.entries(linux.sysctl ?? {}).map(([key, value]) => ({
        op: 'write' as const,
        path: `/proc/sys/${key.replace(/\./g, '/')}`,
        content: value,
        describe: `set sysctl ${key}`,
      })),
      cgroupNamespace: linux.namespaces?.some((n) => n.type === 'cgroup' && !n.path) ?? false,
      ...(ctx.overlay ? { views: [ctx.overlay.upper, ...ctx.overlay.lower] } : {}),
    }),
  );
  if (spec.hostname !== undefined) steps.push({ op: 'sethostname', name: spec.hostname });
  if (spec.domainname !== undefined) steps.push({ op: 'setdomainname', name: spec.domainname });
  if (terminal) steps.push(terminalStep(proc, ctx.consoleSocket));
  steps.push(...planProcess(proc, ctx.preserveFds ?? 0, warnings));
  if (ctx.fifo) {
    steps.push({ op: 'ready' });
    steps.push({ op: 'fifoWait', describe: 'wait for start (exec fifo)' });
  } else {
    steps.push({ op: 'sync', id: SYNC_READY_TO_EXEC, describe: 'wait for the runtime (ready to exec)' });
  }
  steps.push({ op: 'exec', argv: proc.args ?? [], env: proc.env ?? [] });
  return { steps, rootfs, warnings };
}

/** The pty for a process with a terminal: made in the container, its master sent to the console socket or the launcher. */
export function terminalStep(proc: Process, consoleSocket: string | undefined): PlanStep {
  return {
    op: 'pty',
    phase: 1,
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
export function planProcess(proc: Process, preserveFds: number, warnings: string[]): PlanStep[] {
  const steps: PlanStep[] = [];
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
  const { sets, missing } = capabilitySets(proc.capabilities);
  for (const name of missing) {
    warnings.push(`capability ${name} is not in this host's bounding set: the container runs without it`);
  }
  steps.push({
    op: 'creds',
    uid: proc.user?.uid ?? 0,
    gid: proc.user?.gid ?? 0,
    groups: proc.user?.additionalGids ?? [],
    ...(proc.capabilities ? { caps: sets } : {}),
  });
  if (proc.noNewPrivileges) steps.push({ op: 'noNewPrivs' });
  const cwd = proc.cwd || '/';
  if (!isAbsolute(cwd))
    throw new BerthError(`process.cwd: ${JSON.stringify(cwd)} must be an absolute path`, {
      code: 'EINVALIDSPEC',
    });
  steps.push({ op: 'chdir', path: cwd, describe: `change to working directory ${cwd}` });
  const args = proc.args ?? [];
  const env = proc.env ?? [];
  const pathVar = env.findLast((e) => e.startsWith('PATH='))?.slice(5);
  steps.push({ op: 'lookup', name: args[0] ?? '', ...(pathVar !== undefined ? { path: pathVar } : {}) });
  steps.push({ op: 'closeFds', from: 3 + preserveFds });
  return steps;
}
