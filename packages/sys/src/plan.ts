/**
 * Plan steps: what the native launcher does between clone() and execve(), in
 * order. Domain packages produce steps (pure functions); `encodePlan` turns them
 * into the launcher's binary format (documented in the package README).
 */

/** Opcodes of the launcher. Keep in sync with `enum op` in native/launcher.c. */
export const Op = {
  setns: 1,
  clone: 2,
  sync: 3,
  mount: 4,
  mkdir: 5,
  mknod: 6,
  symlink: 7,
  pivotRoot: 8,
  chroot: 9,
  mask: 10,
  sethostname: 11,
  setdomainname: 12,
  setrlimit: 13,
  noNewPrivs: 14,
  creds: 15,
  chdir: 16,
  umask: 17,
  fifoOpen: 18,
  fifoWait: 19,
  exec: 20,
  setsid: 22,
  ready: 23,
  mkfile: 24,
  lookup: 25,
  umount: 26,
  readonly: 27,
  closeFds: 28,
  pty: 29,
  unshare: 30,
  root: 31,
  procWrite: 32,
  pidfdSetns: 34,
  pidfdKill: 35,
  testWalk: 39,
  seccomp: 40,
  keyring: 41,
  sched: 42,
  ioprio: 43,
  personality: 43,
  mempolicy: 43,
  affinity: 43,
  lsm: 44,
  idmap: 45,
  usernsRoot: 46,
  idmapUserns: 47,
  idmapBind: 48,
  rootRebind: 49,
  cgroupJoin: 50,
  cgroupOpen: 51,
  loopback: 52,
  home: 53,
  idmapTree: 54,
  bindTree: 55,
} as const;

export type Step =
  /** Join a namespace by path, or (`fd`) through a pidfd or namespace fd passed to the launcher. */
  | { op: 'setns'; path: string; nstype: number; fd?: number }
  | { op: 'unshare'; flags: number }
  /**
   * `cgroup`: a cgroup2 directory the child is created in (clone3 CLONE_INTO_CGROUP; where
   * the kernel cannot, the launcher moves it there before it goes on).
   */
  | {
      op: 'clone';
      flags: number;
      detach: boolean;
      pty?: boolean;
      /**
       * Without a pty, in the foreground: the process gets pipes the launcher copies to and from
       * its own stdin, stdout and stderr (as runc), never those fds themselves, which a process
       * the container leaves behind would keep (the caller's terminal, a redirected host file).
       */
      relay?: boolean;
      cgroup?: string;
    }
  /**
   * The process moves itself into these cgroup v1 directories (writes "0" to their
   * `tasks` file): unlike a pid written to cgroup.procs, this takes no global lock and
   * waits for no RCU grace period. Needs the privilege to write them (no user namespace).
   */
  | { op: 'cgroupJoin'; paths: string[] }
  /**
   * For a process that joins namespaces before it clones (exec): opens the cgroup2
   * directory `v2` for the next `clone` (as its `cgroup`) and the `tasks` files of the v1
   * directories for a `cgroupJoin` with no paths, while the host's cgroup files are in view.
   */
  | { op: 'cgroupOpen'; v2?: string; v1: string[] }
  | { op: 'sync'; id: number }
  | { op: 'ready' }
  | { op: 'mount'; source?: string; target: string; fstype?: string; flags: number; data?: string }
  | { op: 'umount'; target: string; flags: number }
  | { op: 'readonly'; path: string }
  | {
      op: 'mask';
      path: string /** for a directory: more tmpfs options (an SELinux context=) */;
      data?: string;
    }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'mkfile'; path: string; mode: number }
  | { op: 'mknod'; path: string; mode: number; major: number; minor: number; uid: number; gid: number }
  | { op: 'symlink'; target: string; path: string }
  | { op: 'pivotRoot'; root: string }
  | { op: 'chroot'; root: string }
  | { op: 'sethostname'; name: string }
  | { op: 'setdomainname'; name: string }
  | { op: 'setrlimit'; resource: number; soft: bigint; hard: bigint }
  | { op: 'noNewPrivs' }
  | {
      op: 'creds';
      uid: number;
      gid: number;
      groups: number[];
      /** Capability sets as bit masks (bit n = capability number n); absent: keep the current sets. */
      caps?: { bounding: bigint; effective: bigint; permitted: bigint; inheritable: bigint; ambient: bigint };
    }
  /** chdir; `first`: a try before the user changes, whose EACCES/EPERM leaves it to the chdir after (runc's order). */
  | { op: 'chdir'; path: string; first?: boolean }
  | { op: 'umask'; mask: number }
  /**
   * Write to a file under procfs (`path` relative to /proc, e.g. `sys/net/ipv4/ip_forward`),
   * through the launcher's verified procfs handle, never crossing a mount below it.
   */
  | { op: 'procWrite'; path: string; content: string }
  /** The container's root: paths of `inRoot` steps are resolved against this directory from now on. */
  | { op: 'root'; path: string }
  /**
   * Join the namespaces (`flags`, CLONE_NEW*) of process `pid` through a pidfd,
   * only if it is the process that started at `startTime` (/proc/PID/stat field 22).
   */
  | { op: 'pidfdSetns'; pid: number; startTime: number; flags: number }
  /** Signal process `pid` through a pidfd, only if it is the one that started at `startTime`. */
  | { op: 'pidfdKill'; pid: number; startTime: number; signal: number }
  /** Tests only: resolve in-root paths with the user-space walk instead of openat2. */
  | { op: 'testWalk'; on: boolean }
  | { op: 'setsid' }
  | { op: 'fifoOpen'; path: string }
  | { op: 'fifoWait' }
  | { op: 'closeFds'; from: number }
  /**
   * phase 0 connects to `socket` (before pivot_root); phase 1 makes the pty and hands over its
   * master. `console`: its slave is also bound onto the container's /dev/console (a container's
   * own terminal, not a process exec'd into it), made as an empty file when it is missing.
   */
  | { op: 'pty'; phase: 0 | 1; socket?: string; rows?: number; cols?: number; console?: boolean }
  | { op: 'lookup'; name: string; path?: string }
  | { op: 'exec'; path?: string; argv: string[]; env: string[] }
  /** Loads a BPF program (struct sock_filter[]) with seccomp(2); `notify`: report the listener fd, wait for `g`. */
  | { op: 'seccomp'; bpf: Buffer; flags: number; notify: boolean }
  /** sched_setattr(2) on the process (struct sched_attr fields). */
  | {
      op: 'sched';
      policy: number;
      flags: bigint;
      nice: number;
      priority: number;
      runtime: bigint;
      deadline: bigint;
      period: bigint;
    }
  /** ioprio_set(IOPRIO_WHO_PROCESS, 0, value). */
  | { op: 'ioprio'; value: number }
  /** personality(persona). */
  | { op: 'personality'; persona: number }
  /** set_mempolicy(mode, the nodes' mask): `mode` with its MPOL_F_* flags; nodes below 1024. */
  | { op: 'mempolicy'; mode: number; nodes: number[] }
  /** Sets `lo` up (a new network namespace's, as runc and crun do). */
  | { op: 'loopback' }
  /** HOME for the exec, when its env has none: the container's /etc/passwd entry for `uid`, else "/". */
  | { op: 'home'; uid: number }
  /** sched_setaffinity(0, the cpus' mask): cpus below 8192. */
  | {
      op: 'affinity';
      cpus: number[];
      /**
       * Every CPU instead (`cpus` empty): the kernel keeps those of the process's cpuset, so the
       * process gets its cgroup's CPUs, not the runtime's affinity (runc 1.2). Best effort: a
       * refusal (a seccomp filter already loaded) leaves the affinity as it was.
       */
      reset?: boolean;
    }
  /**
   * keyctl(KEYCTL_JOIN_SESSION_KEYRING, name), then KEYCTL_SETPERM to (perm & mask) | set.
   * Kernels without keyrings (ENOSYS) are let through, as runc does.
   */
  | { op: 'keyring'; name: string; mask: number; set: number }
  /**
   * Writes `value` to /proc/`attr` (`thread-self/attr/exec`, `self/timens_offsets`) through a procfs fd
   * verified by fstatfs. With `inRoot`, `attr` is a directory in the container's root instead, and
   * `value` becomes its SELinux label (the security.selinux xattr, set on an fd of it).
   */
  | { op: 'lsm'; attr: string; value: string }
  /**
   * The uid/gid maps of the user namespace the next step (a `clone` with CLONE_NEWUSER)
   * creates: the launcher writes them for the pid clone() returned, before the child runs.
   * `maps`: /proc/PID/uid_map text ("inside outside count" lines). `setgroups`: 0 leave,
   * 1 "deny", 2 "allow". `writer`: 0 the launcher writes the files through its verified
   * procfs handle; 1 it runs `newuidmap`/`newgidmap` (absolute paths) with the pid and triples.
   */
  | { op: 'idmap'; uidMap: string; gidMap: string; setgroups: 0 | 1 | 2; writer: IdmapWriterStep }
  /** In the new user namespace: setresgid/setresuid 0 (and setgroups(0) unless `setgroups` is 1, "deny"). */
  | { op: 'usernsRoot'; setgroups: 0 | 1 | 2 }
  /** Before the clone: a user namespace with these maps, held by fd in `slot` (0..63), for idmapped mounts. */
  | {
      op: 'idmapUserns';
      slot: number;
      uidMap: string;
      gidMap: string;
      setgroups: 0 | 1 | 2;
      writer: IdmapWriterStep;
    }
  /**
   * An idmapped bind mount (MOUNT_ATTR_IDMAP with the user namespace of `slot`; -1: none, a
   * plain copy) of host `source` onto `target`, made a slave of a shared source.
   */
  | { op: 'idmapBind'; source: string; target: string; slot: number; recursive: boolean }
  /**
   * Before the clone: a detached copy of bind source `source` (open_tree, with the launcher's
   * view and rights), idmapped with the user namespace of `slot` (`idmapRecursive`: its
   * submounts too), with the bind's `flags` (MS_RDONLY, ...) and slave propagation set, held
   * in `tree` (0..1023) for a `bindTree`. `recursive`: the copy includes submounts (rbind).
   */
  | {
      op: 'idmapTree';
      source: string;
      slot: number;
      recursive: boolean;
      idmapRecursive: boolean;
      flags: number;
      tree: number;
      /** The source is a path in this rootfs (a host path), resolved in it (RESOLVE_IN_ROOT). */
      root?: string;
    }
  /** Attaches the copy an `idmapTree` made onto `target` (move_mount). */
  | { op: 'bindTree'; tree: number; target: string }
  /**
   * In a new user namespace: the root is the working directory (the launcher changed into the
   * rootfs before the clone), bound onto itself so that pivot_root takes it (copied mounts are locked).
   */
  | { op: 'rootRebind' };

/** Who writes the id maps: the launcher itself (root), or newuidmap/newgidmap (rootless). */
export type IdmapWriterStep = { mode: 0 } | { mode: 1; newuidmap: string; newgidmap: string };

function writerArgs(w: IdmapWriterStep): Arg[] {
  return w.mode === 1 ? [w.newuidmap, w.newgidmap] : ['', ''];
}

/** A step, plus what it means to the user (used in error messages). */
export type PlanStep = Step & {
  /** e.g. `mount proc on /proc`; defaults to a description made from the step. */
  describe?: string;
  /** Skip the step when the path does not exist (ENOENT). */
  optional?: boolean;
  /**
   * The step's paths (a mount's target, a node, a directory, a working
   * directory) are inside the container: the launcher resolves them against
   * the root (`root` step, or "/" after pivot_root) when it acts, following
   * symlinks only inside it and never through a magic link.
   */
  inRoot?: boolean;
  /** A `mount` of a new filesystem gets a copy of what the directory held (the `tmpcopyup` option). */
  tmpcopyup?: boolean;
  /**
   * A `mkdir` notes whether it made the directory: a tmpfs mounted on one it made keeps
   * tmpfs's own mode (1777), one on a directory the image had takes that directory's.
   */
  noteMade?: boolean;
  /**
   * A bind `mount`'s source is a path in the container's root (a bind source inside the
   * rootfs): resolved there when the mount is made, after the mounts before it, and the
   * target made to match it (a directory or a file).
   */
  sourceInRoot?: boolean;
};

const MAGIC = Buffer.from('BRTH');
export const PLAN_VERSION = 1;

type Arg = number | bigint | string | undefined;

function args(step: Step): Arg[] {
  switch (step.op) {
    case 'setns':
      return [step.path, step.nstype, step.fd ?? 0];
    case 'unshare':
      return [step.flags];
    case 'clone':
      return [
        step.flags,
        step.detach ? 1 : 0,
        step.pty ? 1 : step.relay ? 2 : 0,
        ...(step.cgroup ? [step.cgroup] : []),
      ];
    case 'cgroupJoin':
      return step.paths;
    case 'cgroupOpen':
      return [step.v2 ?? '', ...step.v1];
    case 'sync':
      return [step.id];
    case 'ready':
    case 'noNewPrivs':
    case 'setsid':
    case 'loopback':
    case 'fifoWait':
      return [];
    case 'mount':
      return [step.source, step.target, step.fstype, step.flags, step.data];
    case 'umount':
      return [step.target, step.flags];
    case 'readonly':
      return [step.path];
    case 'mask':
      return [step.path, step.data ?? ''];
    case 'mkdir':
    case 'mkfile':
      return [step.path, step.mode];
    case 'mknod':
      return [step.path, step.mode, step.major, step.minor, step.uid, step.gid];
    case 'symlink':
      return [step.target, step.path];
    case 'pivotRoot':
    case 'chroot':
      return [step.root];
    case 'sethostname':
    case 'setdomainname':
      return [step.name];
    case 'setrlimit':
      return [step.resource, step.soft, step.hard];
    case 'creds': {
      const c = step.caps;
      return [
        step.uid,
        step.gid,
        c ? 1 : 0,
        c?.bounding ?? 0n,
        c?.effective ?? 0n,
        c?.permitted ?? 0n,
        c?.inheritable ?? 0n,
        c?.ambient ?? 0n,
        ...step.groups,
      ];
    }
    case 'chdir':
      return [step.path, step.first ? 1 : 0];
    case 'home':
      return [step.uid];
    case 'umask':
      return [step.mask];
    case 'procWrite':
      return [step.path, step.content];
    case 'root':
      return [step.path];
    case 'testWalk':
      return [step.on ? 1 : 0];
    case 'pidfdSetns':
      return [step.pid, step.startTime, step.flags];
    case 'pidfdKill':
      return [step.pid, step.startTime, step.signal];
    case 'fifoOpen':
      return [step.path];
    case 'closeFds':
      return [step.from];
    case 'pty':
      return [step.socket, step.rows ?? 0, step.cols ?? 0, step.phase, step.console ? 1 : 0];
    case 'lookup':
      return [step.name, step.path];
    case 'exec':
      return [step.path, step.argv.length, ...step.argv, ...step.env];
    case 'seccomp':
      // the program travels hex-encoded: plan strings may not contain NUL bytes
      return [step.bpf.toString('hex'), step.flags, step.notify ? 1 : 0];
    case 'sched':
      return [step.policy, step.flags, step.nice, step.priority, step.runtime, step.deadline, step.period];
    case 'ioprio':
      return [0, step.value];
    case 'personality':
      return [1, step.persona];
    case 'mempolicy':
      return [2, step.mode, ...step.nodes];
    case 'affinity':
      return [3, step.reset ? 1 : 0, ...step.cpus];
    case 'lsm':
      return [step.attr, step.value];
    case 'keyring':
      return [step.name, step.mask, step.set];
    case 'idmap':
      return [step.writer.mode, step.setgroups, step.uidMap, step.gidMap, ...writerArgs(step.writer)];
    case 'usernsRoot':
      return [step.setgroups];
    case 'idmapUserns':
      return [
        step.slot,
        step.writer.mode,
        step.setgroups,
        step.uidMap,
        step.gidMap,
        ...writerArgs(step.writer),
      ];
    case 'idmapBind':
      return [step.source, step.target, step.slot, step.recursive ? 1 : 0];
    case 'idmapTree':
      return [
        step.source,
        step.slot,
        step.recursive ? 1 : 0,
        step.idmapRecursive ? 1 : 0,
        step.flags,
        step.tree,
        step.root ?? '',
      ];
    case 'bindTree':
      return [step.tree, step.target];
    case 'rootRebind':
      return [];
  }
}

/** Encodes steps into the launcher's binary plan (little-endian, see README). */
export function encodePlan(steps: readonly Step[]): Buffer {
  // one buffer, grown when needed: a Buffer per field was a measurable share of every start
  let buf = Buffer.allocUnsafe(16384);
  let at = 0;
  const room = (n: number) => {
    if (at + n <= buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, at + n));
    buf.copy(bigger, 0, 0, at);
    buf = bigger;
  };
  MAGIC.copy(buf, 0);
  buf.writeUInt32LE(PLAN_VERSION, 4);
  buf.writeUInt32LE(steps.length, 8);
  at = 12;
  for (const step of steps) {
    const list = args(step);
    room(8);
    buf.writeUInt16LE(Op[step.op], at);
    const p = step as PlanStep;
    buf.writeUInt16LE(
      (p.optional ? 1 : 0) |
        (p.inRoot ? 2 : 0) |
        (p.tmpcopyup ? 4 : 0) |
        (p.noteMade ? 8 : 0) |
        (p.sourceInRoot ? 16 : 0),
      at + 2,
    );
    buf.writeUInt32LE(list.length, at + 4);
    at += 8;
    // numbers are integer arguments; strings (and undefined, sent as "") are string arguments
    for (const a of list) {
      if (typeof a === 'number' && Number.isSafeInteger(a)) {
        // two 32-bit halves, as the 64-bit two's complement a BigInt would give (no BigInt made)
        room(9);
        buf[at] = 0x69; // 'i'
        buf.writeUInt32LE(a >>> 0, at + 1);
        buf.writeInt32LE(Math.floor(a / 0x1_0000_0000), at + 5);
        at += 9;
      } else if (typeof a === 'number' || typeof a === 'bigint') {
        room(9);
        buf[at] = 0x69; // 'i'
        buf.writeBigInt64LE(BigInt.asIntN(64, BigInt(a)), at + 1);
        at += 9;
      } else {
        const str = a ?? '';
        if (str.includes('\0'))
          throw new TypeError(`plan step ${step.op}: string argument contains a NUL byte`);
        // room for the longest UTF-8 it can be (3 bytes per UTF-16 unit), then its real length
        room(5 + str.length * 3);
        buf[at] = 0x73; // 's'
        const len = buf.write(str, at + 5, 'utf8');
        buf.writeUInt32LE(len, at + 1);
        at += 5 + len;
      }
    }
  }
  return buf.subarray(0, at);
}

/** The user-facing description of a step, for error messages. */
export function describeStep(step: PlanStep): string {
  if (step.describe) return step.describe;
  switch (step.op) {
    case 'mount':
      return `mount ${step.source ?? step.fstype ?? 'none'} on ${step.target}`;
    case 'setns':
      return `join namespace ${step.path}`;
    case 'mkdir':
      return `create directory ${step.path}`;
    case 'mkfile':
      return `create file ${step.path}`;
    case 'mknod':
      return `create device ${step.path}`;
    case 'symlink':
      return `create symlink ${step.path} -> ${step.target}`;
    case 'pivotRoot':
      return `pivot_root to ${step.root}`;
    case 'chroot':
      return `chroot to ${step.root}`;
    case 'sethostname':
      return `set hostname ${JSON.stringify(step.name)}`;
    case 'setdomainname':
      return `set domainname ${JSON.stringify(step.name)}`;
    case 'mask':
      return `mask path ${step.path}`;
    case 'readonly':
      return `make ${step.path} read-only`;
    case 'chdir':
      return `change to working directory ${step.path}`;
    case 'procWrite':
      return `write /proc/${step.path}`;
    case 'root':
      return `open the root filesystem ${step.path}`;
    case 'pidfdSetns':
      return `join the namespaces of the container's process ${step.pid}`;
    case 'pidfdKill':
      return `signal the container's process ${step.pid}`;
    case 'lookup':
      return `find executable ${JSON.stringify(step.name)} in the container`;
    case 'exec':
      return `exec ${JSON.stringify(step.argv[0] ?? '')}`;
    case 'creds':
      return `set user ${step.uid}:${step.gid} and capabilities`;
    case 'clone':
      return step.cgroup
        ? `create namespaces (clone) in the cgroup ${step.cgroup}`
        : 'create namespaces (clone)';
    case 'cgroupJoin':
      return step.paths.length ? `join the cgroup (${step.paths.join(', ')})` : "join the container's cgroup";
    case 'cgroupOpen':
      return `open the container's cgroup (${[step.v2, ...step.v1].filter(Boolean).join(', ')})`;
    case 'seccomp':
      return 'load the seccomp filter';
    case 'sched':
      return 'set the scheduler (process.scheduler)';
    case 'ioprio':
      return 'set the I/O priority (process.ioPriority)';
    case 'personality':
      return 'set the personality (linux.personality)';
    case 'mempolicy':
      return 'set the memory policy (linux.memoryPolicy)';
    case 'affinity':
      return step.reset
        ? "reset the CPU affinity to the cgroup's CPUs"
        : 'set the CPU affinity (process.execCPUAffinity)';
    case 'lsm':
      return step.inRoot
        ? `set the SELinux label of ${step.attr} to ${JSON.stringify(step.value)}`
        : `write ${JSON.stringify(step.value)} to /proc/${step.attr}`;
    case 'idmap':
      return 'write the user namespace id maps (uid_map, gid_map)';
    case 'usernsRoot':
      return 'become root in the user namespace';
    case 'idmapUserns':
      return 'create the user namespace for idmapped mounts';
    case 'idmapBind':
      return `idmapped bind mount ${step.source} on ${step.target}`;
    case 'idmapTree':
      return `prepare the idmapped mount of ${step.source}`;
    case 'bindTree':
      return `bind the idmapped mount on ${step.target}`;
    case 'rootRebind':
      return 'bind the root filesystem onto itself (in the user namespace)';
    default:
      return step.op;
  }
}

// Linux constants the planners need (x86_64/generic).
export const CLONE_NEWTIME = 0x80;
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  SILENT: 32768,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

export const MNT_DETACH = 2;
