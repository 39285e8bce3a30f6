/**
 * The systemd cgroup driver: a container's cgroup is a transient scope unit that
 * systemd's manager makes over D-Bus (StartTransientUnit), as runc and crun do with
 * `--systemd-cgroup`. systemd then knows the cgroup is taken: it does not move, reset or
 * remove it behind the runtime's back, and its own values for the scope (MemoryMax,
 * CPUWeight, TasksMax, …) are the container's limits, so a `systemctl daemon-reload`
 * keeps them. The scope is delegated (`Delegate=yes`): below it the cgroup is the
 * runtime's, which writes every limit itself as with the cgroupfs driver.
 *
 * cgroup v2 only: on a v1 or hybrid host systemd would own the v1 device controller of
 * the scope and reset its rules to "allow all" at the next reload, so there the driver is
 * refused with a clear error rather than half-done.
 */
import type { LinuxResources } from '@berth/spec';
import { inUserNamespace } from '@berth/sys';
import { cpuSharesToWeight, memorySwapToV2 } from '../convert.js';
import { CgroupError } from '../errors.js';
import { resolveCgroupsPath } from '../path.js';
import type { CgroupLayout } from '../types.js';
import {
  connectDBus,
  type DBusConnection,
  DBusError,
  type DBusValue,
  type Variant,
  variant,
} from './dbus.js';
import { systemdManager } from './manager.js';

const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const DESTINATION = 'org.freedesktop.systemd1';
const INFINITY = 0xffff_ffff_ffff_ffffn;

/** systemd's private socket: the system manager's for root, a user manager's otherwise (manager.ts). */
export function systemdSocket(): string {
  return systemdManager().socket;
}

let managerCgroup: Promise<string> | undefined;

/**
 * The cgroup the manager's own tree starts at, which its units' paths are relative to:
 * the root for the system manager, `/user.slice/user-UID.slice/user@UID.service` (or
 * wherever it runs) for a user's, as its ControlGroup property says. Asked once.
 */
export function systemdManagerCgroup(): Promise<string> {
  const m = systemdManager();
  if (m.kind === 'system') return Promise.resolve('');
  managerCgroup ??= (async () => {
    const conn = await connect('resolve', 'ControlGroup');
    try {
      const [v] = (await conn.call(
        MANAGER_PATH,
        'org.freedesktop.DBus.Properties',
        'Get',
        'ss',
        [MANAGER, 'ControlGroup'],
        DESTINATION,
      )) as [Variant];
      const cg = String(v.value);
      return cg === '/' ? '' : cg;
    } finally {
      conn.close();
    }
  })();
  return managerCgroup;
}

function systemdError(op: string, path: string, message: string, cause?: unknown): CgroupError {
  return new CgroupError({ code: 'ESYSTEMD', op, path, message, ...(cause ? { cause } : {}) });
}

/** `0-3,8` -> systemd's CPU (or NUMA node) bitmask: byte 0 holds 0–7, bit 0 the lowest. */
export function cpuMask(list: string): Buffer {
  const bits: number[] = [];
  for (const part of list.split(',')) {
    const p = part.trim();
    if (p === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(p);
    if (!m) throw new Error(`${JSON.stringify(list)} is not a CPU list like "0-3,8"`);
    const from = Number(m[1]);
    const to = m[2] !== undefined ? Number(m[2]) : from;
    if (to < from || to > 8191) throw new Error(`${JSON.stringify(list)}: bad range ${p}`);
    for (let i = from; i <= to; i++) bits.push(i);
  }
  const mask = Buffer.alloc(bits.length ? Math.floor(Math.max(...bits) / 8) + 1 : 0);
  for (const b of bits) mask[b >> 3]! |= 1 << (b & 7);
  return mask;
}

/**
 * The unit properties that carry `resources` (cgroup v2 names), as runc's systemd driver
 * sets them: what systemd writes to the scope's own files then matches what the runtime
 * writes. What has no systemd property (swap as memory+swap, the unified map, devices, io
 * throttling, hugetlb, rdma) is written by the runtime alone.
 */
export function scopeResourceProperties(resources: LinuxResources | undefined): Array<[string, Variant]> {
  const props: Array<[string, Variant]> = [];
  if (!resources) return props;
  const mem = resources.memory;
  if (mem?.limit !== undefined && mem.limit !== 0)
    props.push(['MemoryMax', variant('t', mem.limit < 0 ? INFINITY : BigInt(mem.limit))]);
  if (mem?.reservation !== undefined && mem.reservation > 0)
    props.push(['MemoryLow', variant('t', BigInt(mem.reservation))]);
  if (mem?.swap !== undefined && mem.swap !== 0) {
    const swap = memorySwapToV2(mem.swap, mem.limit);
    if (typeof swap === 'number' && swap !== 0)
      props.push(['MemorySwapMax', variant('t', swap < 0 ? INFINITY : BigInt(swap))]);
  }
  const cpu = resources.cpu;
  if (cpu?.shares !== undefined && cpu.shares !== 0)
    props.push(['CPUWeight', variant('t', BigInt(cpuSharesToWeight(cpu.shares)))]);
  const quota = cpu?.quota ?? 0;
  const period = cpu?.period ?? 0;
  if (quota !== 0 || period !== 0) {
    // systemd takes a quota per second, in steps of 10 ms: rounded up, as runc does
    let perSec = INFINITY;
    if (quota > 0) {
      const p = BigInt(period || 100_000);
      let us = (BigInt(quota) * 1_000_000n) / p;
      if (us % 10_000n !== 0n) us = (us / 10_000n + 1n) * 10_000n;
      perSec = us;
    }
    props.push(['CPUQuotaPerSecUSec', variant('t', perSec)]);
    if (period !== 0) props.push(['CPUQuotaPeriodUSec', variant('t', BigInt(period))]);
  }
  if (cpu?.cpus) props.push(['AllowedCPUs', variant('ay', cpuMask(cpu.cpus) as unknown as DBusValue)]);
  if (cpu?.mems) props.push(['AllowedMemoryNodes', variant('ay', cpuMask(cpu.mems) as unknown as DBusValue)]);
  const pids = resources.pids?.limit;
  if (pids !== undefined && pids !== null)
    props.push(['TasksMax', variant('t', pids > 0 ? BigInt(pids) : INFINITY)]);
  return props;
}

/** The scope's unit name and slice for a `slice:prefix:name` cgroupsPath. */
export function scopeOf(cgroupsPath: string): { unit: string; slice: string; path: string } {
  const r = resolveCgroupsPath(cgroupsPath, {
    driver: 'systemd',
    fallbackToCgroupfs: true,
    systemdRunning: true,
  });
  if (!r.systemd)
    throw systemdError('resolve', cgroupsPath, `${JSON.stringify(cgroupsPath)} is not slice:prefix:name`);
  return { unit: r.systemd.unit, slice: r.systemd.slice, path: r.path };
}

function refuseLayout(layout: CgroupLayout, cgroupsPath: string): void {
  if (layout !== 'v2')
    throw systemdError(
      'create',
      cgroupsPath,
      `the systemd cgroup driver needs a cgroup v2 (unified) host; this one is ${layout}, where systemd would reset the container's v1 device rules at its next reload: use the cgroupfs driver (no --systemd-cgroup)`,
    );
}

async function connect(op: string, cgroupsPath: string): Promise<DBusConnection> {
  const manager = systemdManager();
  const socket = manager.socket;
  try {
    return await connectDBus(socket, undefined, manager.uid);
  } catch (e) {
    // root in a user namespace (rootless podman's runtime) is no root of the system manager's, and
    // the driver does not ask the user's manager for a scope yet
    const hint =
      (process.getuid?.() ?? 0) === 0 && inUserNamespace() && manager.kind === 'system'
        ? " (berth runs as root in a user namespace without $XDG_RUNTIME_DIR, or with $USER root: it asks the system's manager, as runc does; give the user's $XDG_RUNTIME_DIR for the user's manager)"
        : '';
    throw systemdError(
      op,
      cgroupsPath,
      `cannot reach systemd at ${socket}: ${(e as Error).message}${hint}`,
      e,
    );
  }
}

/** Calls a manager method and waits for the job it queues to end; resolves with the job's result. */
async function runJob(
  conn: DBusConnection,
  member: string,
  signature: string,
  body: DBusValue[],
): Promise<string> {
  const ended = new Map<string, string>();
  const waiters = new Map<string, (result: string) => void>();
  conn.onSignal((m) => {
    if (m.member !== 'JobRemoved' || m.iface !== MANAGER) return;
    const [, job, , result] = m.body as [number, string, string, string];
    const w = waiters.get(job);
    if (w) w(result);
    else ended.set(job, result);
  });
  await conn.call(MANAGER_PATH, MANAGER, 'Subscribe', '', [], DESTINATION);
  const [job] = (await conn.call(MANAGER_PATH, MANAGER, member, signature, body, DESTINATION)) as [string];
  const done = ended.get(job);
  if (done !== undefined) return done;
  return await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`systemd's job ${job} did not end in 60 s`)), 60_000);
    waiters.set(job, (result) => {
      clearTimeout(timer);
      resolve(result);
    });
  });
}

export interface StartScopeOptions {
  /** `slice:prefix:name` */
  cgroupsPath: string;
  /** The first process of the scope (systemd refuses a scope without one). */
  pid: number;
  layout: CgroupLayout;
  resources?: LinuxResources;
  description?: string;
}

/**
 * Makes the container's scope with `pid` in it and waits until systemd has started it.
 * A failed scope of the same name left from an earlier container is reset first (as
 * runc does); an active one is an error.
 */
export async function startScope(
  opts: StartScopeOptions,
): Promise<{ unit: string; slice: string; path: string }> {
  refuseLayout(opts.layout, opts.cgroupsPath);
  const scope = scopeOf(opts.cgroupsPath);
  let props: Array<[string, Variant]>;
  try {
    props = scopeResourceProperties(opts.resources);
  } catch (e) {
    throw systemdError('create', opts.cgroupsPath, `linux.resources.cpu: ${(e as Error).message}`, e);
  }
  // a name ending in .slice makes a slice (kubelet's pod cgroups): systemd puts no process in
  // one and delegates none; the runtime joins it as with cgroupfs
  const isSlice = scope.unit.endsWith('.slice');
  const all: DBusValue[] = [
    ['Description', variant('s', opts.description ?? `berth container ${scope.unit}`)],
    ['Slice', variant('s', scope.slice)],
    ...(isSlice
      ? []
      : [['Delegate', variant('b', true)] as DBusValue, ['PIDs', variant('au', [opts.pid])] as DBusValue]),
    ['DefaultDependencies', variant('b', false)],
    ['MemoryAccounting', variant('b', true)],
    ['CPUAccounting', variant('b', true)],
    ['IOAccounting', variant('b', true)],
    ['TasksAccounting', variant('b', true)],
    ...props,
  ];
  const conn = await connect('create', opts.cgroupsPath);
  try {
    const start = () =>
      runJob(conn, 'StartTransientUnit', 'ssa(sv)a(sa(sv))', [scope.unit, 'replace', all, []]);
    let result: string;
    try {
      result = await start();
    } catch (e) {
      if (!(e instanceof DBusError && e.name === 'org.freedesktop.systemd1.UnitExists')) throw e;
      // a scope of that name that failed stays loaded until reset; a running one is another container's
      await conn
        .call(MANAGER_PATH, MANAGER, 'ResetFailedUnit', 's', [scope.unit], DESTINATION)
        .catch(() => {});
      result = await start();
    }
    if (result !== 'done') throw new Error(`systemd could not start ${scope.unit} (job result: ${result})`);
    return scope;
  } catch (e) {
    if (e instanceof CgroupError) throw e;
    const why = e instanceof DBusError ? `${e.message} (${e.name})` : (e as Error).message;
    throw systemdError(
      'create',
      opts.cgroupsPath,
      `systemd: cannot make ${scope.unit} in ${scope.slice}: ${why}`,
      e,
    );
  } finally {
    conn.close();
  }
}

/**
 * Stops the container's scope (systemd signals whatever is left in it) and forgets it if it
 * failed. A scope systemd no longer knows (it stops an empty one by itself) is no error.
 */
export async function stopScope(cgroupsPath: string): Promise<void> {
  const scope = scopeOf(cgroupsPath);
  const conn = await connect('delete', cgroupsPath);
  try {
    try {
      await runJob(conn, 'StopUnit', 'ss', [scope.unit, 'replace']);
    } catch (e) {
      if (!(e instanceof DBusError && e.name === 'org.freedesktop.systemd1.NoSuchUnit')) throw e;
    }
    await conn.call(MANAGER_PATH, MANAGER, 'ResetFailedUnit', 's', [scope.unit], DESTINATION).catch(() => {});
  } catch (e) {
    const why = e instanceof DBusError ? `${e.message} (${e.name})` : (e as Error).message;
    throw systemdError('delete', cgroupsPath, `systemd: cannot stop ${scope.unit}: ${why}`, e);
  } finally {
    conn.close();
  }
}

/** `berth update`: the new limits become the scope's properties too (runtime: not kept over a reboot). */
export async function setScopeResources(cgroupsPath: string, resources: LinuxResources): Promise<void> {
  const scope = scopeOf(cgroupsPath);
  const props = scopeResourceProperties(resources);
  if (!props.length) return;
  const conn = await connect('update', cgroupsPath);
  try {
    await conn.call(
      MANAGER_PATH,
      MANAGER,
      'SetUnitProperties',
      'sba(sv)',
      [scope.unit, true, props],
      DESTINATION,
    );
  } catch (e) {
    const why = e instanceof DBusError ? `${e.message} (${e.name})` : (e as Error).message;
    throw systemdError('update', cgroupsPath, `systemd: cannot update ${scope.unit}: ${why}`, e);
  } finally {
    conn.close();
  }
}

/** Whether systemd knows the unit and in which state (`active`, `failed`, …), or undefined. */
export async function scopeState(cgroupsPath: string): Promise<string | undefined> {
  const scope = scopeOf(cgroupsPath);
  const conn = await connect('state', cgroupsPath);
  try {
    const [unitPath] = (await conn.call(
      MANAGER_PATH,
      MANAGER,
      'GetUnit',
      's',
      [scope.unit],
      DESTINATION,
    )) as [string];
    const [v] = (await conn.call(
      unitPath,
      'org.freedesktop.DBus.Properties',
      'Get',
      'ss',
      ['org.freedesktop.systemd1.Unit', 'ActiveState'],
      DESTINATION,
    )) as [Variant];
    return String(v.value);
  } catch (e) {
    if (e instanceof DBusError && e.name === 'org.freedesktop.systemd1.NoSuchUnit') return undefined;
    throw e;
  } finally {
    conn.close();
  }
}
