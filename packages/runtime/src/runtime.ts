import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import type { Cgroup } from '@berth/cgroups';
import type { NetDeviceRequest } from '@berth/network';
import { normalizeSpec, type Process, parseSpec, type Spec } from '@berth/spec';
import {
  BerthError,
  type CompiledSeccomp,
  describeStep,
  inUserNamespace,
  isoTime,
  type Launch,
  launch,
  loadSpawner,
  removeTree,
  type Spawner,
  writeFileAtomic,
} from '@berth/sys';
import {
  cgroups,
  createCgroup,
  defaultCgroupsPath,
  loadCgroup,
  locateCgroup,
  uncreatableCgroup,
} from './cgroup.js';
import { planExec } from './exec.js';
import { type HookState, runContainerHooks, runHooks } from './hooks.js';
import { applyIntelRdt, joinIntelRdt, type RdtRecord, removeIntelRdt } from './intelrdt.js';
import { ContainerLock, withLock } from './lock.js';
import {
  attachNetwork,
  type ContainerNetworkOptions,
  checkNetDevices,
  checkNetworkOptions,
  detachNetwork,
  moveNetDevices,
  networkRecordBase,
} from './network.js';
import { signalProcess } from './pidfd.js';
import { processesInPidNamespace } from './pidns.js';
import { planContainer, SYNC_CREATE_CONTAINER } from './plan.js';
import { type PoolOptions, type PreparedContainer, SandboxPool } from './pool.js';
import { isAlive, procStat, waitGone } from './proc.js';
import {
  askedLimit,
  createRootlessCgroup,
  defaultStateRoot,
  ensurePrivateDir,
  isRootless,
  rootlessSpecProblem,
} from './rootless.js';
import { compileProfile, seccompListener } from './security.js';
import { type ContainerRecord, StateStore, type Status, validateId } from './state.js';
import { ownSnapshotUpper } from './userns.js';
import {
  type Backend,
  createVmContainer,
  deleteVm,
  execVm,
  killVm,
  pauseVm,
  resumeVm,
  runVm,
  startVm,
  updateVm,
  vmStatus,
  wantsVm,
} from './vm-backend.js';

export const DEFAULT_ROOT = '/run/berth';
const OCI_VERSION = '1.2.0';
/** How long a finished `run`'s teardown waits for the next container (see Runtime.tearDown). */
const TEARDOWN_DELAY_MS = 5;

/** The OCI state of a container, with runc's extra fields (`rootfs`, `created`, `owner`). */
export interface ContainerState {
  ociVersion: string;
  id: string;
  pid: number;
  status: Status;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
}

export interface RuntimeOptions {
  /** Where container state lives (runc's --root); default $BERTH_ROOT, else /run/berth as root, else $XDG_RUNTIME_DIR/berth. */
  root?: string;
  /** Receives warnings (e.g. a capability the host cannot grant). Default: stderr. */
  warn?: (message: string) => void;
  /**
   * Receives what the runtime does, step by step (runc's `--debug`): the plan the launcher
   * gets, its pid, the syncs, the cgroup, hooks, state changes. Default: nothing (no cost).
   */
  debug?: (message: string) => void;
  /** cgroupsPath is systemd's `slice:prefix:name` (runc --systemd-cgroup). */
  systemdCgroup?: boolean;
  /**
   * How the launcher is started: `posix_spawn` (the default: glibc's vfork-style
   * spawn through koffi, nothing of this process copied; loading koffi costs
   * ~5–25 ms once) or `fork` (Node's child_process, which forks this process: for
   * a program that starts one container, such as the CLI). `posix_spawn` falls
   * back to `fork` where the C library lacks it. With `posix_spawn` the cgroup
   * join's wait for the kernel is made on libuv's thread pool, off the event loop;
   * with `fork` nothing starts that pool.
   */
  spawn?: 'posix_spawn' | 'fork';
}

/** Where a container's stdin, stdout or stderr goes: this process's, nowhere, a pipe, or an fd. */
export type Stdio = 'inherit' | 'ignore' | 'pipe' | number;

export interface CreateOptions {
  /** A Unix socket to receive the pty master (process.terminal). */
  consoleSocket?: string;
  /** Write the container's pid here (runc --pid-file). */
  pidFile?: string;
  /** Pass this many extra fds (3, 4, …) to the container (runc --preserve-fds). */
  preserveFds?: number;
  /** The container's stdin, stdout and stderr (default: this process's). */
  stdio?: [Stdio, Stdio, Stdio];
  /** An overlay snapshot mounted on root.path inside the container (images). */
  overlay?: { lower: string[]; upper: string; work: string };
  /** Directories removed with the container (its snapshot). */
  ownedDirs?: string[];
  /** The image reference, for listings. */
  image?: string;
  /** Attach the container to a bridge network at the ns-ready sync point (`berth run --network`). */
  network?: ContainerNetworkOptions;
  /** Keep the runtime's session keyring instead of joining a new one (runc --no-new-keyring). */
  noNewKeyring?: boolean;
  /** `vm`: run in a QEMU microVM (as the `org.berth.backend` annotation asks); default: the annotation, else a container. */
  backend?: Backend;
  /**
   * The namespace each joined entry of `linux.namespaces` (by its type) must turn out to be, as
   * {@link Runtime.namespaceOf} named it (`net:[4026532…]`): `--network container:NAME` joins
   * `/proc/PID/ns/net`, and should that container exit and its pid be reused before the launcher
   * opens the path, the new container is refused instead of joining a stranger's namespace.
   */
  joinedNamespaces?: Partial<Record<NamespaceKind, string>>;
  /**
   * In the foreground without a terminal: the process's stdin, stdout and stderr are pipes the
   * launcher copies to and from `stdio`, not those fds themselves (runc's way; the CLI asks for
   * it). A process the container leaves behind then keeps no fd of the caller's (its terminal,
   * a file its output was redirected to) once the command has returned.
   */
  relayStdio?: boolean;
}

/** A `linux.namespaces` type whose namespace another container can share. */
export type NamespaceKind = 'network' | 'ipc' | 'uts' | 'pid' | 'mount' | 'cgroup' | 'user' | 'time';

export interface ExecOptions {
  /** Return once the process has started instead of waiting for it (runc exec --detach). */
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  preserveFds?: number;
  stdio?: [Stdio, Stdio, Stdio];
  /** Forward this process's signals to the exec'd process while it runs. */
  forwardSignals?: boolean;
  /**
   * In the foreground without a terminal: the process's stdin, stdout and stderr are pipes the
   * launcher copies to and from `stdio`, not those fds themselves (runc's way; the CLI asks for
   * it). A process the container leaves behind then keeps no fd of the caller's (its terminal,
   * a file its output was redirected to) once the command has returned.
   */
  relayStdio?: boolean;
  /**
   * Sub-cgroups of the container's cgroup to run in (runc exec --cgroup): `PATH` for every
   * hierarchy, `CONTROLLER[,CONTROLLER]:PATH` for some; each must exist.
   */
  cgroup?: string[];
}

export interface RunOptions extends CreateOptions {
  /** Start and return instead of waiting for the container to exit (runc run --detach). */
  detach?: boolean;
  /** Forward this process's SIGINT, SIGTERM, SIGHUP, … to the container while it runs. */
  forwardSignals?: boolean;
  /** Keep the container's state after it exits (default: removed, as runc run does). */
  keep?: boolean;
}

/** Where a container's cgroup will be made (locateCgroup), before it is. */
interface CgroupAt {
  cgroupsPath: string;
  layout: Cgroup['layout'];
  paths: Record<string, string>;
}

/** What a create has made so far: what `undoCreate` takes apart when a later step fails. */
interface CreateProgress {
  launched?: Launch;
  cgroup?: Cgroup | undefined;
  /** the cgroup existed before the container: never emptied nor removed */
  cgroupShared: boolean;
  rdt?: RdtRecord;
  pid: number;
  /** the container's process joins its cgroup itself (PlanContext.cgroupJoin) */
  selfJoin?: boolean;
  /** `linux.netDevices`, checked: moved at the ns-ready sync */
  netDevices?: NetDeviceRequest[];
  /** bind sources staged here for a user namespace (PlanContext.stageDir): removed once created */
  staged?: string | undefined;
}

/**
 * The OCI lifecycle: create, start, state, kill, delete, and run (all three).
 * Every command on a container holds that container's lock.
 */
export class Runtime {
  readonly root: string;
  readonly store: StateStore;
  private readonly warn: (message: string) => void;
  private readonly debug: ((message: string) => void) | undefined;
  private readonly systemd: boolean;
  private readonly spawnMode: 'posix_spawn' | 'fork';
  /** Teardowns `run` left under way (id: its delete): awaited before the id is used again, and by close(). */
  private readonly teardowns = new Map<string, Promise<void>>();
  /** Teardowns queued but not begun (see tearDown): each function begins one. */
  private readonly queuedTeardowns = new Map<string, () => void>();
  private teardownTimer: NodeJS.Timeout | undefined;
  /** The cgroup a container of this process's `run`/`prepare` made: its teardown need not look it up again. */
  private readonly cgroupOf = new WeakMap<ContainerRecord, Cgroup>();
  /** Containers `prepare` made and nobody has run yet: discarded by close(). */
  private readonly prepared = new Set<PreparedContainer>();
  private readonly pools = new Set<SandboxPool>();

  constructor(options: RuntimeOptions = {}) {
    this.root = resolve(options.root ?? defaultStateRoot());
    // without root the state directory is the user's alone (mode 0700, owned by the user)
    if (isRootless()) ensurePrivateDir(this.root);
    this.store = new StateStore(this.root);
    this.systemd = options.systemdCgroup === true;
    this.spawnMode = options.spawn ?? 'posix_spawn';
    this.warn = options.warn ?? ((m) => process.stderr.write(`berth: warning: ${m}\n`));
    this.debug = options.debug;
  }

  /** Reads and validates `<bundle>/config.json`. */
  loadBundle(bundle: string): { bundle: string; spec: Spec } {
    const dir = resolve(bundle);
    const file = join(dir, 'config.json');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new BerthError(
        code === 'ENOENT'
          ? `bundle ${dir} has no config.json`
          : `cannot read ${file}: ${(e as Error).message}`,
        { code: code === 'ENOENT' ? 'ENOTFOUND' : 'EIO', path: file },
      );
    }
    const spec = parseValidated(text, file);
    const rootfs = resolve(dir, spec.root?.path ?? '');
    let ok = false;
    try {
      ok = statSync(rootfs).isDirectory();
    } catch {
      // reported below
    }
    if (!ok)
      throw new BerthError(`root.path: ${rootfs} does not exist or is not a directory`, {
        code: 'ENOTFOUND',
        path: rootfs,
      });
    return { bundle: dir, spec };
  }

  /** Creates a container: namespaces, mounts and all, its process waiting for `start`. */
  async create(id: string, bundle: string, options: CreateOptions = {}): Promise<ContainerState> {
    await this.settled(id);
    const loaded = this.checkedBundle(id, bundle, options);
    const lock = await ContainerLock.acquire(this.root, id);
    try {
      const { record } = (await wantsVm(loaded.spec, options.backend))
        ? { record: await this.createVm(id, loaded.bundle, loaded.spec, options) }
        : await this.launchContainer(id, loaded.bundle, loaded.spec, options, false);
      return this.toState(record);
    } finally {
      lock.release();
    }
  }

  private async createVm(
    id: string,
    bundle: string,
    spec: Spec,
    options: CreateOptions,
  ): Promise<ContainerRecord> {
    const record = newRecord(id, bundle, spec, options);
    // berth-vmm, QEMU and its threads go into the container's cgroup, with its limits
    const rootless = isRootless();
    const { cgroupsPath } = await this.placeCgroup(id, spec, rootless);
    const limit = cgroupsPath ? undefined : askedLimit(spec);
    if (limit)
      throw new BerthError(
        `${limit}: a VM container ${rootless ? 'run without root' : 'without a cgroup'} has no host cgroup to hold its limits`,
        { code: 'EUNSUPPORTED' },
      );
    let cgroup: { path: string; systemd: boolean; shared: boolean } | undefined;
    if (cgroupsPath) {
      cgroup = { path: cgroupsPath, systemd: this.systemd, shared: await this.existingCgroup(cgroupsPath) };
      record.cgroupsPath = cgroupsPath;
      if (this.systemd) record.systemdCgroup = true;
      if (cgroup.shared) record.cgroupShared = true;
    }
    await createVmContainer(this.store, record, spec, options, this.warn, cgroup);
    if (options.pidFile) writeAtomic(resolve(options.pidFile), String(record.pid));
    return record;
  }

  private async launchContainer(
    id: string,
    bundle: string,
    spec: Spec,
    options: CreateOptions,
    foreground: boolean,
    writeRunning = true,
  ): Promise<{ record: ContainerRecord; launched: Launch }> {
    const dir = this.store.claim(id);
    const made: CreateProgress = { cgroupShared: false, pid: 0 };
    this.debug?.(`${foreground ? 'run' : 'create'} ${id}: bundle ${bundle}, state ${dir}`);
    try {
      // The launcher first: it execs while this process plans, then waits for its plan. Should
      // anything below fail first, its plan is closed unsent and it exits having made nothing.
      const launched = launch(undefined, {
        spawner: await this.spawner(),
        ...(options.stdio ? { stdio: options.stdio } : {}),
        preserveFds: Array.from({ length: options.preserveFds ?? 0 }, (_, i) => 3 + i),
      });
      made.launched = launched;
      const { record, seccomp, cgroupAt } = await this.prepareCreate(id, bundle, spec, options, made);
      await this.startLauncher(
        id,
        bundle,
        spec,
        options,
        foreground,
        dir,
        record,
        seccomp,
        cgroupAt,
        made,
        launched,
      );
      await this.setUpAtSync(id, spec, options, foreground, record, launched, made);
      await this.finishCreate(spec, options, foreground, record, launched, made, writeRunning);
      if (made.cgroup && !made.cgroupShared) this.cgroupOf.set(record, made.cgroup);
      return { record, launched };
    } catch (e) {
      await this.undoCreate(e, id, bundle, spec, options, made);
      throw e;
    }
  }

  /**
   * Where a container's cgroup goes (checked, not made yet): cgroupsPath or
   * berth's default, its directories, and linux.resources checked; none for a
   * rootless container (see createRootlessCgroup) or root in a user namespace
   * that cannot make one. The container backend and the VM backend both use it.
   */
  private async placeCgroup(
    id: string,
    spec: Spec,
    rootless: boolean,
  ): Promise<{ cgroupsPath: string | undefined; cgroupAt: CgroupAt | undefined }> {
    let cgroupsPath: string | undefined = rootless
      ? undefined
      : (spec.linux?.cgroupsPath ??
        defaultCgroupsPath(id, this.systemd, this.systemd ? (await cgroups()).defaultSlice() : undefined));
    let cgroupAt: CgroupAt | undefined;
    if (cgroupsPath) {
      cgroupAt = { cgroupsPath, ...(await locateCgroup(spec, cgroupsPath, this.systemd, this.warn)) };
      // root in a user namespace (rootless podman, rootlesskit) may have no cgroup to make: as runc's
      // rootless cgroup manager, a container without limits then runs without one
      const cannot = !this.systemd && inUserNamespace() ? uncreatableCgroup(cgroupAt.paths) : undefined;
      if (cannot) {
        const limit = askedLimit(spec);
        if (limit)
          throw new BerthError(
            `${limit}: berth runs as root in a user namespace and cannot make the container's cgroup (${cannot}): a container there can have no limits, unless the cgroup tree is delegated to it`,
            { code: 'ECGROUP', path: cgroupsPath },
          );
        // a debug line, as runc's: every rootless podman container on a v1 host is such, and conmon
        // gives no --log (a warning would open each container's output)
        this.debug?.(
          `${id}: running without a cgroup (root in a user namespace cannot make ${cannot}); pause, resume, update and stats need one`,
        );
        cgroupsPath = cgroupAt = undefined;
      }
    }
    return { cgroupsPath, cgroupAt };
  }

  /**
   * Whether the container's cgroup exists already (then it is not the container's to empty or
   * remove on delete); a frozen one or one with processes in it is refused.
   */
  private async existingCgroup(cgroupsPath: string | undefined): Promise<boolean> {
    // a cgroup that exists already is not the container's to empty or remove on delete; a
    // frozen one would stop the container at its first step, and the create with it (runc refuses
    // it too), and one with processes in it is another's
    const existing = cgroupsPath ? await loadCgroup(cgroupsPath, this.systemd) : undefined;
    if (existing) {
      if (await existing.isFrozen())
        throw new BerthError(
          `linux.cgroupsPath: container's cgroup unexpectedly frozen: ${cgroupsPath} exists and is frozen; thaw it, or give another`,
          { code: 'ECGROUP', path: cgroupsPath },
        );
      // processes there would share the container's limits, and its kill and delete (runc 1.2 refuses it)
      const procs = await existing.pids();
      if (procs.length)
        throw new BerthError(
          `linux.cgroupsPath: the container's cgroup is not empty: ${cgroupsPath} has ${procs.length} process${procs.length === 1 ? '' : 'es'} (${procs.slice(0, 5).join(', ')}${procs.length > 5 ? ', …' : ''}); give a cgroup of its own`,
          { code: 'ECGROUP', path: cgroupsPath },
        );
      return true;
    }
    return false;
  }

  /**
   * Before anything runs: what only root may do is refused without root, the
   * state record is written (so that `delete` finds whatever a crash leaves),
   * the seccomp profile is compiled, linux.resources checked and the cgroup
   * located (startLauncher makes it while the launcher starts; a rootless
   * container's is made here).
   */
  private async prepareCreate(
    id: string,
    bundle: string,
    spec: Spec,
    options: CreateOptions,
    made: CreateProgress,
  ): Promise<{
    record: ContainerRecord;
    seccomp: CompiledSeccomp | undefined;
    cgroupAt: CgroupAt | undefined;
  }> {
    const rootless = isRootless();
    const rootlessProblem = rootless ? rootlessSpecProblem(spec) : undefined;
    if (rootlessProblem) throw new BerthError(rootlessProblem, { code: 'EROOTLESS' });
    const { cgroupsPath, cgroupAt } = await this.placeCgroup(id, spec, rootless);
    // Written before anything is made: if this process dies mid-create,
    // `delete` still finds the cgroup and the directories to remove.
    const record: ContainerRecord = {
      ...newRecord(id, bundle, spec, options),
      ...(options.network ? { network: networkRecordBase(options.network) } : {}),
      ...(options.noNewKeyring ? { noNewKeyring: true } : {}),
      ...(cgroupsPath ? { cgroupsPath } : {}),
      ...(this.systemd ? { systemdCgroup: true } : {}),
    };
    if (await this.existingCgroup(cgroupsPath)) record.cgroupShared = made.cgroupShared = true;
    this.store.write(record);
    // compiled before anything is made: a profile libseccomp refuses fails the create cleanly
    const seccomp = await compileProfile(spec.linux?.seccomp);
    if (options.network) await checkNetworkOptions(options.network);
    made.netDevices = await checkNetDevices(spec, rootless);
    if (rootless) {
      // rootless: a cgroup in the subtree delegated to the user, or none (see rootless.ts)
      const rootlessCgroup = await createRootlessCgroup(spec, id, this.warn);
      made.cgroup = rootlessCgroup.cgroup;
      if (rootlessCgroup.cgroupsPath) {
        record.cgroupsPath = rootlessCgroup.cgroupsPath;
        record.cgroupRoot = rootlessCgroup.cgroupRoot!;
        this.store.write(record);
      }
    }
    return { record, seccomp, cgroupAt };
  }

  /** Plans the container, hands the launcher its plan and makes the cgroup meanwhile; returns once the container's pid is known. */
  private async startLauncher(
    id: string,
    bundle: string,
    spec: Spec,
    options: CreateOptions,
    foreground: boolean,
    dir: string,
    record: ContainerRecord,
    seccomp: CompiledSeccomp | undefined,
    cgroupAt: CgroupAt | undefined,
    made: CreateProgress,
    launched: Launch,
  ): Promise<void> {
    const cgroup = made.cgroup ?? cgroupAt;
    const fifo = foreground ? undefined : join(dir, 'exec.fifo');
    const cgroupJoin = cgroupAt && selfJoinable(spec) ? selfJoinPaths(cgroupAt.paths) : undefined;
    made.selfJoin = cgroupJoin !== undefined;
    // a cgroup2 directory the container is created in must exist before its clone; so must a
    // systemd scope, which systemd makes with the launcher in it (the container is born there)
    const scopePid = this.systemd && cgroupAt && !made.cgroupShared ? await launched.spawnedPid() : undefined;
    if (this.systemd && cgroupAt && !made.cgroupShared && scopePid === undefined)
      throw new BerthError('the launcher did not start: no process to make the systemd scope with', {
        code: 'ELAUNCH',
      });
    if (cgroupAt && (cgroupJoin?.v2 || scopePid !== undefined))
      made.cgroup = await createCgroup(
        spec,
        cgroupAt.cgroupsPath,
        this.systemd,
        true,
        made.cgroupShared,
        scopePid,
      );
    if (options.overlay) ownSnapshotUpper(spec, options.overlay.upper); // a user namespace's root owns its snapshot
    // without a cgroup of its own (root in a user namespace), its /sys/fs/cgroup shows the one it
    // is in, as runc's does: limits set above it are what it reads there
    const cgroupView =
      cgroup ??
      (!isRootless() && inUserNamespace() && spec.mounts?.some((m) => m.type === 'cgroup')
        ? await (await import('@berth/cgroups')).Cgroup.ofProcess()
        : undefined);
    const plan = planContainer(spec, {
      ...(seccomp ? { seccomp } : {}),
      ...(cgroupView ? { cgroupLayout: cgroupView.layout, cgroupPaths: cgroupView.paths } : {}),
      bundle,
      foreground,
      ...(foreground && options.relayStdio ? { relayStdio: true } : {}),
      ...(fifo ? { fifo } : {}),
      ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}),
      ...(options.preserveFds ? { preserveFds: options.preserveFds } : {}),
      ...(options.overlay ? { overlay: options.overlay } : {}),
      ...(options.noNewKeyring ? {} : { keyring: sessionKeyring(id) }),
      ...(cgroupJoin ? { cgroupJoin } : {}),
      stageDir: join(dir, 'binds'),
    });
    made.staged = plan.staged === true ? join(dir, 'binds') : undefined;
    for (const w of plan.warnings) this.warn(w);
    if (seccomp?.notify)
      launched.setSeccompListener(
        seccompListener(spec.linux?.seccomp, () => ({ ...this.hookState(record) })),
      );
    if (this.debug) {
      if (seccomp)
        this.debug(
          `${id}: seccomp filter flags: ${seccomp.flags} (${seccomp.bpf.length / 8} BPF instructions${seccomp.skipped.length ? `; syscalls this libseccomp does not know, left out: ${seccomp.skipped.join(' ')}` : ''})`,
        );
      this.debug(`${id}: the launcher's plan, ${plan.steps.length} steps`);
      for (const [i, st] of plan.steps.entries())
        this.debug(`${id}: plan[${i}] ${st.op}: ${describeStep(st)}`);
    }
    launched.sendPlan(plan.steps);
    // Otherwise the cgroup is made while the launcher starts: the container is in its
    // namespaces and joins the cgroup only after its first sync, and nothing of the cgroup is
    // used before.
    if (cgroupAt && !made.cgroup)
      made.cgroup = await createCgroup(spec, cgroupAt.cgroupsPath, this.systemd, true, made.cgroupShared);
    const pid = (await launched.expect('pid')).pid;
    made.pid = record.pid = pid;
    // the container's process is in the scope now: the launcher leaves it (it would count in
    // `ps`, pids.max and `kill --all`); where the kernel refuses, it stays until it exits
    if (scopePid !== undefined && made.cgroup && !(await made.cgroup.releaseProcess(scopePid)))
      this.debug?.(`${id}: the launcher (${scopePid}) stays in the scope until it exits`);
    this.debug?.(`${id}: container process ${pid}${made.cgroup ? `, cgroup ${record.cgroupsPath}` : ''}`);
    // recorded later (setUpAtSync, finishCreate), with its start time (read there, off the
    // path the container waits on). Until then a death of this process ends the container
    // too: the launcher's child reads end-of-file at its sync and exits.
  }

  /**
   * At the sync point (the container's namespaces exist, nothing is mounted
   * yet): the runtime's own work from the host — network, Intel RDT, the
   * cgroup join, the prestart and createRuntime hooks — then the container is
   * let go, and the cgroup join (overlapped with its mounts) is awaited.
   */
  private async setUpAtSync(
    id: string,
    spec: Spec,
    options: CreateOptions,
    foreground: boolean,
    record: ContainerRecord,
    launched: Launch,
    made: CreateProgress,
  ): Promise<void> {
    const pid = made.pid;
    await launched.expect('sync'); // namespaces exist: the place for cgroups, network, uid maps
    this.debug?.(`${id}: namespaces ready (sync 1): network, cgroup join, prestart and createRuntime hooks`);
    // before any mount: the namespaces it really is in, not the paths config.json named
    checkNotRuntimeNamespaces(pid, spec);
    if (options.joinedNamespaces) checkJoinedNamespaces(pid, options.joinedNamespaces);
    // Its start time, which tells this pid from a later process's, goes into the record with
    // it. Read before any record is written, else once the container is let go: it cannot
    // have exited and been reaped unseen before then (its next sync is with us).
    const recordStartTime = () => {
      if (record.pidStartTime !== undefined) return;
      const stat = procStat(pid);
      if (stat) record.pidStartTime = stat.startTime;
    };
    if (options.network || spec.linux?.intelRdt) recordStartTime();
    if (made.netDevices?.length) await moveNetDevices(pid, made.netDevices);
    if (options.network) {
      record.network = await attachNetwork(id, pid, options.network);
      this.store.write(record);
    }
    if (spec.linux?.intelRdt) {
      made.rdt = applyIntelRdt(spec.linux.intelRdt, id, pid);
      record.intelRdt = made.rdt;
      this.store.write(record);
    }
    // The first join of a cgroup costs the kernel an RCU grace period (cgroup.procs takes
    // the threadgroup rwsem for writing): the container does its mounts meanwhile, and it
    // still waits before exec for us. Hooks, and a new cgroup namespace (made by the
    // container right after this sync: its root is the cgroup it is in), need the join done.
    // A container that joins its cgroup itself (PlanContext.cgroupJoin) does so right after
    // this sync, before it makes a cgroup namespace.
    const hooks = !!spec.hooks?.prestart?.length || !!spec.hooks?.createRuntime?.length;
    const joinFirst =
      !made.selfJoin &&
      (hooks || (spec.linux?.namespaces?.some((n) => n.type === 'cgroup' && !n.path) ?? false));
    if (!joinFirst) launched.release();
    const joined =
      made.cgroup && !made.selfJoin
        ? made.cgroup.addProcess(pid, { offThread: this.spawnMode !== 'fork' })
        : Promise.resolve();
    if (!joinFirst) recordStartTime();
    // an earlier `run`'s teardown, while this container makes its mounts (see tearDown)
    this.beginTeardowns();
    if (joinFirst) {
      await joined;
      recordStartTime();
      if (hooks) {
        this.store.write(record); // the pid, for the hooks that ask `state`
        const hookState = this.hookState(record);
        await runHooks('prestart', spec.hooks?.prestart, hookState);
        await runHooks('createRuntime', spec.hooks?.createRuntime, hookState);
      }
      launched.release();
    } else {
      // The pid is recorded with the status, once the container is created (finishCreate):
      // until then a death of this process ends the container (it reads end-of-file at its
      // next sync and exits), and the cgroup it joins before it may exec is in the record.
      try {
        await joined;
      } catch (e) {
        // ESRCH: the container failed a step and exited first; its own report says why
        await launched.expect(foreground ? 'sync' : 'ready');
        throw e;
      }
    }
  }

  /** The createContainer hooks (in the container, before pivot_root's results are used), then created or running. */
  private async finishCreate(
    spec: Spec,
    options: CreateOptions,
    foreground: boolean,
    record: ContainerRecord,
    launched: Launch,
    made: CreateProgress,
    writeRunning: boolean,
  ): Promise<void> {
    const cgroup = made.cgroup;
    if (spec.hooks?.createContainer?.length) {
      const at = await launched.expect('sync');
      if (at.id !== SYNC_CREATE_CONTAINER)
        throw new BerthError(`launcher protocol: expected the createContainer sync, got ${at.id}`, {
          code: 'ELAUNCH',
        });
      this.store.write(record); // the pid, for the hooks that ask `state`
      await runContainerHooks('createContainer', spec.hooks.createContainer, this.hookState(record), {
        pid: made.pid,
        ...(cgroup ? { addToCgroup: (p: number) => cgroup.addProcess(p) } : {}),
      });
      launched.release();
    }
    if (foreground) {
      await launched.expect('sync');
      // `run` writes it once it has let the program go (runLaunched): not on the path it waits on
      if (writeRunning) {
        record.status = 'running';
        this.store.write(record);
      }
    } else {
      await launched.expect('ready');
      record.status = 'created';
      this.store.write(record);
    }
    this.debug?.(`${record.id}: ${foreground ? 'ready to exec' : 'created'}`);
    if (options.pidFile) writeAtomic(resolve(options.pidFile), String(made.pid));
    if (!foreground) launched.detach();
    // the container has its own copies of what was staged (mounts in the launcher's namespace only)
    if (made.staged) rmSync(made.staged, { recursive: true, force: true });
  }

  /**
   * A create that failed: everything `made` lists is taken apart (the process,
   * the network, a cgroup of the container's own, its RDT group, the state and
   * the snapshot directories), then the poststop hooks run after a failed
   * prestart, createRuntime or createContainer hook.
   */
  private async undoCreate(
    e: unknown,
    id: string,
    bundle: string,
    spec: Spec,
    options: CreateOptions,
    made: CreateProgress,
  ): Promise<void> {
    if (made.pid > 0) {
      try {
        process.kill(made.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await waitGone(made.pid, undefined, 5000);
    }
    const launched = made.launched;
    if (launched) {
      launched.process.kill('SIGKILL');
      // gone before the create's error is reported: a failed create leaves no process behind
      // (a launcher killed while it starts may still be exiting a moment later)
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        launched.exited.catch(() => 0),
        new Promise((r) => {
          timer = setTimeout(r, 5000);
        }),
      ]);
      clearTimeout(timer);
      launched.detach();
    }
    if (options.network)
      await detachNetwork(id, options.network).catch((err: Error) => this.warn(`cleanup: ${err.message}`));
    // only a cgroup of the container's own is emptied and removed
    if (made.cgroup && !made.cgroupShared) {
      await made.cgroup.killAll('SIGKILL').catch(() => {});
      await made.cgroup.delete().catch((err: Error) => this.warn(`cleanup: ${err.message}`));
    }
    removeIntelRdt(made.rdt);
    this.store.remove(id);
    for (const d of options.ownedDirs ?? []) removeTree(d);
    // a failed prestart, createRuntime or createContainer hook: the lifecycle goes on
    // at "destroy" (done above), then the poststop hooks (the OCI spec's steps 12, 13)
    if ((e as BerthError).code === 'EHOOK' && spec.hooks?.poststop?.length) {
      const state: HookState = { ociVersion: OCI_VERSION, id, status: 'stopped', bundle };
      if (spec.annotations) state.annotations = spec.annotations;
      await runHooks('poststop', spec.hooks.poststop, state, (err) => this.warn(err.message));
    }
  }

  /** Starts a created container: its process execs the user's program. */
  async start(id: string): Promise<void> {
    await this.settled(id);
    const started = await withLock(this.root, id, async () => {
      const record = this.store.read(id);
      const status = this.liveStatus(record);
      if (status !== 'created') {
        throw new BerthError(
          status === 'stopped'
            ? `cannot start container ${id}: it has stopped`
            : `cannot start container ${id}: it is ${status}`,
          { code: 'ESTATE', path: id },
        );
      }
      const startHooks = record.vm ? undefined : this.recordSpec(record).hooks?.startContainer;
      if (startHooks?.length) {
        try {
          await this.runStartContainerHooks(record, startHooks);
        } catch (e) {
          return { record, failed: e as Error };
        }
      }
      if (record.vm) await startVm(record);
      else await this.openFifo(record);
      this.debug?.(`${id}: started (exec fifo released)`);
      record.status = 'running';
      this.store.write(record);
      return { record, failed: undefined };
    });
    if (started.failed) {
      // the OCI rule for a failed startContainer hook: stop the container, destroy it, poststop hooks
      await this.delete(id, { force: true }).catch((e: Error) => this.warn(`cleanup: ${e.message}`));
      throw started.failed;
    }
    const record = started.record;
    try {
      await runHooks('poststart', record.hooks?.poststart, this.hookState(record));
    } catch (e) {
      // runtime.md (1.2+): a failed poststart hook is an error; the container is stopped and
      // the lifecycle goes on at destroy, then the poststop hooks (runc 1.2 does the same)
      await this.delete(id, { force: true }).catch((c: Error) => this.warn(`cleanup: ${c.message}`));
      throw e;
    }
  }

  /** startContainer hooks: in the container's namespaces, after pivot_root, before the program runs. */
  private async runStartContainerHooks(
    record: ContainerRecord,
    hooks: NonNullable<Spec['hooks']>['startContainer'],
  ): Promise<void> {
    const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true, record.cgroupRoot);
    const spec = this.recordSpec(record);
    const linux = spec.linux;
    const seccomp = await compileProfile(linux?.seccomp);
    await runContainerHooks(
      'startContainer',
      hooks,
      { ...this.hookState(record), status: 'created' },
      {
        pid: record.pid,
        env: spec.process?.env ?? [],
        homeUid: spec.process?.user?.uid ?? 0,
        ...(cgroup ? { addToCgroup: (p: number) => cgroup.addProcess(p) } : {}),
        // as runc runs them, from the container's init: as the container's process, with
        // its capabilities, no_new_privs, LSM label and seccomp filter, in its working directory
        plan: async (path, argv, env) => {
          const proc: Process = { ...(spec.process ?? { cwd: '/' }), terminal: false, args: argv, env };
          delete proc.consoleSize;
          const { steps, warnings } = await planExec(proc, {
            pid: record.pid,
            ...(record.pidStartTime !== undefined ? { pidStartTime: record.pidStartTime } : {}),
            foreground: true,
            ...(record.noNewKeyring ? {} : { keyring: sessionKeyring(record.id) }),
            ...(seccomp ? { seccomp } : {}),
            ...(linux?.personality ? { personality: linux.personality } : {}),
            ...(linux?.memoryPolicy ? { memoryPolicy: linux.memoryPolicy } : {}),
          });
          for (const w of warnings) this.debug?.(`startContainer hook: ${w}`);
          // the hook's own path is what runs (its argv[0] is only a name): nothing to look up
          return steps
            .filter((st) => st.op !== 'lookup')
            .map((st) => (st.op === 'exec' ? { ...st, path, describe: `exec hook ${path}` } : st));
        },
      },
    );
  }

  private async openFifo(record: ContainerRecord): Promise<void> {
    const fifo = this.store.fifo(record.id);
    // Non-blocking: a blocking open would hang forever if the container died meanwhile.
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const released = (): boolean => {
      try {
        return readSync(fd, Buffer.alloc(1), 0, 1, null) === 1;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        return false;
      }
    };
    try {
      let delay = 0.5;
      for (;;) {
        if (released()) break;
        // The process opens the fifo (we are its reader), writes one byte and execs: a
        // short program may have exited between our read and this check. What it wrote
        // stays in the pipe while we hold it open, so a last read after its death tells
        // "released, then exited" (started: runc's semantics) from "died waiting".
        if (!isAlive(record.pid, record.pidStartTime)) {
          if (released()) break;
          throw new BerthError(`cannot start container ${record.id}: its process exited`, {
            code: 'ESTATE',
            path: record.id,
          });
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 20);
      }
    } finally {
      closeSync(fd);
    }
    unlinkSync(fifo);
  }

  /** The live status: a dead (or reused) pid means stopped; a fifo still there means created. */
  liveStatus(record: ContainerRecord): Status {
    if (record.vm) return vmStatus(record, isAlive(record.pid, record.pidStartTime));
    if (!isAlive(record.pid, record.pidStartTime)) return 'stopped';
    if (record.status === 'creating') return 'creating';
    if (existsSync(this.store.fifo(record.id))) return 'created';
    return record.status === 'paused' ? 'paused' : 'running';
  }

  private toState(record: ContainerRecord): ContainerState {
    const status = this.liveStatus(record);
    return {
      ociVersion: record.ociVersion,
      id: record.id,
      pid: status === 'stopped' ? 0 : record.pid,
      status,
      bundle: record.bundle,
      rootfs: record.rootfs,
      created: record.created,
      owner: record.owner,
      ...(record.annotations ? { annotations: record.annotations } : {}),
    };
  }

  private hookState(record: ContainerRecord): HookState {
    return {
      ociVersion: record.ociVersion,
      id: record.id,
      status: record.status,
      ...(record.pid ? { pid: record.pid } : {}),
      bundle: record.bundle,
      ...(record.annotations ? { annotations: record.annotations } : {}),
    };
  }

  /** The OCI state of a container. */
  async state(id: string): Promise<ContainerState> {
    await this.settled(id);
    return this.toState(this.store.read(id));
  }

  /**
   * The namespace of `kind` that container `id`'s process is in (`net:[4026532…]`), read while it
   * is checked to be that process (its start time): for {@link CreateOptions.joinedNamespaces}.
   * An error when the container is not running (or created).
   */
  async namespaceOf(id: string, kind: NamespaceKind): Promise<string> {
    await this.settled(id);
    const record = this.store.read(id);
    const status = this.toState(record).status;
    if (status !== 'running' && status !== 'created' && status !== 'paused')
      throw new BerthError(`container ${id} is ${status}: it has no namespaces to share`, { code: 'ESTATE' });
    if (record.vm)
      throw new BerthError(`container ${id} runs in a VM: its namespaces are the guest's`, {
        code: 'EINVAL',
      });
    let link: string | undefined;
    try {
      link = readlinkSync(`/proc/${record.pid}/ns/${NS_FILE[kind]}`);
    } catch {}
    // read, then checked: the pid cannot have been another process's in between
    if (link === undefined || !isAlive(record.pid, record.pidStartTime))
      throw new BerthError(`container ${id} has exited: it has no namespaces to share`, { code: 'ESTATE' });
    return link;
  }

  /** Every container under the root, with its live status. */
  async list(): Promise<Array<ContainerState & { image?: string }>> {
    await this.settled();
    const out: Array<ContainerState & { image?: string }> = [];
    for (const id of this.store.ids()) {
      try {
        const record = this.store.read(id);
        out.push({ ...this.toState(record), ...(record.image ? { image: record.image } : {}) });
      } catch {
        // half-created or removed meanwhile
      }
    }
    return out;
  }

  /** Sends a signal to the container's process, or with `all` to every process in its pid namespace. */
  async kill(id: string, signal: number = 15, options: { all?: boolean } = {}): Promise<void> {
    await this.settled(id);
    await withLock(this.root, id, async () => {
      const record = this.store.read(id);
      const status = this.liveStatus(record);
      // Without a pid namespace of its own, the container's other processes outlive its first
      // one: SIGKILL goes to every process of its cgroup (runc 1.2's rule), also once the first is gone
      const ns = this.recordSpec(record).linux?.namespaces ?? [];
      const ownPidNs = ns.some((n) => n.type === 'pid' && !n.path);
      if (status === 'stopped') {
        const left =
          !ownPidNs && !record.vm && (signal === 9 || options.all) ? await this.cgroupPids(record) : [];
        const others = left.filter((p) => p !== record.pid);
        // `--all` with nothing left to signal is no error (runc: -a makes kill of a stopped container succeed)
        if (!others.length && options.all) return;
        if (!others.length)
          throw new BerthError(`cannot signal container ${id}: container not running`, {
            code: 'ESTATE',
            path: id,
          });
        signalEach(others, signal);
        return;
      }
      if (record.vm) return killVm(record, signal, options.all === true);
      if (!options.all && signal === 9 && !ownPidNs && !record.vm) {
        // its cgroup's processes only: a namespace it shares is not all the container's
        await signalProcess(record.pid, record.pidStartTime, signal);
        signalEach(await this.cgroupPids(record), signal);
        return;
      }
      if (!options.all) {
        // through a pidfd of the container's process: a reused pid is never signalled
        if (!(await signalProcess(record.pid, record.pidStartTime, signal)))
          throw new BerthError(`cannot signal container ${id}: container not running`, {
            code: 'ESTATE',
            path: id,
          });
        return;
      }
      signalEach(await this.processes(record), signal);
    });
  }

  /** Deletes a container: its state, its snapshot; `force` kills it first if it runs. */
  async delete(id: string, options: { force?: boolean } = {}): Promise<void> {
    validateId(id);
    await this.settled(id);
    await this.remove(id, options);
  }

  /**
   * Waits for the teardown `run` left under way for `id` (every one without an id). A
   * teardown's failure was reported through `warn` already; here it only ends the wait.
   */
  private async settled(id?: string): Promise<void> {
    this.beginTeardowns(id);
    if (id === undefined) await Promise.all(this.teardowns.values());
    else await this.teardowns.get(id);
  }

  /**
   * Waits until every container `run` has finished with is torn down: its cgroup,
   * mounts, state and snapshot gone. Call it before the program exits. The Runtime
   * stays usable afterwards.
   */
  async close(): Promise<void> {
    const pools = [...this.pools];
    this.pools.clear();
    await Promise.all(pools.map((pool) => pool.close()));
    await Promise.all([...this.prepared].map((p) => p.discard()));
    while (this.teardowns.size > 0) await this.settled();
  }

  /**
   * `run`'s teardown, after the container's process has exited, under way while `run`
   * returns. Unless `now`, it begins once the next container of this Runtime has been let
   * go at its first sync (setUpAtSync), or after TEARDOWN_DELAY_MS: a program that runs
   * containers one after another then tears the last one down while the next one makes its
   * mounts (this process has nothing else to do then), not on the path it waits on.
   * `settled` and `close` begin it at once.
   */
  private tearDown(id: string, cgroup: Cgroup | undefined, now = false): Promise<void> {
    let begin!: () => void;
    const begun = new Promise<void>((r) => {
      begin = r;
    });
    const done: Promise<void> = begun
      .then(() => this.remove(id, { force: true, cgroup }))
      .catch((e: Error) => this.warn(`cleanup: ${e.message}`))
      .finally(() => {
        if (this.teardowns.get(id) === done) this.teardowns.delete(id);
      });
    this.teardowns.set(id, done);
    this.queuedTeardowns.set(id, begin);
    if (now) this.beginTeardowns(id);
    else this.teardownTimer ??= setTimeout(() => this.beginTeardowns(), TEARDOWN_DELAY_MS);
    return done;
  }

  /** Begins the queued teardown of `id`, or every one (see tearDown). */
  private beginTeardowns(id?: string): void {
    if (id !== undefined) {
      this.queuedTeardowns.get(id)?.();
      this.queuedTeardowns.delete(id);
      if (this.queuedTeardowns.size > 0) return;
    } else for (const begin of this.queuedTeardowns.values()) begin();
    this.queuedTeardowns.clear();
    if (this.teardownTimer) clearTimeout(this.teardownTimer);
    this.teardownTimer = undefined;
  }

  /** posix_spawn for the launcher, unless this Runtime forks (see RuntimeOptions.spawn). */
  private async spawner(): Promise<Spawner | undefined> {
    return this.spawnMode === 'fork' ? undefined : loadSpawner();
  }

  /** delete() itself, without waiting for a teardown under way (it is one). */
  private async remove(id: string, options: { force?: boolean; cgroup?: Cgroup | undefined }): Promise<void> {
    await withLock(this.root, id, async () => {
      let record: ContainerRecord;
      try {
        record = this.store.read(id);
      } catch (e) {
        if (options.force && (e as BerthError).code === 'ENOTFOUND') {
          this.store.remove(id); // a directory left by a crash mid-create
          return;
        }
        throw e;
      }
      const status = this.liveStatus(record);
      this.debug?.(`delete ${id}: ${status}${options.force ? ', --force' : ''}`);
      if (status === 'running' || status === 'paused') {
        if (!options.force) {
          throw new BerthError(`cannot delete container ${id} that is not stopped: ${status}`, {
            code: 'ESTATE',
            path: id,
          });
        }
      }
      if (record.vm) await deleteVm(record); // QEMU, its sockets and logs
      // a cgroup berth did not create (it existed before the container) is never emptied nor removed
      const cgroup = record.cgroupShared
        ? undefined
        : (options.cgroup ??
          (await loadCgroup(record.cgroupsPath, record.systemdCgroup === true, record.cgroupRoot)));
      // an empty cgroup (the usual case: the container exited) is removed at once, without
      // reading who is in it; one still busy is killed (cgroup.kill, or a freeze-and-signal round on
      // v1 and older kernels), then deleted below
      const removed = status === 'stopped' && cgroup ? await cgroup.deleteIfEmpty() : false;
      if (cgroup && !removed && (await cgroup.pids()).length > 0) {
        this.debug?.(`delete ${id}: killing what is left in its cgroup`);
        // (its owner, systemd, may remove it once it is empty: gone is no error)
        if (await cgroup.isFrozen()) {
          const { cgroupGone } = await cgroups();
          await cgroup.thaw().catch((err: unknown) => {
            if (!cgroupGone(err)) throw err;
          });
        }
        await cgroup.killAll('SIGKILL');
      }
      if (status !== 'stopped' && !record.vm) {
        // the container's own process, through a pidfd; with a pid namespace of its own the kernel
        // takes every other process in it along. A joined pid namespace is never emptied.
        await signalProcess(record.pid, record.pidStartTime, 9);
        if (!(await waitGone(record.pid, record.pidStartTime, 10_000))) {
          throw new BerthError(`container ${id}: process ${record.pid} did not exit after SIGKILL`, {
            code: 'EBUSY',
            path: id,
          });
        }
      }
      // the veth, the port rules, the lease: what is left is named, and the rest of delete goes on
      if (record.network)
        await detachNetwork(id, record.network).catch((e: Error) => this.warn(`delete ${id}: ${e.message}`));
      if (!removed) await cgroup?.delete();
      removeIntelRdt(record.intelRdt);
      for (const d of record.ownedDirs ?? []) removeTree(d);
      this.store.remove(id);
      this.debug?.(`delete ${id}: cgroup, network and state removed`);
      await runHooks(
        'poststop',
        record.hooks?.poststop,
        { ...this.hookState(record), status: 'stopped' },
        (e) => this.warn(e.message),
      );
    });
  }

  /** config.json as it was at create (the bundle's file for records that predate keeping it). */
  private recordSpec(record: ContainerRecord): Spec {
    return record.spec ?? this.loadBundle(record.bundle).spec;
  }

  /**
   * The container's process as config.json describes it: the base that
   * `exec` options override (env, user, capabilities, cwd), as runc does.
   */
  configProcess(id: string): Process {
    const record = this.store.read(id);
    return structuredClone(this.recordSpec(record).process ?? { cwd: '/' });
  }

  /**
   * Runs another process in a running container, in all its namespaces and its
   * cgroup. Returns the process's exit status (128+N for signal N), or 0 at once
   * with `detach`.
   */
  async exec(id: string, proc: Process, options: ExecOptions = {}): Promise<number> {
    await this.settled(id);
    // The lock is held until the new process has joined the container (namespaces, cgroup) and
    // exec'd: a delete, kill or pause meanwhile waits instead of racing the join. Not while it runs.
    const lock = await ContainerLock.acquire(this.root, id);
    try {
      return await this.execLocked(id, proc, options, () => lock.release());
    } finally {
      lock.release();
    }
  }

  private async execLocked(
    id: string,
    proc: Process,
    options: ExecOptions,
    unlock: () => void,
  ): Promise<number> {
    const record = this.store.read(id);
    const status = this.liveStatus(record);
    // a created container's process exists, waiting for start: runc execs into it too
    if (status !== 'running' && status !== 'created') {
      throw new BerthError(
        status === 'paused'
          ? `cannot exec in a paused container: ${id} is paused; resume it first`
          : `cannot exec in container ${id}: it is ${status}`,
        { code: 'ESTATE', path: id },
      );
    }
    if (record.vm) {
      if (options.detach || options.consoleSocket || options.preserveFds)
        throw new BerthError(
          'exec --detach, --console-socket and --preserve-fds are not supported by the VM backend yet',
          { code: 'EUNSUPPORTED' },
        );
      unlock();
      const spec = record.spec ?? this.loadBundle(record.bundle).spec;
      return execVm(record, spec, proc, options.stdio, this.warn);
    }
    const foreground = !options.detach;
    // the container's seccomp filter and personality apply to every process in it, as in runc
    const linux = this.recordSpec(record).linux;
    const seccomp = await compileProfile(linux?.seccomp);
    const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true, record.cgroupRoot);
    const subCgroups = options.cgroup?.length ? subCgroupDirs(cgroup, options.cgroup) : undefined;
    const initCgroup = subCgroups ? undefined : initCgroupFallback(cgroup, record.pid);
    // the process joins the cgroup itself, as a container's first process does (selfJoinable)
    const selfJoin =
      cgroup &&
      !subCgroups &&
      !initCgroup &&
      !record.cgroupRoot &&
      !isRootless() &&
      selfJoinable(this.recordSpec(record));
    const { steps, warnings, cgroupJoined } = await planExec(proc, {
      pid: record.pid,
      ...(record.pidStartTime !== undefined ? { pidStartTime: record.pidStartTime } : {}),
      foreground,
      ...(foreground && options.relayStdio ? { relayStdio: true } : {}),
      ...(record.noNewKeyring ? {} : { keyring: sessionKeyring(record.id) }),
      ...(seccomp ? { seccomp } : {}),
      ...(linux?.personality ? { personality: linux.personality } : {}),
      ...(linux?.memoryPolicy ? { memoryPolicy: linux.memoryPolicy } : {}),
      ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}),
      ...(options.preserveFds ? { preserveFds: options.preserveFds } : {}),
      ...(selfJoin ? { cgroupJoin: selfJoinPaths(cgroup.paths) } : {}),
    });
    for (const w of warnings) this.warn(w);
    if (this.debug) {
      this.debug(`exec ${id}: the launcher's plan, ${steps.length} steps`);
      for (const [i, st] of steps.entries())
        this.debug(`exec ${id}: plan[${i}] ${st.op}: ${describeStep(st)}`);
    }
    const preserved = Array.from({ length: options.preserveFds ?? 0 }, (_, i) => 3 + i);
    const spawner = await this.spawner();
    const launched = launch(steps, {
      spawner,
      ...(options.stdio ? { stdio: options.stdio } : {}),
      ...(seccomp?.notify
        ? {
            onSeccompListener: seccompListener(linux?.seccomp, () => ({
              ...this.hookState(record),
              status: 'running',
            })),
          }
        : {}),
      preserveFds: preserved,
    });
    let pid = 0;
    try {
      pid = (await launched.expect('pid')).pid;
      await launched.expect('sync');
      this.debug?.(`exec ${id}: process ${pid}, joining the container's cgroup`);
      if (subCgroups) for (const dir of subCgroups) writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      else if (!cgroupJoined) {
        try {
          await cgroup?.addProcess(pid);
        } catch (e) {
          if (!initCgroup || (e as { errno?: string }).errno !== 'EBUSY') throw e;
          this.debug?.(`exec ${id}: the container's cgroup takes no process (EBUSY): joining ${initCgroup}`);
          writeFileSync(join(initCgroup, 'cgroup.procs'), String(pid));
        }
      }
      if (record.intelRdt) joinIntelRdt(record.intelRdt, pid);
      launched.release();
      await launched.expect('eof'); // exec'd, or a step failed (then this throws)
    } catch (e) {
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      launched.process.kill('SIGKILL');
      throw e;
    }
    unlock();
    if (options.pidFile) writeAtomic(resolve(options.pidFile), String(pid));
    if (options.detach) {
      launched.detach();
      return 0;
    }
    const stopForwarding = options.forwardSignals ? forwardSignals(launched) : undefined;
    try {
      return await launched.exited;
    } finally {
      stopForwarding?.();
    }
  }

  /** Every process of the container: its cgroup's, or those in its pid namespace. */
  /** The processes of the container's cgroup (and those below it); none without a cgroup. */
  private async cgroupPids(record: ContainerRecord): Promise<number[]> {
    const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true, record.cgroupRoot);
    return cgroup ? cgroup.pids() : [];
  }

  private async processes(record: ContainerRecord): Promise<number[]> {
    if (record.vm) return [record.pid]; // the guest's processes are not the host's
    const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true, record.cgroupRoot);
    const pids = cgroup ? await cgroup.pids() : [];
    return pids.length ? pids : processesInPidNamespace(record.pid);
  }

  /** The pids of a running container's processes (runc ps). */
  async ps(id: string): Promise<number[]> {
    const record = this.store.read(id);
    if (this.liveStatus(record) === 'stopped') return [];
    return this.processes(record);
  }

  private async requireCgroup(id: string, record: ContainerRecord): Promise<Cgroup> {
    if (record.vm && !record.cgroupsPath)
      throw new BerthError(
        `container ${id} runs in a VM made by an older berth: no host cgroup holds its QEMU`,
        { code: 'EUNSUPPORTED', path: id },
      );
    const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true, record.cgroupRoot);
    if (!cgroup) throw new BerthError(`container ${id} has no cgroup`, { code: 'ENOTFOUND', path: id });
    return cgroup;
  }

  /** Suspends every process of a running container (cgroup freezer); waits until frozen. */
  async pause(id: string): Promise<void> {
    await this.setPaused(id, true);
  }

  /** Resumes a paused container. */
  async resume(id: string): Promise<void> {
    await this.setPaused(id, false);
  }

  /** pause (freeze, running → paused) or resume (thaw, paused → running), under the lock. */
  private async setPaused(id: string, paused: boolean): Promise<void> {
    await withLock(this.root, id, async () => {
      const record = this.store.read(id);
      const status = this.liveStatus(record);
      const from: Status = paused ? 'running' : 'paused';
      if (status !== from)
        throw new BerthError(`cannot ${paused ? 'pause' : 'resume'} container ${id}: it is ${status}`, {
          code: 'ESTATE',
          path: id,
        });
      if (record.vm) await (paused ? pauseVm(record) : resumeVm(record));
      else {
        const cgroup = await this.requireCgroup(id, record);
        await (paused ? cgroup.freeze() : cgroup.thaw());
      }
      record.status = paused ? 'paused' : 'running';
      this.store.write(record);
    });
  }

  /** Changes the resource limits of a created, running or paused container (runc update). */
  async update(id: string, resources: import('@berth/cgroups').LinuxResources): Promise<void> {
    await withLock(this.root, id, async () => {
      const record = this.store.read(id);
      if (this.liveStatus(record) === 'stopped')
        throw new BerthError(`container ${id} is not running`, { code: 'ESTATE', path: id });
      const { validateResources } = await import('@berth/cgroups');
      // checked with what the container has (a swap limit alone needs the memory limit it
      // already has), as runc merges an update into the container's config
      const current = (record.resources ?? this.recordSpec(record).linux?.resources ?? {}) as Record<
        string,
        unknown
      >;
      const merged: Record<string, unknown> = { ...current };
      for (const [k, v] of Object.entries(resources)) {
        const was = current[k];
        merged[k] =
          v &&
          typeof v === 'object' &&
          !Array.isArray(v) &&
          was &&
          typeof was === 'object' &&
          !Array.isArray(was)
            ? { ...was, ...v }
            : v;
      }
      const problems = validateResources(merged as typeof resources).filter((p) =>
        Object.keys(resources).some((k) => p.path.startsWith(`linux.resources.${k}`)),
      );
      if (problems.length) {
        throw new BerthError(problems.map((p) => `${p.path}: ${p.message}`).join('\n'), { code: 'EINVALID' });
      }
      if (record.vm) return updateVm(record, resources); // the balloon (memory.limit only)
      // memory goes whole (cgroup2's memory.swap.max is memory+swap less the limit: it needs both),
      // and so do the CPU quota and period (cgroup2's cpu.max holds both: a new period alone
      // keeps the quota the container has, as runc's update does)
      const delta = { ...resources };
      if (resources.memory) delta.memory = merged['memory'] as typeof resources.memory;
      if (resources.cpu && (resources.cpu.quota !== undefined || resources.cpu.period !== undefined)) {
        const cpu = merged['cpu'] as NonNullable<typeof resources.cpu>;
        delta.cpu = {
          ...resources.cpu,
          ...(cpu.quota !== undefined ? { quota: cpu.quota } : {}),
          ...(cpu.period !== undefined ? { period: cpu.period } : {}),
        };
      }
      await (await this.requireCgroup(id, record)).apply(delta, { update: true, validated: true });
      record.resources = merged as typeof resources;
      this.store.write(record);
    });
  }

  /**
   * How many of the container's processes the kernel's OOM killer has killed so far (see
   * Cgroup.oomKills): what `berth events` watches for its `oom` events.
   */
  async oomKills(id: string): Promise<number> {
    const record = this.store.read(id);
    if (this.liveStatus(record) === 'stopped')
      throw new BerthError(`container ${id} is not running`, { code: 'ESTATE', path: id });
    return (await this.requireCgroup(id, record)).oomKills();
  }

  /** Resource usage of a container, in runc's `events --stats` shape. */
  async stats(id: string): Promise<Record<string, unknown>> {
    const record = this.store.read(id);
    if (this.liveStatus(record) === 'stopped')
      throw new BerthError(`container ${id} is not running`, { code: 'ESTATE', path: id });
    const { toRuncStats } = await import('@berth/cgroups');
    return toRuncStats(await (await this.requireCgroup(id, record)).stats()) as unknown as Record<
      string,
      unknown
    >;
  }

  /**
   * Creates, starts and (unless `detach`) waits for a container, returning its
   * exit status: the program's exit code, or 128+N when signal N killed it.
   */
  async run(id: string, bundle: string, options: RunOptions = {}): Promise<number> {
    await this.settled(id);
    const loaded = this.checkedBundle(id, bundle, options);
    if (options.detach) {
      await this.create(id, bundle, options);
      try {
        await this.start(id);
      } catch (e) {
        // run -d is one command: a container that cannot start is not left behind
        await this.delete(id, { force: true }).catch((d: Error) => this.warn(`cleanup: ${d.message}`));
        throw e;
      }
      return 0;
    }
    if (await wantsVm(loaded.spec, options.backend)) return runVm(this, id, bundle, options);
    const { launched, record, lock } = await this.launchForRun(id, loaded, options, false);
    return this.runLaunched(id, launched, record, options, lock);
  }

  /**
   * Does all of `run` up to the program's exec, ahead of time: the container is
   * made (namespaces, cgroup, mounts, hooks up to createContainer) and waits just
   * before its execve. `run()` on the result lets it go and returns its exit
   * status as `Runtime.run` does; `discard()` (or `close()`) tears it down
   * unstarted. See also `pool()`.
   */
  async prepare(id: string, bundle: string, options: RunOptions = {}): Promise<PreparedContainer> {
    await this.settled(id);
    const loaded = this.checkedBundle(id, bundle, options);
    if (options.detach || (await wantsVm(loaded.spec, options.backend)))
      throw new BerthError('prepare: a detached run or a VM backend cannot be prepared', {
        code: 'EINVAL',
        path: id,
      });
    const { launched, record } = await this.launchForRun(id, loaded, options, true);
    let state: 'prepared' | 'running' | 'discarded' = 'prepared';
    const prepared: PreparedContainer = {
      id,
      run: () => {
        if (state !== 'prepared')
          return Promise.reject(
            new BerthError(`container ${id}: already ${state}`, { code: 'ESTATE', path: id }),
          );
        state = 'running';
        this.prepared.delete(prepared);
        return this.runLaunched(id, launched, record, options);
      },
      discard: async () => {
        if (state !== 'prepared') return;
        state = 'discarded';
        this.prepared.delete(prepared);
        launched.abort(); // the container exits at its last sync point, its program never run
        await launched.exited.catch(() => 0);
        await this.tearDown(id, this.cgroupOf.get(record), true);
      },
    };
    this.prepared.add(prepared);
    return prepared;
  }

  /**
   * A pool of `size` prepared containers of one bundle (see `prepare`), filled in
   * the background: `pool.run()` takes one, lets it go and returns its exit status,
   * while the next is made on another core. Each has an id of its own
   * (`idPrefix` and a number). `close()` here or on the pool tears down those not run.
   */
  pool(bundle: string, options: PoolOptions): SandboxPool {
    const pool = new SandboxPool(this, bundle, options);
    this.pools.add(pool);
    return pool;
  }

  /**
   * launchContainer for run/prepare: a foreground container, under its lock. For `run`
   * (not `prepared`) the lock is handed back: runLaunched records "running" under it
   * once the program is let go, then releases it.
   */
  private async launchForRun(
    id: string,
    loaded: { bundle: string; spec: Spec },
    options: RunOptions,
    prepared: boolean,
  ): Promise<{ launched: Launch; record: ContainerRecord; lock: ContainerLock | undefined }> {
    const lock = await ContainerLock.acquire(this.root, id);
    try {
      const made = await this.launchContainer(id, loaded.bundle, loaded.spec, options, true, prepared);
      if (prepared) lock.release();
      return { ...made, lock: prepared ? undefined : lock };
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  /** The rest of `run`: the program exec'd, its exit awaited, the teardown under way. */
  private async runLaunched(
    id: string,
    launched: Launch,
    record: ContainerRecord,
    options: RunOptions,
    lock?: ContainerLock,
  ): Promise<number> {
    const stopForwarding = options.forwardSignals ? forwardSignals(launched) : undefined;
    let exited = false;
    try {
      const startHooks = record.spec?.hooks?.startContainer;
      if (startHooks?.length) {
        try {
          await this.runStartContainerHooks(record, startHooks);
        } catch (e) {
          launched.abort(); // the program never runs; the container is destroyed below
          throw e;
        }
      }
      launched.release();
      if (record.status !== 'running') {
        // recorded while the program's exec is under way, still under the container's lock
        record.status = 'running';
        this.store.write(record);
      }
      lock?.release();
      await launched.expect('eof'); // the exec happened (a failed exec throws here)
      try {
        await runHooks('poststart', record.hooks?.poststart, this.hookState(record));
      } catch (e) {
        // a failed poststart hook stops the container (runtime.md); the teardown below destroys it
        await this.kill(id, 9).catch(() => {});
        throw e;
      }
      const status = await launched.exited;
      exited = true;
      return status;
    } finally {
      lock?.release();
      stopForwarding?.();
      await launched.exited.catch(() => 0);
      // The status is returned as soon as the process has exited: the teardown (cgroup, mount
      // namespace, state) goes on meanwhile and is awaited before this id is used again and by
      // close(). A run that failed tears down before its error is thrown. A cleanup failure is
      // reported, but never replaces the container's exit status (or its error).
      if (!options.keep) {
        const teardown = this.tearDown(id, this.cgroupOf.get(record), !exited);
        if (!exited) await teardown;
      }
    }
  }

  /**
   * The id checked and the bundle loaded, before anything is made. A failure
   * here removes the directories handed over with the container (an image
   * run's snapshot), which no container record would ever own.
   */
  private checkedBundle(id: string, bundle: string, options: CreateOptions): { bundle: string; spec: Spec } {
    try {
      validateId(id);
      return this.loadBundle(bundle);
    } catch (e) {
      for (const d of options.ownedDirs ?? []) removeTree(d);
      throw e;
    }
  }
}

/**
 * Whether the container's process can join its cgroup itself (see PlanContext.cgroupJoin):
 * not in a user namespace (it could not write the host's cgroup files), and not where
 * prestart or createRuntime hooks run at the first sync (they find it in its cgroup already).
 */
function selfJoinable(spec: Spec): boolean {
  if (spec.linux?.namespaces?.some((n) => n.type === 'user')) return false;
  return !spec.hooks?.prestart?.length && !spec.hooks?.createRuntime?.length;
}

/** The cgroup's directories as the container joins them: the cgroup2 one at its clone, the v1 ones after. */
function selfJoinPaths(paths: Record<string, string>): { v1: string[]; v2?: string } {
  const v2 = paths['unified'];
  const v1 = [...new Set(Object.entries(paths).flatMap(([ctrl, dir]) => (ctrl === 'unified' ? [] : [dir])))];
  return v2 ? { v1, v2 } : { v1 };
}

/** config.json texts this process has validated (a program runs the same bundles again and again). */
const validTexts = new Set<string>();
const VALID_TEXTS_KEPT = 16;

/** parseSpec, but a text validated before is only parsed (each call gets its own objects). */
function parseValidated(text: string, file: string): Spec {
  if (validTexts.has(text))
    return normalizeSpec(JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text)) as Spec;
  const spec = parseSpec(text, file);
  if (validTexts.size >= VALID_TEXTS_KEPT) validTexts.delete(validTexts.values().next().value as string);
  validTexts.add(text);
  return spec;
}

const FORWARDED: readonly NodeJS.Signals[] = [
  'SIGINT',
  'SIGTERM',
  'SIGHUP',
  'SIGQUIT',
  'SIGUSR1',
  'SIGUSR2',
  'SIGWINCH',
];

/**
 * Passes the signals this process gets on to a foreground launcher, which
 * passes them to the container's process. Returns the function that stops it.
 */
function forwardSignals(launched: Launch): () => void {
  const forward = (signal: NodeJS.Signals) => {
    try {
      process.kill(launched.process.pid!, signal);
    } catch {
      // the launcher is gone: nothing left to signal
    }
  };
  for (const s of FORWARDED) process.on(s, forward);
  return () => {
    for (const s of FORWARDED) process.off(s, forward);
  };
}

/** The session keyring a container joins (runc's name: other runtimes' tools recognise it). */
export function sessionKeyring(id: string): string {
  return `_ses.${id}`;
}

/** The entry under /proc/PID/ns of a `linux.namespaces` type. */
const NS_FILE: Record<NamespaceKind, string> = {
  network: 'net',
  ipc: 'ipc',
  uts: 'uts',
  pid: 'pid_for_children',
  mount: 'mnt',
  cgroup: 'cgroup',
  user: 'user',
  time: 'time_for_children',
};

/** At the first sync: each joined namespace is the one the caller named (CreateOptions.joinedNamespaces). */
function checkJoinedNamespaces(pid: number, expected: Partial<Record<NamespaceKind, string>>): void {
  for (const [kind, want] of Object.entries(expected) as Array<[NamespaceKind, string]>) {
    let got: string;
    try {
      got = readlinkSync(`/proc/${pid}/ns/${NS_FILE[kind]}`);
    } catch (err) {
      // without root the launcher hides its namespaces until exec: what it joined is then
      // the user's own to choose (it cannot enter a namespace it has no capability over)
      if ((err as NodeJS.ErrnoException).code === 'EACCES' && isRootless()) continue;
      throw err;
    }
    if (got !== want)
      throw new BerthError(
        `linux.namespaces: the ${kind} namespace joined is ${got}, not ${want}: the container it belonged to has exited (its pid was reused)`,
        { code: 'ESTALE' },
      );
  }
}

/**
 * The last word on namespaces joined by path, on the live process before it
 * mounts anything: its mount namespace is never the runtime's (it would pivot
 * the host), nor its uts namespace when it sets a hostname or domainname.
 */
function checkNotRuntimeNamespaces(pid: number, spec: Spec): void {
  // synchronous: two readlinks of nsfs cost microseconds, a trip through libuv's pool costs
  // a millisecond on the path every container waits on (the launcher is held at its sync)
  const kinds: Array<[string, string]> = [['mnt', 'mount']];
  if (spec.hostname !== undefined || spec.domainname !== undefined) kinds.push(['uts', 'uts']);
  for (const [proc, kind] of kinds) {
    const mine = readlinkSync(`/proc/self/ns/${proc}`);
    let theirs: string | undefined;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/${proc}`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // without root the launcher (not dumpable until exec) hides its namespaces from us;
      // a namespace the clone made is new by construction, anything else is refused
      const entry = spec.linux?.namespaces?.find((n) => n.type === kind);
      if (e.code === 'EACCES' && isRootless() && entry && !entry.path) continue;
      if (e.code === 'EACCES' && isRootless())
        throw new BerthError(
          `linux.namespaces: berth without root cannot check the container's ${kind} namespace when it is not a new one: refusing to run it`,
          { code: 'EROOTLESS' },
        );
      throw e;
    }
    if (mine === theirs) {
      throw new BerthError(
        `linux.namespaces: the container's ${kind} namespace is berth's own (${mine}): refusing to change the host`,
        { code: 'EINVALIDSPEC' },
      );
    }
  }
}

function writeAtomic(file: string, content: string): void {
  // readers never see a partial pid file
  writeFileAtomic(file, content);
}

let owner: { uid: number; name: string } | undefined;

/**
 * The user name of this process, once per uid: its /etc/passwd entry (as runc built without
 * cgo finds it), else a passwd lookup through NSS (LDAP, sssd…). The lookup, made first, cost a
 * CLI command ~1 ms and ~0.7 MiB (the name service's set-up).
 */
function ownerName(): string {
  const uid = process.getuid?.() ?? -1;
  if (owner?.uid !== uid) owner = { uid, name: passwdName(uid) ?? userInfo().username };
  return owner.name;
}

/** The name /etc/passwd gives `uid`, if any. */
export function passwdName(uid: number, file = '/etc/passwd'): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const id = String(uid);
  for (const line of text.split('\n')) {
    const f = line.split(':');
    // name:password:uid:gid:gecos:home:shell; NIS compat lines (+name, -name) are NSS's to resolve
    if (f.length >= 7 && f[2] === id && f[0] && !/^[+-]/.test(f[0])) return f[0];
  }
  return undefined;
}

/** A container's first state record, written before anything of it is made (status `creating`). */
function newRecord(id: string, bundle: string, spec: Spec, options: CreateOptions): ContainerRecord {
  return {
    ociVersion: OCI_VERSION,
    id,
    status: 'creating',
    pid: 0,
    bundle,
    rootfs: resolve(bundle, spec.root?.path ?? ''),
    created: isoTime(),
    owner: ownerName(),
    ...(spec.annotations ? { annotations: spec.annotations } : {}),
    ...(spec.hooks ? { hooks: spec.hooks } : {}),
    spec,
    ...(options.ownedDirs ? { ownedDirs: options.ownedDirs } : {}),
    ...(options.image ? { image: options.image } : {}),
  };
}

/**
 * cgroup v2's "no internal processes" rule: once a container has given controllers to cgroups
 * of its own (a nested runtime, systemd inside), its own cgroup may take no process, and an
 * exec'd process joins the cgroup of the container's first process instead, as runc does. The
 * directory of that cgroup, where the container's cgroup gives any controller to its children
 * and the first process is in it or below it (never elsewhere); undefined otherwise.
 */
function initCgroupFallback(cgroup: Cgroup | undefined, initPid: number): string | undefined {
  const dir = cgroup?.layout === 'v2' ? cgroup.paths['unified'] : undefined;
  if (cgroup === undefined || dir === undefined) return undefined;
  try {
    if (readFileSync(join(dir, 'cgroup.subtree_control'), 'latin1').trim() === '') return undefined;
    const own = readFileSync(`/proc/${initPid}/cgroup`, 'latin1')
      .split('\n')
      .find((l) => l.startsWith('0::'))
      ?.slice(3);
    const base = cgroup.path === '/' ? '' : cgroup.path;
    if (own === undefined || (own !== base && !own.startsWith(`${base}/`))) return undefined;
    if (own.split('/').some((c) => c === '..' || c === '.')) return undefined;
    return dir + own.slice(base.length);
  } catch {
    return undefined;
  }
}

/**
 * The directories of `exec --cgroup` entries (`PATH`, or `CONTROLLER[,CONTROLLER]:PATH`) below
 * the container's cgroup, one per hierarchy: a path leading out of the cgroup (`..`, absolute)
 * or a sub-cgroup that does not exist is an error.
 */
function subCgroupDirs(cgroup: Cgroup | undefined, entries: readonly string[]): string[] {
  const fail = (message: string) => new BerthError(`exec --cgroup: ${message}`, { code: 'EINVALIDARGS' });
  if (!cgroup) throw fail('the container has no cgroup');
  let all: string | undefined;
  const byController = new Map<string, string>();
  for (const e of entries) {
    const colon = e.indexOf(':');
    const path = colon < 0 ? e : e.slice(colon + 1);
    if (!path || path.startsWith('/') || path.split('/').some((c) => c === '..' || c === '.'))
      throw fail(
        `bad sub cgroup path: ${JSON.stringify(e)}: the path is relative to the container's cgroup, without "." or ".."`,
      );
    if (colon < 0) all = path;
    else for (const c of e.slice(0, colon).split(',')) byController.set(c === '' ? 'unified' : c, path);
  }
  for (const c of byController.keys())
    if (cgroup.paths[c] === undefined) throw fail(`the container's cgroup has no ${c} controller`);
  const dirs: string[] = [];
  for (const [controller, dir] of Object.entries(cgroup.paths)) {
    const sub = byController.get(controller) ?? all;
    if (sub === undefined) continue;
    const target = join(dir, sub);
    if (!existsSync(join(target, 'cgroup.procs')))
      throw fail(`sub cgroup ${sub} does not exist: ${target}: no such file or directory`);
    dirs.push(target);
  }
  return [...new Set(dirs)];
}

/** Sends `signal` to each pid; one that has exited meanwhile (ESRCH) is no error. */
function signalEach(pids: readonly number[], signal: number): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
  }
}
