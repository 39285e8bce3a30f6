import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  statfsSync,
  statSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { homedir, constants as osConstants, release, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type * as WorkerThreads from 'node:worker_threads';
import { BerthError, errnoName, strerror } from './errors.js';
import {
  channelFromFd,
  type HandleChannel,
  loadSpawnAddon,
  nodeHandles,
  type SpawnAddon,
  spawnWithHandles,
} from './handles.js';
import { writeFileAtomic } from './lock.js';
import { describeStep, encodePlan, type PlanStep } from './plan.js';
import { openDevNull, type SpawnedProcess, type Spawner, socketFromFd } from './spawn.js';

const MSG_SIZE = 64;
/** What an empty pipe takes without a reader: one page, even for a user over pipe-user-pages-soft. */
const PIPE_MIN_CAPACITY = 4096;
const MSG_PID = 1;
const MSG_SYNC = 2;
const MSG_ERROR = 3;
const MSG_READY = 4;
const MSG_SECCOMP = 5;

/** The syscall a step is about: naming it again in an error would add nothing. */
const PRIMARY_SYSCALL: Partial<Record<PlanStep['op'], string>> = {
  mount: 'mount',
  umount: 'umount2',
  readonly: 'mount',
  mask: 'mount',
  chdir: 'chdir',
  mkdir: 'mkdir',
  mkfile: 'open',
  mknod: 'mknod',
  symlink: 'symlink',
  sethostname: 'sethostname',
  setdomainname: 'setdomainname',
  setrlimit: 'setrlimit',
  setns: 'setns',
  chroot: 'chroot',
  lookup: 'exec',
  exec: 'exec',
  procWrite: 'write',
  fifoOpen: 'open',
  seccomp: 'seccomp',
  sched: 'sched_setattr',
};

/** A failure inside the launcher: which step, which syscall, which errno. */
export class LaunchError extends BerthError {
  readonly stepIndex: number;
  readonly syscall: string;

  constructor(step: PlanStep | undefined, stepIndex: number, syscall: string, errno: number) {
    const name = errnoName(errno);
    const what = step ? describeStep(step) : `launcher step ${stepIndex}`;
    // name the syscall only when it adds something to the description
    const detail = !step || PRIMARY_SYSCALL[step.op] === syscall ? '' : `${syscall}: `;
    super(
      `${what}: ${detail}${name} (${strerror(errno)})${idmapHint(step, syscall, name)}${oomHint(step, name)}`,
      {
        code: 'ELAUNCH',
        op: syscall,
        ...(step && 'path' in step ? { path: String(step.path) } : {}),
        ...(step && step.op === 'mount' ? { path: step.target } : {}),
        errno: name,
      },
    );
    this.name = 'LaunchError';
    this.stepIndex = stepIndex;
    this.syscall = syscall;
  }
}

/**
 * Why the kernel refused an OOM score: a value below the runtime's own (containerd gives a pod
 * sandbox -998) needs CAP_SYS_RESOURCE, which some hosts keep out of every bounding set.
 */
function oomHint(step: PlanStep | undefined, errno: string): string {
  if (errno !== 'EACCES' || step?.op !== 'procWrite' || !step.path.endsWith('oom_score_adj')) return '';
  let bounding: bigint | undefined;
  try {
    const hex = readFileSync('/proc/self/status', 'utf8').match(/^CapBnd:\s+([0-9a-f]+)$/m)?.[1];
    bounding = hex ? BigInt(`0x${hex}`) : undefined;
  } catch {
    // no /proc: the hint without the host's part
  }
  const lacks =
    bounding !== undefined && !(bounding & (1n << 24n)) ? ", which this host's bounding set lacks" : '';
  return `: a score below the runtime's own needs CAP_SYS_RESOURCE${lacks}`;
}

/** File systems by statfs type, for idmapHint. */
const FS_NAMES: Record<number, string> = {
  16914836: 'tmpfs',
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  2035054128: 'overlayfs',
  26985: 'nfs',
  16914839: '9p',
  1702057286: 'fuse',
  801189825: 'zfs',
  1936814952: 'squashfs',
};

/**
 * Why the kernel would not idmap a mount (EINVAL from MOUNT_ATTR_IDMAP): mostly because the
 * source's file system cannot be idmapped by this kernel (tmpfs from Linux 6.3 only, network
 * and FUSE file systems not at all). Names the file system and the kernel.
 */
function idmapHint(step: PlanStep | undefined, syscall: string, errno: string): string {
  if (errno !== 'EINVAL' || !syscall.includes('MOUNT_ATTR_IDMAP') || !step || !('source' in step)) return '';
  const source = String(step.source);
  let fs: string;
  try {
    const type = statfsSync(source).type;
    fs = FS_NAMES[type] ?? `file system type 0x${type.toString(16)}`;
  } catch {
    return '';
  }
  const since = fs === 'tmpfs' ? ' (tmpfs can be idmapped from Linux 6.3)' : '';
  return `: Linux ${release()} cannot idmap a mount of ${source} (${fs})${since}`;
}

export type LaunchEvent =
  | { kind: 'pid'; pid: number }
  | { kind: 'sync'; id: number }
  | { kind: 'ready' }
  | { kind: 'eof' };

export interface LaunchOptions {
  /** The container's stdin, stdout, stderr: fds or 'inherit'/'ignore'/'pipe' (default inherit). */
  stdio?: [StdioEntry, StdioEntry, StdioEntry];
  /** Extra fds passed to the container as 3, 4, … (runc --preserve-fds). */
  preserveFds?: number[];
  /** Path of the launcher binary (default: the one built with this package). */
  launcher?: string;
  /**
   * A `seccomp` step with `notify` reported its listener fd (number `fd` in
   * process `pid`): hand it on (see `takeProcessFd`). The process waits until
   * this resolves; a rejection stops it and is thrown by `next()`.
   */
  onSeccompListener?: (pid: number, fd: number) => Promise<void>;
  /**
   * Start the launcher with posix_spawn (see `loadSpawner`) instead of
   * child_process.spawn, which forks this whole process. Not used for a 'pipe'
   * stdio entry (that needs Node's streams): then the launcher is forked as before.
   */
  spawner?: Spawner | undefined;
}

/** The launcher's process: a ChildProcess, or one started by posix_spawn (no stdio pipes then). */
export interface LauncherProcess {
  readonly pid?: number | undefined;
  readonly stdin: Writable | null;
  readonly stderr: Readable | null;
  kill(signal?: NodeJS.Signals | number): boolean;
  unref(): void;
}

/** One of the container's standard streams: this process's, nowhere, a pipe, or an fd. */
export type StdioEntry = 'inherit' | 'ignore' | 'pipe' | number;

/** Our end of a socket pair to the launcher: a net.Socket, or a HandleChannel (handles.ts). */
interface Channel {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'close' | 'error', listener: () => void): unknown;
  write(data: string): unknown;
  end(data: Uint8Array): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  readonly destroyed: boolean;
}

/**
 * A running launcher. Messages arrive in order; `next()` yields the next one
 * and turns a reported failure into a thrown LaunchError.
 */
export class Launch {
  readonly process: LauncherProcess;
  /** Resolves with the launcher's exit code (for a foreground plan: the container's, 128+N for signal N). */
  readonly exited: Promise<number>;
  private plan: readonly PlanStep[] = [];
  /** Where the plan goes while it is not sent yet: our end of the launcher's plan pipe. */
  private planSink: Channel | number | undefined;
  private readonly spawner: Spawner | undefined;
  /** Whether the launcher has exec'd (always, for one child_process started). */
  private launcherStarted: () => boolean = () => true;
  private whenStarted: Promise<unknown> = Promise.resolve();
  private buffer = Buffer.alloc(0);
  private queue: Array<LaunchEvent | Error> = [];
  private lastPid = 0;
  private onSeccompListener: LaunchOptions['onSeccompListener'];
  private waiters: Array<() => void> = [];
  private ended = false;
  private readonly sync: Channel;

  /** The launcher's pid once it has been spawned (a posix_spawn on libuv's pool may still be under way). */
  async spawnedPid(): Promise<number | undefined> {
    await this.whenStarted.catch(() => undefined);
    return this.process.pid;
  }

  /**
   * Starts the launcher. With `steps` it gets its plan at once; without, it waits for
   * `sendPlan` (or for `abort`/`detach`, which close the plan unsent: it then exits
   * having made nothing), so that the caller can plan while the launcher execs.
   */
  constructor(steps: readonly PlanStep[] | undefined, options: LaunchOptions = {}) {
    const stdio = options.stdio ?? ['inherit', 'inherit', 'inherit'];
    this.onSeccompListener = options.onSeccompListener;
    const preserved = options.preserveFds ?? [];
    const spawner = stdio.includes('pipe') ? undefined : options.spawner;
    const handles = spawner ? null : nodeHandles();
    this.spawner = spawner;
    if (spawner) {
      const spawned = spawnLauncher(spawner, options.launcher ?? launcherPath(), stdio, preserved);
      this.process = spawned.process;
      this.sync = spawned.sync;
      this.exited = spawned.exited;
      this.planSink = spawned.planWrite;
      // Its messages wait until the spawn's completion has been seen here: the launcher may
      // report its child before this thread hears back from posix_spawn, and a caller that has
      // the 'pid' message must have `process.pid` too.
      let started = false;
      this.sync.pause();
      const resume = () => {
        if (!this.sync.destroyed) this.sync.resume();
      };
      spawned.started.then(() => {
        started = true;
        resume();
      }, resume);
      this.launcherStarted = () => started;
      this.whenStarted = spawned.started;
    } else if (!stdio.includes('pipe') && handles) {
      // forked as by child_process.spawn, through Node's own handles (see handles.ts): without
      // node:child_process and node:net, a CLI command starts ~7 ms sooner and ~2 MiB smaller
      const spawned = spawnWithHandles(
        handles,
        options.launcher ?? launcherPath(),
        [],
        [`BERTH_PLAN_FD=${3 + preserved.length}`, `BERTH_SYNC_FD=${4 + preserved.length}`],
        [
          ...(stdio as Array<'inherit' | 'ignore' | number>).map((e, i) => (e === 'inherit' ? i : e)),
          ...preserved,
        ],
        2,
        true, // its own session: terminal signals reach the caller only, who forwards them once
        'the launcher',
        // posix_spawn rather than a fork of this whole process, where the addon is given
        options.launcher === undefined ? spawnAddon() : null,
      );
      const [plan, sync] = spawned.channels as [HandleChannel, HandleChannel];
      this.process = {
        pid: spawned.process.pid,
        stdin: null,
        stderr: null,
        kill: spawned.process.kill,
        unref: spawned.process.unref,
      };
      this.planSink = plan;
      this.sync = sync;
      this.exited = spawned.process.exited.then(({ code, signal }) => code ?? 128 + signalNumber(signal));
      this.exited.catch(() => {});
    } else {
      const planFd = 3 + preserved.length;
      const child: ChildProcess = spawn(options.launcher ?? launcherPath(), [], {
        stdio: [...stdio, ...preserved, 'pipe', 'pipe'],
        env: { BERTH_PLAN_FD: String(planFd), BERTH_SYNC_FD: String(planFd + 1) },
        // its own session: terminal signals reach the caller only, who forwards them once
        detached: true,
      });
      this.process = child;
      const plan = child.stdio[planFd] as Socket;
      this.sync = child.stdio[planFd + 1] as Socket;
      plan.on('error', () => {});
      this.planSink = plan;
      this.exited = new Promise((resolve, reject) => {
        child.on('error', (err) =>
          reject(
            new BerthError(`cannot run the launcher: ${err.message}`, { code: 'ELAUNCHER', cause: err }),
          ),
        );
        child.on('exit', (code, signal) => resolve(code ?? 128 + signalNumber(signal)));
      });
    }
    this.sync.on('error', () => {});
    this.sync.on('data', (chunk: Buffer) => this.onData(chunk));
    this.sync.on('close', () => this.push({ kind: 'eof' }));
    if (steps) this.sendPlan(steps);
  }

  /** Sets LaunchOptions.onSeccompListener, for a plan sent later (before `sendPlan`). */
  setSeccompListener(handler: NonNullable<LaunchOptions['onSeccompListener']>): void {
    this.onSeccompListener = handler;
  }

  /** The plan, once sent (the launcher waits for it: see `sendPlan`). */
  get steps(): readonly PlanStep[] {
    return this.plan;
  }

  /** Hands the launcher its plan (once: a launcher runs one plan). */
  sendPlan(steps: readonly PlanStep[]): void {
    const sink = this.planSink;
    if (sink === undefined)
      throw new BerthError('launcher: the plan was sent or closed already', { code: 'ELAUNCH' });
    this.planSink = undefined;
    this.plan = steps;
    const plan = encodePlan(steps);
    if (typeof sink !== 'number') sink.end(plan);
    else if (plan.length <= PIPE_MIN_CAPACITY || this.launcherStarted())
      (this.spawner as Spawner).writeAllAndClose(sink, plan);
    else {
      // larger than any pipe holds unread: written once the launcher runs to read it (should its
      // spawn fail, nobody ever would, and a blocking write would never return)
      const write = () => (this.spawner as Spawner).writeAllAndClose(sink, plan);
      this.whenStarted.then(write, () => this.spawner?.close(sink));
    }
  }

  /** Closes the plan unsent, if it is: the launcher reads end-of-file and exits, having made nothing. */
  private closePlan(): void {
    const sink = this.planSink;
    this.planSink = undefined;
    if (typeof sink === 'number') this.spawner?.close(sink);
    else sink?.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= MSG_SIZE) {
      const m = this.buffer.subarray(0, MSG_SIZE);
      this.buffer = this.buffer.subarray(MSG_SIZE);
      const kind = m.readUInt32LE(0);
      const step = m.readInt32LE(4);
      const err = m.readInt32LE(8);
      const value = m.readInt32LE(12);
      const what = m.toString('utf8', 16, 64).replace(/\0.*$/s, '');
      if (kind === MSG_PID) {
        this.lastPid = value;
        this.push({ kind: 'pid', pid: value });
      } else if (kind === MSG_SECCOMP) this.passSeccompListener(value);
      else if (kind === MSG_SYNC) this.push({ kind: 'sync', id: value });
      else if (kind === MSG_READY) this.push({ kind: 'ready' });
      else if (kind === MSG_ERROR) this.push(new LaunchError(this.steps[step], step, what, err));
    }
  }

  private passSeccompListener(fd: number): void {
    const handler = this.onSeccompListener;
    if (!handler) {
      this.push(
        new BerthError('linux.seccomp: a SCMP_ACT_NOTIFY filter needs a listener, and nobody takes its fd', {
          code: 'ELAUNCH',
        }),
      );
      this.abort();
      return;
    }
    handler(this.lastPid, fd).then(
      () => this.release(),
      (e: Error) => {
        this.push(e);
        this.abort();
      },
    );
  }

  private push(ev: LaunchEvent | Error): void {
    if (this.ended) return;
    if (!(ev instanceof Error) && ev.kind === 'eof') this.ended = true;
    this.queue.push(ev);
    for (const w of this.waiters.splice(0)) w();
  }

  /** The next message; throws the LaunchError when the launcher reported a failure. */
  async next(): Promise<LaunchEvent> {
    while (this.queue.length === 0) await new Promise<void>((r) => this.waiters.push(r));
    const ev = this.queue[0]!;
    // eof stays at the head: every later next() sees it too
    if (ev instanceof Error || ev.kind !== 'eof') this.queue.shift();
    if (ev instanceof Error) throw ev;
    return ev;
  }

  /** Waits for a message of `kind`; an unexpected end of the conversation is an error. */
  async expect<K extends LaunchEvent['kind']>(kind: K): Promise<Extract<LaunchEvent, { kind: K }>> {
    const ev = await this.next();
    if (ev.kind === kind) return ev as Extract<LaunchEvent, { kind: K }>;
    if (ev.kind === 'eof') {
      // wait up to 2 s for the launcher's status; the timer must neither outlive the wait nor hold the process
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        this.exited,
        new Promise<number>((r) => {
          timer = setTimeout(() => r(-1), 2000);
          timer.unref();
        }),
      ]).finally(() => clearTimeout(timer));
      throw new BerthError(
        `container init exited before ${kind === 'sync' ? 'setup finished' : `it reported "${kind}"`}${code >= 0 ? ` (launcher exit status ${code})` : ''}`,
        { code: 'ELAUNCH' },
      );
    }
    throw new BerthError(`launcher protocol: expected ${kind}, got ${ev.kind}`, { code: 'ELAUNCH' });
  }

  /** Lets the process waiting at a sync step go on. */
  release(): void {
    this.sync.write('g');
  }

  /** Stops the process waiting at a sync step (it exits without running further steps). */
  abort(): void {
    this.closePlan();
    this.sync.write('a');
  }

  /** Closes our end of the conversation so this process can exit without waiting for the container. */
  detach(): void {
    this.closePlan();
    this.sync.destroy();
    this.process.unref();
  }
}

/** Starts the launcher on a plan, or, without one, waiting for `sendPlan` (see Launch). */
export function launch(steps: readonly PlanStep[] | undefined, options?: LaunchOptions): Launch {
  return new Launch(steps, options);
}

/**
 * The launcher through posix_spawn: fds 0–2 as `stdio` says, then the preserved
 * fds, the plan pipe and the sync socket, and no other fd at all.
 */
function spawnLauncher(
  spawner: Spawner,
  path: string,
  stdio: readonly StdioEntry[],
  preserved: readonly number[],
): {
  process: LauncherProcess;
  sync: Channel;
  exited: Promise<number>;
  planWrite: number;
  started: Promise<unknown>;
} {
  const opened: number[] = [];
  const [planRead, planWrite] = spawner.pipe();
  const [ours, theirs] = spawner.socketPair();
  let spawning: Promise<SpawnedProcess>;
  try {
    const std = stdio.map((e, i) => {
      if (e === 'inherit') return i;
      if (e === 'ignore') {
        const fd = openDevNull(i > 0);
        opened.push(fd);
        return fd;
      }
      return e as number;
    });
    const planFd = 3 + preserved.length;
    const env = [`BERTH_PLAN_FD=${planFd}`, `BERTH_SYNC_FD=${planFd + 1}`];
    // On libuv's thread pool: this event loop goes on (plans, makes the cgroup) while the
    // launcher execs. A prebuilt launcher's sealed copy is checked against the hash its file
    // was verified to have: what runs is exactly what was checked, whatever happened since.
    // The fds are copied before this returns, so ours are closed below.
    spawning = spawner.spawnSealedAsync(
      path,
      [path],
      env,
      [...std, ...preserved, planRead, theirs],
      verifiedHashes.get(path),
    );
  } catch (e) {
    spawner.close(ours);
    spawner.close(planWrite);
    throw e;
  } finally {
    spawner.close(planRead);
    spawner.close(theirs);
    closeFds(opened);
  }
  // Until it has exec'd, a kill or unref is passed on once it has; a failed spawn rejects
  // `exited` (and the sync socket reads end-of-file: nobody else holds its other end).
  let spawned: SpawnedProcess | undefined;
  let killWith: NodeJS.Signals | number | undefined;
  let unref = false;
  const started = spawning.then((s) => {
    spawned = s;
    if (unref) s.unref();
    if (killWith !== undefined) s.kill(killWith);
    return s;
  });
  const exited = started.then((s) => s.exited).then(({ code, signal }) => code ?? 128 + signalNumber(signal));
  exited.catch(() => {}); // the error is the caller's through `exited` and `next()`
  // read and written through libuv's pipe handle where Node gives it (handles.ts): lighter per
  // message than a net.Socket and its stream machinery
  const h = nodeHandles();
  const sync: Channel = (h && channelFromFd(h, ours)) || socketFromFd(ours);
  return {
    process: {
      get pid() {
        return spawned?.pid;
      },
      stdin: null,
      stderr: null,
      kill: (signal: NodeJS.Signals | number = 'SIGTERM') => {
        if (spawned) return spawned.kill(signal);
        killWith = signal;
        return true;
      },
      unref: () => {
        unref = true;
        spawned?.unref();
      },
    },
    sync,
    exited,
    planWrite,
    started,
  };
}

function closeFds(fds: number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  if (!signal) return 0;
  return osConstants.signals[signal] ?? 0;
}

let packageRoot: string | undefined;

/**
 * The directory of this package (its dist/ and native/), found also when this
 * module is bundled into another program, such as the berth CLI.
 */
function packageDir(): string {
  if (packageRoot) return packageRoot;
  const here = dirname(fileURLToPath(import.meta.url));
  packageRoot = existsSync(join(here, '..', 'native', 'launcher.c'))
    ? join(here, '..')
    : (nodeModulesDir(here) ?? dirname(createRequire(import.meta.url).resolve('@berth/sys/package.json')));
  return packageRoot;
}

/**
 * The `node_modules/@berth/sys` nearest above `dir`, its symlinks resolved: where
 * require.resolve looks first, without loading Node's resolver for package
 * "exports" (~8 ms of every CLI command). Undefined: require.resolve decides.
 */
function nodeModulesDir(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', '@berth', 'sys');
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(d) === d) return undefined;
  }
}

/** The C source of the launcher, shipped with the package. */
export function launcherSource(): string {
  return join(packageDir(), 'native', 'launcher.c');
}

let cachedPath: string | undefined;

const asRoot = (): boolean => process.geteuid?.() === 0;

/**
 * The first fd of this process that its caller did not pass: fds 3… inherited across exec are
 * open before Node's start-up makes its own, and its first one (libuv's epoll fd, an anonymous
 * inode) takes the lowest free number. So everything below the first fd that is closed or an
 * anonymous inode (eventpoll, eventfd, io_uring) was inherited; nothing is closed in between.
 */
function inheritedFdsEnd(): number {
  for (let fd = 3; ; fd++) {
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return fd;
    }
    if (link.startsWith('anon_inode:')) return fd;
  }
}

/**
 * Refuses preserved fds the caller did not hand this process. `--preserve-fds 8` from a caller
 * that passed two would otherwise give the container Node's own fds: libuv's epoll fd, its
 * eventfds, its signal pipe (a write to which made berth follow a pointer of the container's
 * choosing), a lock berth holds. Close-on-exec cannot tell them apart: libuv marks inherited fds
 * 3… close-on-exec at start-up (`uv_disable_stdio_inheritance`). runc: "unable to stat preserved-fd".
 */
export function checkPreservedFds(fds: readonly number[]): void {
  if (fds.length === 0) return;
  const end = inheritedFdsEnd();
  for (const fd of fds) {
    if (fd >= 3 && fd < end) continue;
    let open = true;
    try {
      readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      open = false;
    }
    throw new BerthError(
      open
        ? `preserved fd ${fd} was not passed by the caller (it is one of berth's own): the caller passed ${end - 3} fds above 2, check --preserve-fds`
        : `preserved fd ${fd} is not open: the caller passed ${end - 3} fds above 2, check --preserve-fds`,
      { code: 'EBADF', path: String(fd) },
    );
  }
}

/**
 * Whether this process runs in a user namespace other than the host's: its uid_map
 * is not the identity map of every id. Root there (rootless podman's runtime,
 * rootlesskit, a nested container) is not the host's root.
 */
export function inUserNamespace(): boolean {
  if (nestedUserns !== undefined) return nestedUserns;
  let map: string;
  try {
    map = readFileSync('/proc/self/uid_map', 'latin1');
  } catch {
    return false; // no procfs: nothing says so
  }
  // asked once: a multi-threaded process cannot move to another user namespace
  nestedUserns = map.trim().split(/\s+/).join(' ') !== '0 0 4294967295';
  return nestedUserns;
}

let nestedUserns: boolean | undefined;

let overflowOwner: number | undefined | null = null;

/**
 * The uid that files of ids this user namespace does not map show (the kernel's
 * overflowuid, 65534), or undefined outside a user namespace. Inside one, the host's
 * root owns its files under that id, and nothing in the namespace can change such a
 * file: it counts as root's for the checks below.
 */
function unmappedOwner(): number | undefined {
  if (overflowOwner !== null) return overflowOwner;
  overflowOwner = undefined;
  if (inUserNamespace()) {
    try {
      overflowOwner = Number(readFileSync('/proc/sys/kernel/overflowuid', 'latin1').trim());
    } catch {
      overflowOwner = 65534;
    }
  }
  return overflowOwner;
}

/** Whether `uid` owns files as root does: 0, or in a user namespace an id it does not map. */
const rootOwned = (uid: number): boolean => uid === 0 || uid === unmappedOwner();

/**
 * Where the launcher binary is: the prebuilt static one shipped in this
 * package (`dist/launcher-<arch>`, checked against the sha256 recorded in
 * `dist/launcher.json`), or, for a machine the package has no binary for, one
 * compiled now from the shipped C source into a cache directory.
 * `$BERTH_LAUNCHER` names another one, but only for a user who is not root:
 * root never runs a binary that an environment variable names, nor one that
 * anybody but root could have written (the file and every directory above it).
 */
export function launcherPath(): string {
  if (!cachedPath) {
    const fromEnv = asRoot() ? undefined : process.env['BERTH_LAUNCHER'];
    if (fromEnv && !isTrusted(fromEnv))
      throw new BerthError(
        `BERTH_LAUNCHER=${fromEnv}: refusing to run a launcher that is not executable, or that someone other than you or root could replace (the file or a directory above it)`,
        { code: 'ELAUNCHER', path: fromEnv },
      );
    cachedPath = fromEnv || prebuiltLauncher() || compileLauncher();
  }
  return cachedPath;
}

let addonLoaded: SpawnAddon | null | undefined;

/**
 * The prebuilt spawn addon (see prebuiltSpawnAddon), loaded once; null where there is none, it
 * is not trusted or does not load, and in a worker thread (which never sees SIGCHLD).
 */
export function spawnAddon(): SpawnAddon | null {
  if (addonLoaded === undefined) {
    addonLoaded = null;
    const file = onMainThread() ? prebuiltSpawnAddon() : undefined;
    if (file) addonLoaded = loadSpawnAddon(file);
  }
  return addonLoaded;
}

/** Whether this is the main thread, without loading node:worker_threads (~3 ms) where it is not loaded. */
function onMainThread(): boolean {
  const loaded = (process as { moduleLoadList?: unknown }).moduleLoadList;
  if (!Array.isArray(loaded)) return false;
  // a worker thread's bootstrap loads it; a main thread that has not loaded it is not one
  if (!loaded.includes('NativeModule worker_threads')) return true;
  return (createRequire(import.meta.url)('node:worker_threads') as typeof WorkerThreads).isMainThread;
}

/** Node's process.arch → the machine name in the prebuilt launcher's file name. */
const MACHINE: Partial<Record<string, string>> = { x64: 'x86_64', arm64: 'aarch64' };

/** What `scripts/build-launcher.mjs` records about each prebuilt launcher (`dist/launcher.json`). */
export interface PrebuiltLauncher {
  file: string;
  sha256: string;
  size: number;
  compiler?: string;
}

/**
 * The prebuilt launcher for this machine in `dir` (default: this package's
 * dist/), verified: its sha256 must be the one recorded in `launcher.json`
 * beside it, else this throws `ELAUNCHER` naming the file — a damaged or
 * altered package is never run and never silently replaced. Undefined when
 * there is none for this machine (no musl compiler at build time, another
 * architecture), or when it is not trusted (see `isTrusted`): the caller then
 * compiles the launcher from source. The hash is computed once per process
 * (launcherPath caches the answer), and not at all while the binary is the one a
 * stamp beside it records as verified (see readStamp).
 */
export function prebuiltLauncher(dir: string = join(packageDir(), 'dist')): string | undefined {
  return verifiedPrebuilt(dir, 'launchers', /^launcher-[a-z0-9_]+$/);
}

/**
 * The prebuilt spawn addon for this machine in `dir` (default: this package's dist/;
 * native/spawn-addon.c, loaded by src/handles.ts), verified as the prebuilt launcher is:
 * its sha256 in `launcher.json`, a trusted owner and directories. Undefined where there is
 * none or it is not trusted: the launcher is then started through libuv.
 */
export function prebuiltSpawnAddon(dir: string = join(packageDir(), 'dist')): string | undefined {
  return verifiedPrebuilt(dir, 'addons', /^spawn-[a-z0-9_]+\.node$/);
}

function verifiedPrebuilt(dir: string, kind: 'launchers' | 'addons', name: RegExp): string | undefined {
  const machine = MACHINE[process.arch];
  if (!machine) return undefined;
  const manifestPath = join(dir, 'launcher.json');
  let manifest: Partial<Record<string, Record<string, PrebuiltLauncher>>>;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new BerthError(`${manifestPath}: unreadable (${(e as Error).message}): reinstall @berth/sys`, {
      code: 'ELAUNCHER',
      path: manifestPath,
    });
  }
  const entry = manifest?.[kind]?.[machine];
  if (!entry) return undefined;
  if (!name.test(entry.file) || !/^[0-9a-f]{64}$/.test(entry.sha256)) {
    throw new BerthError(`${manifestPath}: malformed entry for ${machine}: reinstall @berth/sys`, {
      code: 'ELAUNCHER',
      path: manifestPath,
    });
  }
  const file = join(dir, entry.file);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new BerthError(`${file}: recorded in ${manifestPath} but unreadable (${(e as Error).message})`, {
      code: 'ELAUNCHER',
      path: file,
    });
  }
  try {
    // what is checked is what this fd reads; the stamp (see readStamp) names the same inode
    const st = fstatSync(fd, { bigint: true });
    const stamp = `${entry.sha256} ${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}\n`;
    const stampPath = `${file}.verified`;
    const stamped = readStamp(stampPath, st.uid) === stamp;
    let startedMs = 0;
    if (!stamped) {
      startedMs = Date.now();
      const actual = createHash('sha256').update(readFileSync(fd)).digest('hex');
      if (actual !== entry.sha256) {
        throw new BerthError(
          `${file}: sha256 ${actual} is not the ${entry.sha256} recorded in ${manifestPath}; refusing to ${kind === 'launchers' ? 'run' : 'load'} it (the package is damaged or was changed: reinstall @berth/sys, or rebuild it with npm run build -w @berth/sys)`,
          { code: 'ELAUNCHER', path: file },
        );
      }
    }
    // as root, the record must be root's as much as the binary is
    if (!isTrusted(file) || (asRoot() && !rootOnly(manifestPath))) return undefined;
    // Only a file that last changed before the hash was started is stamped: a change made
    // after that sets its ctime (which no user can set back) later than the one recorded.
    // The kernel's ctime clock is coarse (a few ms): hence the margin.
    if (!stamped && st.ctimeNs / 1_000_000n < BigInt(startedMs - STAMP_MARGIN_MS))
      writeStamp(stampPath, stamp);
    verifiedHashes.set(file, entry.sha256);
    return file;
  } finally {
    closeSync(fd);
  }
}

/** The sha256 each prebuilt launcher returned by prebuiltLauncher was verified to have. */
const verifiedHashes = new Map<string, string>();

const STAMP_MARGIN_MS = 50;

/**
 * The stamp beside a prebuilt launcher (`launcher-<arch>.verified`): "this sha256 was
 * verified for the inode with this device, number, size, mtime and ctime". A command then
 * checks one fstat instead of hashing the binary, which would load node:crypto (~5-14 ms of
 * every CLI command's start-up; the hash itself is ~0.3 ms). Any write to the binary, or a
 * new file in its place, changes that identity, and the binary is hashed again. Believed
 * only from the binary's owner, and only when nobody else may write it; the directory is
 * checked by isTrusted before the binary is used at all. Undefined: no stamp to believe.
 */
function readStamp(path: string, ownerUid: number | bigint): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== Number(ownerUid) || (st.mode & 0o022) !== 0 || st.size > 512)
      return undefined;
    return readFileSync(fd, 'latin1');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Writes a stamp where this user may (root's install: root): elsewhere the binary is hashed at every start. */
function writeStamp(path: string, stamp: string): void {
  try {
    writeFileAtomic(path, stamp, 0o644, { durable: false });
  } catch {
    // not ours to write
  }
}

/** Owned by root and writable by nobody else (the file itself; isTrusted checks the directories). */
function rootOnly(path: string): boolean {
  try {
    const st = statSync(path);
    return rootOwned(st.uid) && (st.mode & 0o022) === 0;
  } catch {
    return false;
  }
}

/**
 * Whether `path` is an executable this process may run: for root, owned by
 * root and writable by nobody else, in directories writable by nobody else
 * (a sticky world-writable directory such as /tmp does not count as safe).
 * For another user the same, except that the file and the directories may
 * also be that user's own (an installed launcher, or one built into
 * ~/.cache/berth): never one another user could replace.
 */
export function isTrusted(path: string): boolean {
  if (!isExecutable(path)) return false;
  const me = process.geteuid?.() ?? 0;
  let p = path;
  for (;;) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      return false;
    }
    if ((!rootOwned(st.uid) && st.uid !== me) || (st.mode & 0o022) !== 0) return false;
    const up = dirname(p);
    if (up === p) return true;
    p = up;
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * berth's cache directory (the compiled launcher, compiled seccomp filters): `~/.cache/berth`,
 * or `$XDG_CACHE_HOME/berth`. Root's is root's own, from the password database: HOME and
 * XDG_CACHE_HOME may be a user's who ran `sudo -E`, and root must never write (or read back)
 * what that user can link or replace. Root in a user namespace (rootless podman's runtime) is
 * the user, whose home /root is not.
 */
export function berthCacheDir(): string {
  if (asRoot() && !inUserNamespace()) return join(userInfo().homedir, '.cache', 'berth');
  return join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'berth');
}

/** Compiles the launcher with the system C compiler; returns the binary's path. */
export function compileLauncher(out?: string): string {
  const sourcePath = launcherSource();
  const source = readFileSync(sourcePath);
  const h = createHash('sha256').update(source);
  // launcher.c includes its feature headers (seccomp.h, …): they are part of the binary
  for (const f of readdirSync(dirname(sourcePath))
    .filter((n) => n.endsWith('.h'))
    .sort())
    h.update(f).update(readFileSync(join(dirname(sourcePath), f)));
  const hash = h.digest('hex').slice(0, 16);
  const target = out ?? join(berthCacheDir(), `launcher-${hash}`);
  if (!out && isTrusted(target)) return target;
  mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
  const tmp = `${target}.${process.pid}.tmp`;
  // root compiles with the system compiler, never one that $CC names
  const cc = asRoot() ? 'cc' : (process.env['CC'] ?? 'cc');
  const base = ['-O2', '-Wall', '-o', tmp, sourcePath];
  // static when the C library allows it: no dynamic loader on the hot path
  let r = spawnSync(cc, ['-static', ...base], { encoding: 'utf8' });
  if (r.status !== 0) r = spawnSync(cc, base, { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(tmp)) {
    const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').slice(-3).join('; ');
    throw new BerthError(
      `cannot build the berth launcher with ${cc} (install a C compiler, e.g. apt-get install gcc): ${why}`,
      { code: 'ELAUNCHER', path: sourcePath },
    );
  }
  renameSync(tmp, target);
  return target;
}
