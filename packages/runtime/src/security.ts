/**
 * Confinement of the container's process, planned from config.json: the
 * seccomp filter, AppArmor and SELinux exec labels, scheduler, I/O priority,
 * personality, and the time namespace's offsets. Where the host cannot honour
 * a field, planning fails with an error naming it: nothing is skipped silently.
 *
 * The order of the steps follows runc (libcontainer/standard_init_linux.go):
 * the AppArmor profile, scheduler, I/O priority and personality before the
 * user and capabilities change; the SELinux exec label and, without
 * noNewPrivileges, the seccomp filter right before them (loading a filter
 * without no_new_privs needs CAP_SYS_ADMIN); with noNewPrivileges the filter
 * goes last, after the executable is looked up, so that as few of the
 * launcher's own syscalls as possible run under it.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import type { LinuxMemoryPolicy, LinuxPersonality, LinuxSeccomp, Process, Spec } from '@berth/spec';
import { BerthError, berthCacheDir, type CompiledSeccomp, type PlanStep } from '@berth/sys';
import { planIntelRdt, resctrlMount } from './intelrdt.js';

function unsupported(message: string): BerthError {
  return new BerthError(message, { code: 'EUNSUPPORTED' });
}

function invalid(message: string): BerthError {
  return new BerthError(message, { code: 'EINVALIDSPEC' });
}

/** Which LSMs this host has enabled (as runc decides it). */
export function hostLsms(): { apparmor: boolean; selinux: boolean } {
  let apparmor = false;
  try {
    apparmor =
      existsSync('/sys/kernel/security/apparmor') &&
      readFileSync('/sys/module/apparmor/parameters/enabled', 'latin1').startsWith('Y');
  } catch {
    apparmor = false;
  }
  let selinux = false;
  try {
    // go-selinux: enabled when selinuxfs is mounted and the process has a context
    selinux =
      readFileSync('/proc/self/mountinfo', 'latin1').includes(' - selinuxfs ') &&
      readFileSync('/proc/self/attr/current', 'latin1').replace(/\0/g, '').trim() !== '';
  } catch {
    selinux = false;
  }
  return { apparmor, selinux };
}

/** Where this host mounts selinuxfs (SELinux's interface), or undefined. */
function selinuxfsMount(): string | undefined {
  try {
    for (const line of readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
      const [left, right] = line.split(' - ');
      if (right?.startsWith('selinuxfs ')) return left?.split(' ')[4]?.replace(/\\040/g, ' ');
    }
  } catch {
    // no mountinfo: nothing to ask
  }
  return undefined;
}

/**
 * An SELinux context the loaded policy does not know is an error naming the
 * field, before anything is made (the kernel's own answer, as libselinux's
 * security_check_context asks it: a write to selinuxfs's `context`). Where
 * selinuxfs is not mounted there is no policy to ask: the step's own error stands.
 */
export function checkSelinuxContext(field: string, label: string): void {
  const mnt = selinuxfsMount();
  if (!mnt) return;
  let fd: number | undefined;
  try {
    fd = openSync(join(mnt, 'context'), 'r+');
    writeSync(fd, label);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EINVAL')
      throw invalid(`${field}: ${JSON.stringify(label)} is not a valid context in the loaded SELinux policy`);
    // anything else (a policy that forbids the check): left to the kernel at the step itself
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Whether Intel RDT (resctrl) is mounted on this host. */
export function hostHasResctrl(): boolean {
  return resctrlMount() !== undefined;
}

/** The libseccomp library file, for the cache key: a new libseccomp may compile a profile differently. */
function libseccompIdentity(): string | undefined {
  for (const dir of [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/lib/x86_64-linux-gnu',
    '/lib/aarch64-linux-gnu',
    '/usr/lib64',
    '/lib64',
    '/usr/lib',
    '/lib',
  ]) {
    // biome-ignore format: a list
    try {
      const st = statSync(join(dir, 'libseccomp.so.2'));
      return `${dir}:${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

function defaultCacheDir(): string {
  // root's is root's own, never under a HOME that sudo -E kept (the user could link its files)
  return join(berthCacheDir(), 'seccomp');
}

/**
 * Compiles `linux.seccomp` (libseccomp is loaded only when a profile is there).
 * A compiled profile is kept in `dir` (default: berth's cache directory,
 * `$XDG_CACHE_HOME/berth/seccomp` or `~/.cache/berth/seccomp`, root's own for root, where the
 * launcher binary is cached too; `null`: no cache) by the hash of the profile,
 * the libseccomp file, the kernel and the architecture: podman and containerd
 * send the same profile for every container, and compiling Docker's
 * three-architecture profile takes tens of ms. Only a file this user owns and
 * nobody else may write is read back.
 */
export async function compileProfile(
  seccomp: LinuxSeccomp | undefined,
  dir?: string | null,
): Promise<CompiledSeccomp | undefined> {
  if (!seccomp) return undefined;
  // worked out only for a profile: root's cache directory comes from the password database
  const cacheDir = dir === undefined ? defaultCacheDir() : dir;
  const lib = cacheDir ? libseccompIdentity() : undefined;
  const { compileSeccomp, SECCOMP_COMPILER_VERSION } = await import('@berth/sys');
  // the compiler's version too: a berth that compiles a profile differently never reads an
  // older berth's filter for it
  const key = lib
    ? createHash('sha256')
        .update(
          JSON.stringify([CACHE_FORMAT, SECCOMP_COMPILER_VERSION, lib, release(), process.arch, seccomp]),
        )
        .digest('hex')
    : undefined;
  if (key) {
    const hit = readCached(join(cacheDir!, `${key}.json`));
    if (hit) return hit;
  }
  const compiled = await compileSeccomp(seccomp, 'linux.seccomp');
  if (key) {
    writeCached(cacheDir!, `${key}.json`, compiled);
  }
  return compiled;
}

const CACHE_FORMAT = 1;

function readCached(file: string): CompiledSeccomp | undefined {
  try {
    const d = statSync(dirname(file));
    if (d.uid !== process.getuid?.() || (d.mode & 0o022) !== 0) return undefined;
    const st = statSync(file);
    // only a file root wrote, that nobody else can change, is trusted
    if (st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) return undefined;
    const c = JSON.parse(readFileSync(file, 'utf8')) as {
      bpf: string;
      flags: number;
      notify: boolean;
      skipped: string[];
    };
    const bpf = Buffer.from(c.bpf, 'base64');
    if (bpf.length === 0 || bpf.length % 8 !== 0) return undefined;
    return { bpf, flags: c.flags, notify: c.notify, skipped: c.skipped };
  } catch {
    return undefined;
  }
}

function writeCached(dir: string, name: string, c: CompiledSeccomp): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // only into a directory of this user's that nobody else can write (no link to one), and
    // through a new file (O_EXCL: a name planted there, a symbolic link, is never followed)
    const d = lstatSync(dir);
    if (!d.isDirectory() || d.uid !== process.getuid?.() || (d.mode & 0o022) !== 0) return;
    const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    writeFileSync(tmp, JSON.stringify({ ...c, bpf: c.bpf.toString('base64') }), { mode: 0o600, flag: 'wx' });
    renameSync(tmp, join(dir, name));
  } catch {
    // a cache that cannot be written only costs the next compile
  }
}

const SCHED_POLICIES: Record<string, number> = {
  SCHED_OTHER: 0,
  SCHED_FIFO: 1,
  SCHED_RR: 2,
  SCHED_BATCH: 3,
  SCHED_IDLE: 5,
  SCHED_DEADLINE: 6,
};
const SCHED_FLAGS: Record<string, bigint> = {
  SCHED_FLAG_RESET_ON_FORK: 0x01n,
  SCHED_FLAG_RECLAIM: 0x02n,
  SCHED_FLAG_DL_OVERRUN: 0x04n,
  SCHED_FLAG_KEEP_POLICY: 0x08n,
  SCHED_FLAG_KEEP_PARAMS: 0x10n,
  SCHED_FLAG_UTIL_CLAMP_MIN: 0x20n,
  SCHED_FLAG_UTIL_CLAMP_MAX: 0x40n,
};
const IOPRIO_CLASS: Record<string, number> = { IOPRIO_CLASS_RT: 1, IOPRIO_CLASS_BE: 2, IOPRIO_CLASS_IDLE: 3 };
const PERSONALITY: Record<string, number> = { LINUX: 0x0000, LINUX32: 0x0008 };
const CLOCKS: Record<string, number> = { monotonic: 1, boottime: 7 };

export interface ProcessSecurity {
  /** Steps before the user and capabilities change (`creds`). */
  beforeCreds: PlanStep[];
  /** Steps after the executable is looked up, the last before the process waits to exec. */
  last: PlanStep[];
}

const MPOL_MODES: Record<string, number> = {
  MPOL_DEFAULT: 0,
  MPOL_PREFERRED: 1,
  MPOL_BIND: 2,
  MPOL_INTERLEAVE: 3,
  MPOL_LOCAL: 4,
  MPOL_PREFERRED_MANY: 5,
  MPOL_WEIGHTED_INTERLEAVE: 6,
};
const MPOL_FLAGS: Record<string, number> = {
  MPOL_F_NUMA_BALANCING: 1 << 13,
  MPOL_F_RELATIVE_NODES: 1 << 14,
  MPOL_F_STATIC_NODES: 1 << 15,
};
/** The launcher's node mask (MPOL_MAX_NODES in ioprio.h): as many nodes as the kernel's default MAX_NUMNODES. */
const MPOL_MAX_NODES = 1024;

/**
 * A list like `0-3,7` (cpus or memory nodes: the kernel's list format), as numbers; `field`
 * names it in the error. Every number is below `limit`.
 */
export function parseIdList(list: string, field: string, limit: number): number[] {
  const out = new Set<number>();
  for (const part of list.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    const lo = m ? Number(m[1]) : Number.NaN;
    const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
    if (!m || hi < lo) throw invalid(`${field}: ${JSON.stringify(item)} is not a number or a range like 0-3`);
    if (hi >= limit) throw unsupported(`${field}: ${hi} is out of range (at most ${limit - 1})`);
    for (let n = lo; n <= hi; n++) out.add(n);
  }
  return [...out].sort((a, b) => a - b);
}

/** `linux.memoryPolicy` as the launcher's set_mempolicy(2) step (runc's rules for the node count). */
export function memoryPolicyStep(mpol: LinuxMemoryPolicy): PlanStep {
  const base = 'linux.memoryPolicy';
  const mode = MPOL_MODES[mpol.mode];
  if (mode === undefined)
    throw invalid(`${base}.mode: ${JSON.stringify(mpol.mode)} is not a memory policy mode`);
  let flags = 0;
  for (const [i, f] of (mpol.flags ?? []).entries()) {
    const v = MPOL_FLAGS[f];
    if (v === undefined)
      throw invalid(`${base}.flags[${i}]: ${JSON.stringify(f)} is not a memory policy flag`);
    flags |= v;
  }
  const nodes = parseIdList(mpol.nodes ?? '', `${base}.nodes`, MPOL_MAX_NODES);
  if ((mpol.mode === 'MPOL_DEFAULT' || mpol.mode === 'MPOL_LOCAL') && nodes.length)
    throw invalid(`${base}.nodes: ${mpol.mode} takes no nodes`);
  if (
    mpol.mode !== 'MPOL_DEFAULT' &&
    mpol.mode !== 'MPOL_LOCAL' &&
    mpol.mode !== 'MPOL_PREFERRED' &&
    !nodes.length
  )
    throw invalid(`${base}.nodes: ${mpol.mode} needs at least one node`);
  return {
    op: 'mempolicy',
    mode: mode | flags,
    nodes,
    describe: `set the memory policy ${mpol.mode}${nodes.length ? ` on nodes ${mpol.nodes}` : ''} (linux.memoryPolicy)`,
  };
}

export interface SecurityContext {
  /** The compiled `linux.seccomp` of the container. */
  seccomp?: CompiledSeccomp | undefined;
  /** `linux.personality` (the container's first process only, as runc). */
  personality?: LinuxPersonality | undefined;
  /** `linux.memoryPolicy` (the container's process and those exec'd into it, as runc). */
  memoryPolicy?: LinuxMemoryPolicy | undefined;
  /** The host's LSMs (default: read from the host). */
  lsms?: { apparmor: boolean; selinux: boolean };
}

/** The security steps of a process (create and exec), in runc's order. */
export function planProcessSecurity(proc: Process, ctx: SecurityContext): ProcessSecurity {
  const beforeCreds: PlanStep[] = [];
  const last: PlanStep[] = [];
  // "unconfined" asks for no profile: nothing to apply, on any host (runc's launcher is unconfined too)
  const apparmor = proc.apparmorProfile === 'unconfined' ? undefined : proc.apparmorProfile;
  const lsms = apparmor || proc.selinuxLabel ? (ctx.lsms ?? hostLsms()) : undefined;
  if (apparmor) {
    if (!lsms?.apparmor)
      throw unsupported(
        `process.apparmorProfile: AppArmor is not enabled on this host, so profile ${JSON.stringify(proc.apparmorProfile)} cannot be applied`,
      );
    // aa_change_onexec: the profile applies at the exec
    const attr = existsSync('/proc/self/attr/apparmor/exec') ? 'attr/apparmor/exec' : 'attr/exec';
    beforeCreds.push({
      op: 'lsm',
      attr: `thread-self/${attr}`,
      value: `exec ${proc.apparmorProfile}`,
      describe: `apply AppArmor profile ${JSON.stringify(proc.apparmorProfile)} (process.apparmorProfile)`,
    });
  }
  if (proc.scheduler) {
    const s = proc.scheduler;
    const policy = SCHED_POLICIES[s.policy];
    if (policy === undefined)
      throw unsupported(`process.scheduler.policy: ${s.policy} is not a policy Linux implements`);
    let flags = 0n;
    for (const [i, f] of (s.flags ?? []).entries()) {
      const v = SCHED_FLAGS[f];
      if (v === undefined)
        throw invalid(`process.scheduler.flags[${i}]: ${JSON.stringify(f)} is not a scheduler flag`);
      flags |= v;
    }
    beforeCreds.push({
      op: 'sched',
      policy,
      flags,
      nice: s.nice ?? 0,
      priority: s.priority ?? 0,
      runtime: BigInt(s.runtime ?? 0),
      deadline: BigInt(s.deadline ?? 0),
      period: BigInt(s.period ?? 0),
      describe: `set the scheduler to ${s.policy} (process.scheduler)`,
    });
  }
  if (proc.ioPriority) {
    const cls = IOPRIO_CLASS[proc.ioPriority.class];
    if (cls === undefined)
      throw invalid(
        `process.ioPriority.class: ${JSON.stringify(proc.ioPriority.class)} is not an I/O priority class`,
      );
    beforeCreds.push({
      op: 'ioprio',
      value: (cls << 13) | (proc.ioPriority.priority & 7),
      describe: `set the I/O priority to ${proc.ioPriority.class} ${proc.ioPriority.priority} (process.ioPriority)`,
    });
  }
  if (ctx.personality) {
    const domain = PERSONALITY[ctx.personality.domain];
    if (domain === undefined)
      throw invalid(
        `linux.personality.domain: ${JSON.stringify(ctx.personality.domain)} is not LINUX or LINUX32`,
      );
    if (ctx.personality.flags?.length)
      throw unsupported(
        `linux.personality.flags: berth knows no personality flags (runc ignores them; berth does not skip what it cannot apply)`,
      );
    beforeCreds.push({
      op: 'personality',
      persona: domain,
      describe: `set the personality to ${ctx.personality.domain} (linux.personality)`,
    });
  }
  if (ctx.memoryPolicy) beforeCreds.push(memoryPolicyStep(ctx.memoryPolicy));
  if (proc.selinuxLabel) {
    if (!lsms?.selinux)
      throw unsupported('process.selinuxLabel: SELinux is disabled or not supported on this host');
    checkSelinuxContext('process.selinuxLabel', proc.selinuxLabel);
    beforeCreds.push({
      op: 'lsm',
      attr: 'thread-self/attr/exec',
      value: proc.selinuxLabel,
      describe: `set the SELinux exec label ${JSON.stringify(proc.selinuxLabel)} (process.selinuxLabel)`,
    });
  }
  if (ctx.seccomp) {
    const step: PlanStep = {
      op: 'seccomp',
      bpf: ctx.seccomp.bpf,
      flags: ctx.seccomp.flags,
      notify: ctx.seccomp.notify,
      describe: 'load the seccomp filter (linux.seccomp)',
    };
    if (proc.noNewPrivileges) last.push(step);
    else beforeCreds.push(step);
  }
  return { beforeCreds, last };
}

/**
 * The steps that make a new time namespace with `linux.timeOffsets`, before
 * the clone: unshare(CLONE_NEWTIME) gives the launcher's children a new time
 * namespace, whose offsets can be written until its first process enters.
 */
export function planTimeNamespace(spec: Spec, createsTimeNs: boolean, unshareFlag: number): PlanStep[] {
  const offsets = spec.linux?.timeOffsets;
  if (offsets && Object.keys(offsets).length && !createsTimeNs)
    throw invalid('linux.timeOffsets: needs a new time namespace (add {"type": "time"} to linux.namespaces)');
  if (!createsTimeNs) return [];
  const steps: PlanStep[] = [{ op: 'unshare', flags: unshareFlag, describe: 'create a time namespace' }];
  const lines: string[] = [];
  for (const [clock, off] of Object.entries(offsets ?? {})) {
    const id = CLOCKS[clock];
    if (id === undefined)
      throw invalid(
        `linux.timeOffsets.${clock}: not a clock a time namespace can offset (boottime, monotonic)`,
      );
    lines.push(`${id} ${off.secs ?? 0} ${off.nanosecs ?? 0}`);
  }
  if (lines.length) {
    steps.push({
      op: 'lsm',
      attr: 'self/timens_offsets',
      value: `${lines.join('\n')}\n`,
      describe: 'set the time namespace offsets (linux.timeOffsets)',
    });
  }
  return steps;
}

/** Fields of `linux` berth cannot honour on this host: an error naming the first. */
export function checkLinuxSupport(spec: Spec, _lsms?: { apparmor: boolean; selinux: boolean }): void {
  const linux = spec.linux;
  if (!linux) return;
  if (linux.intelRdt) {
    // the group name and schemas are checked before anything is made
    // (the container id is checked where the group is made)
    planIntelRdt(linux.intelRdt, 'container');
    if (!hostHasResctrl())
      throw unsupported('linux.intelRdt: Intel RDT (the resctrl filesystem) is not available on this host');
  }
}

/** The state runtime.md's "container process state" wraps, as `hookState` gives it. */
interface ListenerState {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

/**
 * The handler for a NOTIFY filter's listener fd: copy it out of the container
 * process (pidfd_getfd) and send it with the container process state
 * (runtime.md) to the agent at `listenerPath`.
 */
export function seccompListener(
  seccomp: LinuxSeccomp | undefined,
  state: () => ListenerState,
): (pid: number, fd: number) => Promise<void> {
  return async (pid, fd) => {
    const path = seccomp?.listenerPath;
    if (!path) throw invalid('linux.seccomp.listenerPath: is required when a rule uses SCMP_ACT_NOTIFY');
    const { closeFd, sendFdToSocket, takeProcessFd } = await import('@berth/sys');
    const copy = await takeProcessFd(pid, fd);
    try {
      const message = {
        ociVersion: state().ociVersion,
        fds: ['seccompFd'],
        pid,
        metadata: seccomp.listenerMetadata ?? '',
        state: { ...state(), pid },
      };
      await sendFdToSocket(path, copy, JSON.stringify(message));
    } finally {
      await closeFd(copy);
    }
  };
}
