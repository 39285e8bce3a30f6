import { mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { executeTargets, resolveTargets } from './apply.js';
import { type CgroupHierarchy, DEFAULT_CGROUP_ROOT, discoverHierarchy, V1_CONTROLLERS } from './detect.js';
import { CgroupError, type CgroupProblem, cgroupGone, errnoOf, invalid } from './errors.js';
import {
  descendantCgroups,
  exists,
  parseKeyValues,
  parseUint,
  readCgroupFile,
  readOptional,
  removeCgroupDir,
  sleep,
  writeCgroupFile,
} from './fsutil.js';
import { ownCgroups } from './own.js';
import { isSystemdRunning, type ResolvePathOptions, resolveCgroupsPath } from './path.js';
import { readPidsStats } from './pids.js';
import { hugepageSizeName, type Plan, type Write } from './plan.js';
import { type CgroupStats, emptyStats } from './stats.js';
import { systemdManager } from './systemd/manager.js';
import { setScopeResources, startScope, stopScope, systemdManagerCgroup } from './systemd/scope.js';
import type { CgroupDriver, CgroupLayout, LinuxResources } from './types.js';
import { readBlkioStatsV1 } from './v1/blkio.js';
import { readCpuThrottlingV1 } from './v1/cpu.js';
import { readCpuacctStatsV1 } from './v1/cpuacct.js';
import { initCpusetV1 } from './v1/cpuset.js';
import { freezeV1, isFrozenV1, thawV1 } from './v1/freezer.js';
import { readHugetlbStatsV1 } from './v1/hugetlb.js';
import { readMemoryStatsV1 } from './v1/memory.js';
import { planV1 } from './v1/plan.js';
import { readCpuStatsV2 } from './v2/cpu.js';
import { enableAvailableV2, enableControllersV2 } from './v2/enable.js';
import { freezeV2, isFrozenV2, thawV2 } from './v2/freezer.js';
import { planHugetlbV2, readHugetlbStatsV2 } from './v2/hugetlb.js';
import { readIoStatsV2 } from './v2/io.js';
import { readMemoryStatsV2 } from './v2/memory.js';
import { planV2 } from './v2/plan.js';
import { planUnified } from './v2/unified.js';
import { validateResources } from './validate.js';

export interface CgroupOptions {
  /** `systemd` expects the `slice:prefix:name` form; default `cgroupfs` */
  driver?: CgroupDriver;
  /** with driver `systemd` where systemd is not running, map onto cgroupfs instead of failing */
  fallbackToCgroupfs?: boolean;
  /** cgroup mount root, default /sys/fs/cgroup; pointing it at a cgroup2 mount selects the v2 driver there */
  root?: string;
  /** skip detection (with a non-default `root`, a plain directory tree can stand in for a hierarchy) */
  layout?: CgroupLayout;
  /**
   * `create` with driver `systemd` where systemd runs: the transient scope's first process
   * (systemd makes no scope without one) and the limits it is told of (./systemd/scope.ts)
   */
  scope?: { pid: number; resources?: LinuxResources; description?: string };
}

export interface ApplyOptions {
  /** treat as `berth update`: the same checks, the memory-limit ordering reads the live values */
  update?: boolean;
  /** the caller already ran `validateResources` on exactly these resources: not again */
  validated?: boolean;
}

const UNIFIED = 'unified';

async function isDir(path: string): Promise<boolean> {
  try {
    // a missing directory is the usual answer (is this cgroup there already?): no exception for it
    return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

async function hugepageSizes(): Promise<string[]> {
  try {
    const names = readdirSync('/sys/kernel/mm/hugepages');
    return names
      .map((n) => /^hugepages-(\d+)kB$/.exec(n))
      .flatMap((m) => (m ? [hugepageSizeName(Number(m[1]))] : []));
  } catch {
    return [];
  }
}

/**
 * One container's cgroup on whichever hierarchy the host has: v1 (a directory
 * per controller), v2 (one directory), or hybrid (v1 controllers plus the
 * cgroup2 mount, which is also joined and serves hugetlb/unified when v1 lacks them).
 */
export class Cgroup {
  /** controller name (v1) or `unified` (the cgroup2 directory) to the directory of this cgroup */
  readonly paths: Record<string, string>;
  readonly layout: CgroupLayout;
  /** the path inside each hierarchy, `/`-prefixed */
  readonly path: string;
  private readonly hierarchy: CgroupHierarchy;

  /** The `slice:prefix:name` of a cgroup systemd's manager holds as a unit (the systemd driver, systemd running). */
  readonly systemdUnit: string | undefined;

  private constructor(
    hierarchy: CgroupHierarchy,
    path: string,
    paths: Record<string, string>,
    systemdUnit?: string,
  ) {
    this.hierarchy = hierarchy;
    this.layout = hierarchy.layout;
    this.path = path;
    this.paths = paths;
    this.systemdUnit = systemdUnit;
  }

  private static async locate(
    cgroupsPath: string,
    opts: CgroupOptions,
  ): Promise<{
    hierarchy: CgroupHierarchy;
    path: string;
    paths: Record<string, string>;
    systemdUnit?: string;
  }> {
    const resolveOpts: ResolvePathOptions = {};
    if (opts.driver !== undefined) resolveOpts.driver = opts.driver;
    if (opts.fallbackToCgroupfs !== undefined) resolveOpts.fallbackToCgroupfs = opts.fallbackToCgroupfs;
    let resolved = resolveCgroupsPath(cgroupsPath, resolveOpts);
    // a user manager's units are below its own cgroup (user@UID.service), not the root
    if (resolved.systemd && isSystemdRunning() && systemdManager().kind === 'user')
      resolved = { ...resolved, path: (await systemdManagerCgroup()) + resolved.path };
    const hierarchy = await discoverHierarchy(opts.root ?? DEFAULT_CGROUP_ROOT, opts.layout);
    // relative paths live under our own cgroup (v1), or its parent on v2 where our own has processes (runc)
    const own = resolved.relative ? await ownCgroups() : {};
    // an absolute path (the usual case) is normalised already: appended to the mount as it is
    const under = (mount: string, base: string) =>
      !resolved.relative && !mount.endsWith('/') ? mount + resolved.path : join(mount, base, resolved.path);
    const paths: Record<string, string> = {};
    for (const ctrl of V1_CONTROLLERS) {
      const mount = hierarchy.v1[ctrl];
      if (mount === undefined) continue;
      paths[ctrl] = under(mount, resolved.relative ? (own[ctrl] ?? '/') : '/');
    }
    if (hierarchy.unified !== undefined)
      paths[UNIFIED] = under(hierarchy.unified, resolved.relative ? dirname(own[UNIFIED] ?? '/') : '/');
    // systemd's own unit where its manager runs; the cgroupfs fallback (asked for) where it does not
    const systemdUnit = resolved.systemd && isSystemdRunning() ? cgroupsPath : undefined;
    return { hierarchy, path: resolved.path, paths, ...(systemdUnit ? { systemdUnit } : {}) };
  }

  /**
   * Where `create` makes the cgroup, without making anything: the host's layout and the
   * directory in each hierarchy. A caller can plan with it and create the cgroup later.
   */
  static async where(
    cgroupsPath: string,
    opts: CgroupOptions = {},
  ): Promise<{ layout: CgroupLayout; paths: Record<string, string> }> {
    const { hierarchy, paths } = await Cgroup.locate(cgroupsPath, opts);
    return { layout: hierarchy.layout, paths };
  }

  /**
   * The cgroup a process is in (default: this one), in `where`'s form: the host's layout
   * and its directory in each hierarchy. For a container that gets no cgroup of its own
   * (root in a user namespace that cannot make one): what it is in is its parent's.
   */
  static async ofProcess(
    pid: number | 'self' = 'self',
    opts: Pick<CgroupOptions, 'root' | 'layout'> = {},
  ): Promise<{ layout: CgroupLayout; paths: Record<string, string> }> {
    const hierarchy = await discoverHierarchy(opts.root ?? DEFAULT_CGROUP_ROOT, opts.layout);
    const own = await ownCgroups(pid);
    const paths: Record<string, string> = {};
    for (const ctrl of V1_CONTROLLERS) {
      const mount = hierarchy.v1[ctrl];
      if (mount !== undefined && own[ctrl] !== undefined) paths[ctrl] = join(mount, own[ctrl]);
    }
    if (hierarchy.unified !== undefined && own[UNIFIED] !== undefined)
      paths[UNIFIED] = join(hierarchy.unified, own[UNIFIED]);
    return { layout: hierarchy.layout, paths };
  }

  /** Creates the directories (idempotent: existing ones are joined, not an error). */
  static async create(cgroupsPath: string, opts: CgroupOptions = {}): Promise<Cgroup> {
    const { hierarchy, path, paths, systemdUnit } = await Cgroup.locate(cgroupsPath, opts);
    const created: string[] = [];
    let scopeMade = false;
    if (systemdUnit && !opts.scope) {
      // a unit that exists already (a cgroup shared with what made it) is joined as it is; a new
      // one only systemd makes, with its first process
      for (const dir of Object.values(paths))
        if (!(await isDir(dir)))
          throw new CgroupError({
            code: 'ESYSTEMD',
            op: 'create',
            path: cgroupsPath,
            message: `${cgroupsPath}: systemd makes a scope with its first process: create needs scope.pid`,
          });
    }
    if (systemdUnit && opts.scope) {
      // systemd makes the scope, its directory and the process in it; the rest is as with cgroupfs
      await startScope({
        cgroupsPath,
        pid: opts.scope.pid,
        layout: hierarchy.layout,
        ...(opts.scope.resources ? { resources: opts.scope.resources } : {}),
        ...(opts.scope.description ? { description: opts.scope.description } : {}),
      });
      scopeMade = true;
    }
    try {
      for (const [ctrl, dir] of Object.entries(paths)) {
        let first: string | undefined;
        try {
          first = mkdirSync(dir, { recursive: true });
        } catch (err) {
          throw new CgroupError({
            code: 'EIO',
            op: 'mkdir',
            path: dir,
            errno: errnoOf(err),
            message: `create cgroup ${dir}: ${errnoOf(err) ?? String(err)}`,
            cause: err,
          });
        }
        if (first !== undefined) created.push(first);
        if (ctrl === 'cpuset') {
          await initCpusetV1(hierarchy.v1['cpuset'] as string, dir);
          // The directories above it that this call made (berth's own parent, say): the kernel
          // then gives their later children cpus and mems itself, and initCpusetV1 only reads.
          if (first !== undefined && first !== dir)
            for (let d = dirname(dir); d.startsWith(first); d = dirname(d))
              await writeCgroupFile(d, 'cgroup.clone_children', '1');
        }
      }
      // a cgroup2-only host: every controller the levels above offer, as runc and crun give it
      const unified = paths[UNIFIED];
      if (hierarchy.layout === 'v2' && hierarchy.unified !== undefined && unified !== undefined)
        await enableAvailableV2(hierarchy.unified, unified);
    } catch (err) {
      if (scopeMade) await stopScope(cgroupsPath).catch(() => undefined);
      // undo only what this call created, deepest first
      for (const top of created.reverse()) {
        for (const dir of Object.values(paths).filter((d) => d === top || d.startsWith(`${top}/`))) {
          for (let d = dir; d.startsWith(top); d = dirname(d))
            await removeCgroupDir(d, 1000).catch(() => undefined);
        }
      }
      throw err;
    }
    return new Cgroup(hierarchy, path, paths, systemdUnit);
  }

  /** Joins an existing cgroup; fails with ENOTFOUND when none of its directories exist. */
  static async load(cgroupsPath: string, opts: CgroupOptions = {}): Promise<Cgroup> {
    const found = await Cgroup.find(cgroupsPath, opts);
    if (found) return found;
    throw new CgroupError({
      code: 'ENOTFOUND',
      op: 'load',
      path: cgroupsPath,
      message: `cgroup ${JSON.stringify(cgroupsPath)} does not exist`,
    });
  }

  /**
   * As `load`, but a cgroup that exists in no hierarchy is `undefined`, not an error: the
   * question "is it there already?" that a runtime asks before every create, answered
   * without building an exception.
   */
  static async find(cgroupsPath: string, opts: CgroupOptions = {}): Promise<Cgroup | undefined> {
    const { hierarchy, path, paths, systemdUnit } = await Cgroup.locate(cgroupsPath, opts);
    const present: Record<string, string> = {};
    let any = false;
    for (const [ctrl, dir] of Object.entries(paths))
      if (await isDir(dir)) {
        present[ctrl] = dir;
        any = true;
      }
    return any ? new Cgroup(hierarchy, path, present, systemdUnit) : undefined;
  }

  private get isV2(): boolean {
    return this.layout === 'v2';
  }

  /** On hybrid hosts, controllers v1 lacks (hugetlb here) are served from the cgroup2 side. */
  private usesUnifiedFor(ctrl: string): boolean {
    if (this.isV2) return true;
    return this.layout === 'hybrid' && this.paths[ctrl] === undefined && this.paths[UNIFIED] !== undefined;
  }

  private async plan(r: LinuxResources): Promise<{ v1: Plan; v2: Plan }> {
    if (this.isV2) return { v1: { writes: [], problems: [] }, v2: planV2(r) };
    const memDir = this.paths['memory'];
    const currentMemoryLimit =
      memDir && r.memory?.limit !== undefined && r.memory.swap !== undefined
        ? parseUint(await readOptional(memDir, 'memory.limit_in_bytes'))
        : undefined;
    const hugetlbOnV2 = this.usesUnifiedFor('hugetlb');
    const v1 = planV1(r, currentMemoryLimit === undefined ? {} : { currentMemoryLimit }, {
      hugetlb: !hugetlbOnV2,
    });
    const v2: Plan = { writes: [], problems: [] };
    if (hugetlbOnV2) v2.writes.push(...planHugetlbV2(r.hugepageLimits).writes);
    if (r.unified && Object.keys(r.unified).length > 0) {
      if (this.paths[UNIFIED] === undefined) {
        v1.problems.push({
          path: 'linux.resources.unified',
          message: 'requires cgroup v2 (this host is cgroup v1)',
        });
      } else {
        v2.writes.push(...planUnified(r.unified).writes);
      }
    }
    return { v1, v2 };
  }

  /**
   * Applies `linux.resources`. Everything that can be checked is checked
   * before the first write (types and ranges, controllers present, files
   * present); a write the kernel still rejects is rolled back.
   */
  async apply(resources: LinuxResources, opts: ApplyOptions = {}): Promise<void> {
    const op = 'apply';
    const problems = opts.validated ? [] : validateResources(resources);
    if (problems.length > 0) throw invalid(op, problems);
    const { v1, v2 } = await this.plan(resources);
    const hostProblems: CgroupProblem[] = [...v1.problems, ...v2.problems];
    // an update of a systemd scope: its unit's properties too, or systemd would put the old
    // values back at its next reload (at create they went with the scope)
    if (opts.update && this.systemdUnit && hostProblems.length === 0)
      await setScopeResources(this.systemdUnit, resources);
    const bound: { write: Write; dir: string }[] = [];
    for (const write of v1.writes) {
      const dir = this.paths[write.controller];
      if (dir === undefined) {
        hostProblems.push({
          path: write.field,
          message: `controller ${write.controller} is not available on this host`,
        });
      } else {
        bound.push({ write, dir });
      }
    }
    const unifiedDir = this.paths[UNIFIED];
    const devices = resources.devices ?? [];
    const bpfDevices = this.isV2 && devices.length > 0;
    if (v2.writes.length > 0 && unifiedDir !== undefined && this.hierarchy.unified !== undefined) {
      const wanted = new Map<string, string>();
      for (const w of v2.writes) if (!wanted.has(w.controller)) wanted.set(w.controller, w.field);
      if (hostProblems.length === 0) {
        hostProblems.push(...(await enableControllersV2(this.hierarchy.unified, unifiedDir, wanted)));
      }
      for (const write of v2.writes) bound.push({ write, dir: unifiedDir });
    }
    if (hostProblems.length > 0) throw invalid(op, hostProblems);
    const { targets, problems: fileProblems } = await resolveTargets(bound);
    if (fileProblems.length > 0) throw invalid(op, fileProblems);
    await this.checkBeforeUpdate(resources);
    await executeTargets(targets, op);
    if (bpfDevices && unifiedDir !== undefined) {
      const { applyDevicesV2 } = await import('./v2/devices.js');
      applyDevicesV2(unifiedDir, devices);
    }
  }

  private async checkBeforeUpdate(r: LinuxResources): Promise<void> {
    const limit = r.memory?.limit;
    if (!r.memory?.checkBeforeUpdate || limit === undefined || limit <= 0) return;
    const dir = this.isV2 ? this.paths[UNIFIED] : this.paths['memory'];
    if (dir === undefined) return;
    const usage = parseUint(await readOptional(dir, this.isV2 ? 'memory.current' : 'memory.usage_in_bytes'));
    if (limit <= usage) {
      throw invalid('apply', [
        {
          path: 'linux.resources.memory.limit',
          message: `rejecting memory limit ${limit} <= usage ${usage} (checkBeforeUpdate)`,
        },
      ]);
    }
  }

  /** Moves a process (and so its future children) into every hierarchy of this cgroup. */
  async addProcess(pid: number, opts: { offThread?: boolean } = {}): Promise<void> {
    if (!Number.isInteger(pid) || pid <= 0) {
      throw new CgroupError({
        code: 'EINVALID',
        op: 'add process',
        message: `pid must be a positive integer, got ${pid}`,
      });
    }
    // The first write waits for an RCU grace period (the kernel takes the threadgroup rwsem for
    // writing). With `offThread` it is made on libuv's thread pool, so that a long-lived
    // program's event loop goes on meanwhile (a one-shot CLI has nothing else to do, and need
    // not start the pool). The writes that follow at once find the rwsem's fast path already
    // off, and take microseconds.
    let first = opts.offThread === true;
    for (const dir of new Set(Object.values(this.paths))) {
      await writeCgroupFile(dir, 'cgroup.procs', String(pid), first);
      first = false;
    }
  }

  /**
   * Removes every directory of an empty cgroup, the usual case once its processes have
   * exited, without reading who is in it first: true when it is gone. False, having
   * removed what it could, when the kernel says a directory is busy (processes or child
   * cgroups remain): then empty it (killAll) and `delete`.
   */
  async deleteIfEmpty(): Promise<boolean> {
    if (this.systemdUnit) {
      // an empty scope: systemd has stopped it or stops it now; one with processes is left as it is
      if ((await this.pids()).length > 0) return false;
      await stopScope(this.systemdUnit);
    }
    for (const dir of new Set(Object.values(this.paths))) {
      try {
        rmdirSync(dir);
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === 'ENOENT') continue;
        if (errno === 'EBUSY') return false;
        throw new CgroupError({
          code: 'EIO',
          op: 'rmdir',
          path: dir,
          errno,
          message: `remove cgroup ${dir}: ${errno ?? String(err)}`,
          cause: err,
        });
      }
    }
    return true;
  }

  /** Process ids in this cgroup and the cgroups below it, across all its hierarchies. */
  async pids(): Promise<number[]> {
    const all = new Set<number>();
    for (const top of new Set(Object.values(this.paths))) {
      for (const dir of [top, ...descendantCgroups(top)]) {
        const text = await readOptional(dir, 'cgroup.procs');
        for (const line of (text ?? '').split('\n')) if (line.trim() !== '') all.add(Number(line));
      }
    }
    return [...all].sort((a, b) => a - b);
  }

  private freezerDir(): { dir: string; v2: boolean } {
    const v1 = this.paths['freezer'];
    if (!this.isV2 && v1 !== undefined) return { dir: v1, v2: false };
    const u = this.paths[UNIFIED];
    if (u !== undefined) return { dir: u, v2: true };
    throw new CgroupError({ code: 'ENOCONTROLLER', op: 'freeze', message: 'no freezer on this host' });
  }

  /**
   * Moves `pid` out of this cgroup into the calling process's own cgroup2 (the launcher that
   * a systemd scope was made with, once the container's process is in it): false where the
   * kernel refuses (no cgroup2, or a cgroup of ours that takes no process).
   */
  async releaseProcess(pid: number): Promise<boolean> {
    const unified = this.hierarchy.unified;
    if (unified === undefined) return false;
    const own = (await ownCgroups())[UNIFIED];
    if (own === undefined) return false;
    try {
      await writeCgroupFile(join(unified, own), 'cgroup.procs', String(pid));
      return true;
    } catch {
      return false;
    }
  }

  /** Resolves once every task is frozen, not merely asked to freeze. */
  async freeze(): Promise<void> {
    const { dir, v2 } = this.freezerDir();
    await (v2 ? freezeV2(dir) : freezeV1(dir));
  }

  async thaw(): Promise<void> {
    const { dir, v2 } = this.freezerDir();
    await (v2 ? thawV2(dir) : thawV1(dir));
  }

  async isFrozen(): Promise<boolean> {
    const { dir, v2 } = this.freezerDir();
    return v2 ? isFrozenV2(dir) : isFrozenV1(dir);
  }

  /**
   * Signals every process. SIGKILL on v2 uses cgroup.kill (atomic, fork-safe);
   * otherwise the cgroup is frozen so nothing can fork between listing and
   * signalling. With SIGKILL it waits until the cgroup is empty.
   */
  async killAll(signal: NodeJS.Signals | number = 'SIGKILL', timeoutMs = 10_000): Promise<void> {
    const isKill = signal === 'SIGKILL' || signal === 9;
    const unified = this.paths[UNIFIED];
    try {
      // cgroup.kill is write-only (reading it is EINVAL): whether the kernel has it (5.14+) is
      // whether the file is there
      if (isKill && this.isV2 && unified !== undefined && (await exists(join(unified, 'cgroup.kill')))) {
        // a cgroup delegated without its cgroup.kill (not among the files systemd hands over)
        // refuses it: the signals then go one by one
        await writeCgroupFile(unified, 'cgroup.kill', '1').catch(async (err: unknown) => {
          if (cgroupGone(err)) throw err;
          await this.signalFrozen(signal);
        });
      } else await this.signalFrozen(signal);
    } catch (err) {
      // emptied and removed meanwhile (systemd removes a scope once its last process is gone)
      if (!cgroupGone(err)) throw err;
    }
    if (!isKill) return;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = await this.pids();
      if (left.length === 0) return;
      if (Date.now() > deadline) {
        throw new CgroupError({
          code: 'ETIMEDOUT',
          op: 'kill',
          path: this.path,
          message: `kill cgroup ${this.path}: ${left.length} processes remain after ${timeoutMs} ms (${left.slice(0, 5).join(', ')})`,
        });
      }
      // a process forked between listing and freezing (no freezer) gets the next round
      for (const pid of left) this.signal(pid, signal);
      await sleep(10);
    }
  }

  private signal(pid: number, signal: NodeJS.Signals | number): void {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if (errnoOf(err) !== 'ESRCH') throw err;
    }
  }

  private async signalFrozen(signal: NodeJS.Signals | number): Promise<void> {
    let frozen = false;
    try {
      await this.freeze();
      frozen = true;
    } catch (err) {
      if (!(err instanceof CgroupError && err.code === 'ENOCONTROLLER')) throw err;
    }
    try {
      for (const pid of await this.pids()) this.signal(pid, signal);
    } finally {
      // the signal may have emptied the cgroup, and its owner (systemd) removed it: nothing to thaw
      if (frozen)
        await this.thaw().catch((err: unknown) => {
          if (!cgroupGone(err)) throw err;
        });
    }
  }

  /** Removes every directory, retrying while the kernel still reports EBUSY. */
  async delete(): Promise<void> {
    const dirs = [...new Set(Object.values(this.paths))];
    const errors: CgroupError[] = [];
    if (this.systemdUnit)
      await stopScope(this.systemdUnit).catch((err: unknown) => {
        if (err instanceof CgroupError) errors.push(err);
        else throw err;
      });
    for (const dir of dirs) {
      try {
        await removeCgroupDir(dir);
      } catch (err) {
        if (err instanceof CgroupError) errors.push(err);
        else throw err;
      }
    }
    if (errors.length > 0) {
      const first = errors[0] as CgroupError;
      throw new CgroupError({
        code: first.code,
        op: 'delete',
        path: first.path,
        errno: first.errno,
        message: errors.map((e) => e.message).join('; '),
      });
    }
  }

  async stats(): Promise<CgroupStats> {
    const out = emptyStats();
    const sizes = await hugepageSizes();
    const u = this.paths[UNIFIED];
    if (this.isV2) {
      if (u === undefined) return out;
      await Promise.all([
        readMemoryStatsV2(u, out),
        readCpuStatsV2(u, out),
        readPidsStats(u, out),
        readIoStatsV2(u, out),
        readHugetlbStatsV2(u, sizes, out),
      ]);
      return out;
    }
    const p = this.paths;
    await Promise.all([
      p['memory'] ? readMemoryStatsV1(p['memory'], out) : undefined,
      p['cpuacct'] ? readCpuacctStatsV1(p['cpuacct'], out) : undefined,
      p['pids'] ? readPidsStats(p['pids'], out) : undefined,
      p['blkio'] ? readBlkioStatsV1(p['blkio'], out) : undefined,
    ]);
    if (p['cpu']) await readCpuThrottlingV1(p['cpu'], out);
    if (p['hugetlb']) await readHugetlbStatsV1(p['hugetlb'], sizes, out);
    else if (u !== undefined && this.usesUnifiedFor('hugetlb')) await readHugetlbStatsV2(u, sizes, out);
    return out;
  }

  /**
   * How many times the kernel's OOM killer has killed a process of this cgroup: cgroup2's
   * memory.events `oom_kill`, v1's memory.oom_control `oom_kill` (Linux 4.13 and later); 0
   * where there is no memory controller. Two small reads at most: for watchers that poll it
   * (`berth events` reports each increase as an `oom` event, as runc does).
   */
  async oomKills(): Promise<number> {
    const v2 = this.isV2 || this.paths['memory'] === undefined;
    const dir = v2 ? this.paths[UNIFIED] : this.paths['memory'];
    if (dir === undefined) return 0;
    const text = await readOptional(dir, v2 ? 'memory.events' : 'memory.oom_control');
    return parseKeyValues(text)['oom_kill'] ?? 0;
  }

  /** Current value of a raw cgroup file, for diagnostics (`controller` is a v1 name or `unified`). */
  async read(controller: string, file: string): Promise<string> {
    const dir = this.paths[controller];
    if (dir === undefined) {
      throw new CgroupError({
        code: 'ENOCONTROLLER',
        op: 'read',
        message: `controller ${controller} is not part of this cgroup`,
      });
    }
    return readCgroupFile(dir, file);
  }
}
