import {
  closeSync,
  constants,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import type { Cgroup } from '@berth/cgroups';
import { type Process, parseSpec, type Spec } from '@berth/spec';
import { BerthError, type Launch, launch } from '@berth/sys';
import { createCgroup, defaultCgroupsPath, loadCgroup } from './cgroup.js';
import { planExec } from './exec.js';
import { type HookState, runHooks } from './hooks.js';
import { ContainerLock, withLock } from './lock.js';
import { processesInPidNamespace } from './pidns.js';
import { planContainer } from './plan.js';
import { isAlive, procStat, waitGone } from './proc.js';
import { type ContainerRecord, StateStore, type Status, validateId } from './state.js';

export const DEFAULT_ROOT = '/run/berth';
const OCI_VERSION = '1.2.0';

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
  /** Where container state lives (runc's --root); default /run/berth. */
  root?: string;
  /** Receives warnings (e.g. a capability the host cannot grant). Default: stderr. */
  warn?: (message: string) => void;
  /** cgroupsPath is systemd's `slice:prefix:name` (runc --systemd-cgroup). */
  systemdCgroup?: boolean;
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
}

export interface ExecOptions {
  /** Return once the process has started instead of waiting for it (runc exec --detach). */
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  preserveFds?: number;
  stdio?: [Stdio, Stdio, Stdio];
  /** Forward this process's signals to the exec'd process while it runs. */
  forwardSignals?: boolean;
}

export interface RunOptions extends CreateOptions {
  /** Start and return instead of waiting for the container to exit (runc run --detach). */
  detach?: boolean;
  /** Forward this process's SIGINT, SIGTERM, SIGHUP, … to the container while it runs. */
  forwardSignals?: boolean;
  /** Keep the container's state after it exits (default: removed, as runc run does). */
  keep?: boolean;
}

/**
 * The OCI lifecycle: create, start, state, kill, delete, and run (all three).
 * Every command on a container holds that container's lock.
 */
export class Runtime {
  readonly root: string;
  readonly store: StateStore;
  private readonly warn: (message: string) => void;
  private readonly systemd: boolean;

  constructor(options: RuntimeOptions = {}) {
    this.root = resolve(options.root ?? DEFAULT_ROOT);
    this.store = new StateStore(this.root);
    this.systemd = options.systemdCgroup === true;
    this.warn = options.warn ?? ((m) => process.stderr.write(`berth: warning: ${m}\n`));
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
    const spec = parseSpec(text, file);
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
    validateId(id);
    const loaded = this.loadBundle(bundle);
    const lock = await ContainerLock.acquire(this.root, id);
    try {
      const { record } = await this.launchContainer(id, loaded.bundle, loaded.spec, options, false);
      return this.toState(record);
    } finally {
      lock.release();
    }
  }

  private async launchContainer(
    id: string,
    bundle: string,
    spec: Spec,
    options: CreateOptions,
    foreground: boolean,
  ): Promise<{ record: ContainerRecord; launched: Launch }> {
    const dir = this.store.claim(id);
    let launched: Launch | undefined;
    let cgroup: Cgroup | undefined;
    let pid = 0;
    try {
      const cgroupsPath = spec.linux?.cgroupsPath ?? defaultCgroupsPath(id, this.systemd);
      // Written before anything is made: if this process dies mid-create,
      // `delete` still finds the cgroup and the directories to remove.
      const record: ContainerRecord = {
        ociVersion: OCI_VERSION,
        id,
        status: 'creating',
        pid: 0,
        bundle,
        rootfs: resolve(bundle, spec.root?.path ?? ''),
        created: new Date().toISOString(),
        owner: userInfo().username,
        ...(spec.annotations ? { annotations: spec.annotations } : {}),
        ...(spec.hooks ? { hooks: spec.hooks } : {}),
        ...(options.ownedDirs ? { ownedDirs: options.ownedDirs } : {}),
        ...(options.image ? { image: options.image } : {}),
        cgroupsPath,
        ...(this.systemd ? { systemdCgroup: true } : {}),
      };
      this.store.write(record);
      cgroup = await createCgroup(spec, cgroupsPath, this.systemd);
      const fifo = foreground ? undefined : join(dir, 'exec.fifo');
      const plan = planContainer(spec, {
        cgroupLayout: cgroup.layout,
        cgroupPaths: cgroup.paths,
        bundle,
        foreground,
        ...(fifo ? { fifo } : {}),
        ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}),
        ...(options.preserveFds ? { preserveFds: options.preserveFds } : {}),
        ...(options.overlay ? { overlay: options.overlay } : {}),
      });
      for (const w of plan.warnings) this.warn(w);
      const preserved = Array.from({ length: options.preserveFds ?? 0 }, (_, i) => 3 + i);
      launched = launch(plan.steps, {
        ...(options.stdio ? { stdio: options.stdio } : {}),
        preserveFds: preserved,
      });
      pid = (await launched.expect('pid')).pid;
      record.pid = pid;
      const stat = procStat(pid);
      if (stat) record.pidStartTime = stat.startTime;
      this.store.write(record);
      await launched.expect('sync'); // namespaces exist: the place for cgroups, network, uid maps
      // Joining a cgroup costs the kernel an RCU grace period (~10 ms here): let the
      // container do its mounts meanwhile; it still waits before exec for us.
      const joined = cgroup.addProcess(pid);
      if (spec.hooks?.prestart?.length || spec.hooks?.createRuntime?.length) {
        await joined;
        const hookState = this.hookState(record);
        await runHooks('prestart', spec.hooks?.prestart, hookState);
        await runHooks('createRuntime', spec.hooks?.createRuntime, hookState);
        launched.release();
      } else {
        launched.release();
        try {
          await joined;
        } catch (e) {
          // ESRCH: the container failed a step and exited first; its own report says why
          await launched.expect(foreground ? 'sync' : 'ready');
          throw e;
        }
      }
      if (foreground) {
        await launched.expect('sync');
        record.status = 'running';
      } else {
        await launched.expect('ready');
        record.status = 'created';
      }
      this.store.write(record);
      if (options.pidFile) writeAtomic(resolve(options.pidFile), String(pid));
      if (!foreground) launched.detach();
      return { record, launched };
    } catch (e) {
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
        await waitGone(pid, undefined, 5000);
      }
      launched?.process.kill('SIGKILL');
      launched?.detach();
      if (cgroup) {
        await cgroup.killAll('SIGKILL').catch(() => {});
        await cgroup.delete().catch((err: Error) => this.warn(`cleanup: ${err.message}`));
      }
      this.store.remove(id);
      for (const d of options.ownedDirs ?? []) rmSync(d, { recursive: true, force: true });
      throw e;
    }
  }

  /** Starts a created container: its process execs the user's program. */
  async start(id: string): Promise<void> {
    const record = await withLock(this.root, id, async () => {
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
      await this.openFifo(record);
      record.status = 'running';
      this.store.write(record);
      return record;
    });
    try {
      await runHooks('poststart', record.hooks?.poststart, this.hookState(record));
    } catch (e) {
      this.warn((e as Error).message);
    }
  }

  private async openFifo(record: ContainerRecord): Promise<void> {
    const fifo = this.store.fifo(record.id);
    // Non-blocking: a blocking open would hang forever if the container died meanwhile.
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const buf = Buffer.alloc(1);
      let delay = 0.5;
      for (;;) {
        let n = 0;
        try {
          n = readSync(fd, buf, 0, 1, null);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
        }
        if (n === 1) break;
        if (!isAlive(record.pid, record.pidStartTime)) {
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
    return this.toState(this.store.read(id));
  }

  /** Every container under the root, with its live status. */
  async list(): Promise<Array<ContainerState & { image?: string }>> {
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
    await withLock(this.root, id, async () => {
      const record = this.store.read(id);
      const status = this.liveStatus(record);
      if (status === 'stopped')
        throw new BerthError(`container ${id} is not running`, { code: 'ESTATE', path: id });
      const pids = options.all ? await this.processes(record) : [record.pid];
      for (const pid of pids) {
        try {
          process.kill(pid, signal);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
        }
      }
    });
  }

  /** Deletes a container: its state, its snapshot; `force` kills it first if it runs. */
  async delete(id: string, options: { force?: boolean } = {}): Promise<void> {
    validateId(id);
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
      if (status === 'running' || status === 'paused') {
        if (!options.force) {
          throw new BerthError(`cannot delete container ${id} that is not stopped: ${status}`, {
            code: 'ESTATE',
            path: id,
          });
        }
      }
      const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true);
      // an empty cgroup (the usual case: the container exited) needs no freeze-and-kill round
      if (cgroup && (await cgroup.pids()).length > 0) {
        if (await cgroup.isFrozen()) await cgroup.thaw();
        await cgroup.killAll('SIGKILL');
      }
      if (status !== 'stopped') {
        for (const pid of await processesInPidNamespace(record.pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
        if (!(await waitGone(record.pid, record.pidStartTime, 10_000))) {
          throw new BerthError(`container ${id}: process ${record.pid} did not exit after SIGKILL`, {
            code: 'EBUSY',
            path: id,
          });
        }
      }
      await cgroup?.delete();
      for (const d of record.ownedDirs ?? []) rmSync(d, { recursive: true, force: true });
      this.store.remove(id);
      try {
        await runHooks('poststop', record.hooks?.poststop, { ...this.hookState(record), status: 'stopped' });
      } catch (e) {
        this.warn((e as Error).message);
      }
    });
  }

  /**
   * The container's process as config.json describes it: the base that
   * `exec` options override (env, user, capabilities, cwd), as runc does.
   */
  configProcess(id: string): Process {
    const record = this.store.read(id);
    return structuredClone(this.loadBundle(record.bundle).spec.process ?? { cwd: '/' });
  }

  /**
   * Runs another process in a running container, in all its namespaces and its
   * cgroup. Returns the process's exit status (128+N for signal N), or 0 at once
   * with `detach`.
   */
  async exec(id: string, proc: Process, options: ExecOptions = {}): Promise<number> {
    const record = await withLock(this.root, id, async () => this.store.read(id));
    const status = this.liveStatus(record);
    if (status !== 'running') {
      throw new BerthError(`cannot exec in container ${id}: it is ${status}`, { code: 'ESTATE', path: id });
    }
    const foreground = !options.detach;
    const { steps, warnings } = await planExec(proc, {
      pid: record.pid,
      foreground,
      ...(options.consoleSocket ? { consoleSocket: resolve(options.consoleSocket) } : {}),
      ...(options.preserveFds ? { preserveFds: options.preserveFds } : {}),
    });
    for (const w of warnings) this.warn(w);
    const preserved = Array.from({ length: options.preserveFds ?? 0 }, (_, i) => 3 + i);
    const launched = launch(steps, {
      ...(options.stdio ? { stdio: options.stdio } : {}),
      preserveFds: preserved,
    });
    let pid = 0;
    try {
      pid = (await launched.expect('pid')).pid;
      await launched.expect('sync');
      const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true);
      await cgroup?.addProcess(pid);
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
  private async processes(record: ContainerRecord): Promise<number[]> {
    const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true);
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
    const cgroup = await loadCgroup(record.cgroupsPath, record.systemdCgroup === true);
    if (!cgroup) throw new BerthError(`container ${id} has no cgroup`, { code: 'ENOTFOUND', path: id });
    return cgroup;
  }

  /** Suspends every process of a running container (cgroup freezer); waits until frozen. */
  async pause(id: string): Promise<void> {
    await withLock(this.root, id, async () => {
      const record = this.store.read(id);
      const status = this.liveStatus(record);
      if (status !== 'running')
        throw new BerthError(`cannot pause container ${id}: it is ${status}`, { code: 'ESTATE', path: id });
      await (await this.requireCgroup(id, record)).freeze();
      record.status = 'paused';
      this.store.write(record);
    });
  }

  /** Resumes a paused container. */
  async resume(id: string): Promise<void> {
    await withLock(this.root, id, async () => {
      const record = this.store.read(id);
      const status = this.liveStatus(record);
      if (status !== 'paused')
        throw new BerthError(`cannot resume container ${id}: it is ${status}`, { code: 'ESTATE', path: id });
      await (await this.requireCgroup(id, record)).thaw();
      record.status = 'running';
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
      const problems = validateResources(resources);
      if (problems.length) {
        throw new BerthError(problems.map((p) => `${p.path}: ${p.message}`).join('\n'), { code: 'EINVALID' });
      }
      await (await this.requireCgroup(id, record)).apply(resources, { update: true });
    });
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
    validateId(id);
    const loaded = this.loadBundle(bundle);
    if (options.detach) {
      await this.create(id, bundle, options);
      await this.start(id);
      return 0;
    }
    const lock = await ContainerLock.acquire(this.root, id);
    let launched: Launch;
    let record: ContainerRecord;
    try {
      ({ launched, record } = await this.launchContainer(id, loaded.bundle, loaded.spec, options, true));
    } finally {
      lock.release();
    }
    const stopForwarding = options.forwardSignals ? forwardSignals(launched) : undefined;
    try {
      launched.release();
      await launched.expect('eof'); // the exec happened (a failed exec throws here)
      await runHooks('poststart', record.hooks?.poststart, this.hookState(record)).catch((e: Error) =>
        this.warn(e.message),
      );
      return await launched.exited;
    } finally {
      stopForwarding?.();
      await launched.exited.catch(() => 0);
      if (!options.keep) await this.delete(id, { force: true });
    }
  }
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

function writeAtomic(file: string, content: string): void {
  // rename over the target so readers never see a partial pid file
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content);
  renameSync(tmp, file);
}
