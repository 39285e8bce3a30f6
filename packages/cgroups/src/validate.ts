import type { CgroupProblem } from './errors.js';
import type { LinuxResources } from './types.js';

const ROOT = 'linux.resources';
const UINT32_MAX = 4294967295;

type Check = (value: unknown) => string | undefined;

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

function intRange(min: number, max: number, hint = ''): Check {
  return (v) => {
    if (!isInt(v)) return `must be an integer, got ${JSON.stringify(v)}`;
    if (v < min || v > max) return `must be between ${min} and ${max}${hint}, got ${v}`;
    return undefined;
  };
}

/** -1 (unlimited) or a positive value, the OCI convention for limits. */
const limitOrUnlimited: Check = (v) => {
  if (!isInt(v)) return `must be an integer, got ${JSON.stringify(v)}`;
  if (v < -1) return `must be -1 (unlimited) or >= 0, got ${v}`;
  return undefined;
};

const uint64: Check = (v) => {
  if (!isInt(v)) return `must be an integer, got ${JSON.stringify(v)}`;
  if (v < 0) return `must not be negative, got ${v}`;
  return undefined;
};

const bool: Check = (v) =>
  typeof v === 'boolean' ? undefined : `must be a boolean, got ${JSON.stringify(v)}`;

/** cpuset list syntax: `0-3,5,7-8`. */
const cpuList: Check = (v) => {
  if (typeof v !== 'string') return `must be a string, got ${JSON.stringify(v)}`;
  if (v === '') return undefined;
  for (const part of v.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return `must be a list like "0-3,5", got ${JSON.stringify(v)}`;
    if (m[2] !== undefined && Number(m[2]) < Number(m[1])) return `range ${part} is reversed`;
  }
  return undefined;
};

const PAGE_SIZE = /^[1-9][0-9]*(KB|MB|GB|TB)$/;

/** Keys the unified map may never set: they move processes or reshape the tree, not limits. */
const UNIFIED_FORBIDDEN = new Set([
  'cgroup.procs',
  'cgroup.threads',
  'cgroup.subtree_control',
  'cgroup.type',
  'cgroup.kill',
  'cgroup.freeze',
  'cgroup.events',
  'cgroup.controllers',
  'cgroup.stat',
]);

export const UNIFIED_KEY = /^[a-z][a-z0-9_]*\.[A-Za-z0-9_.]+$/;

interface Ctx {
  problems: CgroupProblem[];
}

function check(ctx: Ctx, path: string, value: unknown, fn: Check): void {
  if (value === undefined || value === null) return;
  const msg = fn(value);
  if (msg !== undefined) ctx.problems.push({ path, message: msg });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function knownKeys(ctx: Ctx, path: string, obj: Record<string, unknown>, keys: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!keys.includes(k)) ctx.problems.push({ path: `${path}.${k}`, message: 'unknown field' });
  }
}

function objectAt(ctx: Ctx, path: string, v: unknown): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) {
    ctx.problems.push({ path, message: `must be an object, got ${JSON.stringify(v)}` });
    return undefined;
  }
  return v;
}

function arrayAt(ctx: Ctx, path: string, v: unknown): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    ctx.problems.push({ path, message: `must be an array, got ${JSON.stringify(v)}` });
    return [];
  }
  return v;
}

function validateMemory(ctx: Ctx, m: Record<string, unknown>): void {
  const p = `${ROOT}.memory`;
  knownKeys(ctx, p, m, [
    'limit',
    'reservation',
    'swap',
    'kernel',
    'kernelTCP',
    'swappiness',
    'disableOOMKiller',
    'useHierarchy',
    'checkBeforeUpdate',
  ]);
  for (const k of ['limit', 'reservation', 'swap', 'kernel', 'kernelTCP'] as const) {
    check(ctx, `${p}.${k}`, m[k], limitOrUnlimited);
  }
  check(ctx, `${p}.swappiness`, m['swappiness'], intRange(0, 100));
  check(ctx, `${p}.disableOOMKiller`, m['disableOOMKiller'], bool);
  check(ctx, `${p}.useHierarchy`, m['useHierarchy'], bool);
  check(ctx, `${p}.checkBeforeUpdate`, m['checkBeforeUpdate'], bool);
  const { limit, swap } = m;
  if (isInt(limit) && isInt(swap) && limit > 0 && swap > 0 && swap < limit) {
    ctx.problems.push({
      path: `${p}.swap`,
      message: `must be >= memory.limit (${limit}): it is memory+swap, not swap alone`,
    });
  }
  if (isInt(swap) && swap > 0 && (limit === undefined || limit === -1 || limit === 0)) {
    ctx.problems.push({ path: `${p}.swap`, message: 'cannot set a swap limit without a memory limit' });
  }
}

function validateCpu(ctx: Ctx, c: Record<string, unknown>): void {
  const p = `${ROOT}.cpu`;
  knownKeys(ctx, p, c, [
    'shares',
    'quota',
    'burst',
    'period',
    'realtimeRuntime',
    'realtimePeriod',
    'cpus',
    'mems',
    'idle',
  ]);
  check(ctx, `${p}.shares`, c['shares'], (v) => (v === 0 ? undefined : intRange(2, 262144)(v)));
  check(ctx, `${p}.quota`, c['quota'], (v) => {
    if (!isInt(v)) return `must be an integer, got ${JSON.stringify(v)}`;
    if (v === -1 || v === 0) return undefined;
    return v < 1000 ? `must be >= 1000 microseconds (or -1 for unlimited), got ${v}` : undefined;
  });
  check(ctx, `${p}.period`, c['period'], (v) =>
    v === 0 ? undefined : intRange(1000, 1000000, ' microseconds')(v),
  );
  check(ctx, `${p}.burst`, c['burst'], uint64);
  check(ctx, `${p}.realtimeRuntime`, c['realtimeRuntime'], (v) =>
    isInt(v) && v >= -1 ? undefined : `must be -1 or >= 0 microseconds, got ${JSON.stringify(v)}`,
  );
  check(ctx, `${p}.realtimePeriod`, c['realtimePeriod'], uint64);
  check(ctx, `${p}.cpus`, c['cpus'], cpuList);
  check(ctx, `${p}.mems`, c['mems'], cpuList);
  check(ctx, `${p}.idle`, c['idle'], intRange(0, 1));
  const { burst, quota } = c;
  if (isInt(burst) && burst > 0 && isInt(quota) && quota > 0 && burst > quota) {
    ctx.problems.push({ path: `${p}.burst`, message: `must not exceed cpu.quota (${quota}), got ${burst}` });
  }
}

function validateDeviceNumbers(ctx: Ctx, p: string, d: Record<string, unknown>): void {
  check(ctx, `${p}.major`, d['major'], intRange(0, UINT32_MAX));
  check(ctx, `${p}.minor`, d['minor'], intRange(0, UINT32_MAX));
  if (d['major'] === undefined) ctx.problems.push({ path: `${p}.major`, message: 'is required' });
  if (d['minor'] === undefined) ctx.problems.push({ path: `${p}.minor`, message: 'is required' });
}

function validateBlockIO(ctx: Ctx, b: Record<string, unknown>): void {
  const p = `${ROOT}.blockIO`;
  const throttles = [
    'throttleReadBpsDevice',
    'throttleWriteBpsDevice',
    'throttleReadIOPSDevice',
    'throttleWriteIOPSDevice',
  ] as const;
  knownKeys(ctx, p, b, ['weight', 'leafWeight', 'weightDevice', ...throttles]);
  const weight = (v: unknown) => (v === 0 ? undefined : intRange(10, 1000)(v));
  check(ctx, `${p}.weight`, b['weight'], weight);
  check(ctx, `${p}.leafWeight`, b['leafWeight'], weight);
  arrayAt(ctx, `${p}.weightDevice`, b['weightDevice']).forEach((d, i) => {
    const dp = `${p}.weightDevice[${i}]`;
    const o = objectAt(ctx, dp, d);
    if (!o) return;
    knownKeys(ctx, dp, o, ['major', 'minor', 'weight', 'leafWeight']);
    validateDeviceNumbers(ctx, dp, o);
    check(ctx, `${dp}.weight`, o['weight'], weight);
    check(ctx, `${dp}.leafWeight`, o['leafWeight'], weight);
  });
  for (const t of throttles) {
    arrayAt(ctx, `${p}.${t}`, b[t]).forEach((d, i) => {
      const dp = `${p}.${t}[${i}]`;
      const o = objectAt(ctx, dp, d);
      if (!o) return;
      knownKeys(ctx, dp, o, ['major', 'minor', 'rate']);
      validateDeviceNumbers(ctx, dp, o);
      check(ctx, `${dp}.rate`, o['rate'], uint64);
      if (o['rate'] === undefined) ctx.problems.push({ path: `${dp}.rate`, message: 'is required' });
    });
  }
}

function validateDevices(ctx: Ctx, list: unknown[]): void {
  list.forEach((d, i) => {
    const p = `${ROOT}.devices[${i}]`;
    const o = objectAt(ctx, p, d);
    if (!o) return;
    knownKeys(ctx, p, o, ['allow', 'type', 'major', 'minor', 'access']);
    if (typeof o['allow'] !== 'boolean') {
      ctx.problems.push({
        path: `${p}.allow`,
        message: `must be a boolean, got ${JSON.stringify(o['allow'])}`,
      });
    }
    check(ctx, `${p}.type`, o['type'], (v) =>
      v === 'a' || v === 'b' || v === 'c' ? undefined : `must be "a", "b" or "c", got ${JSON.stringify(v)}`,
    );
    const num = (v: unknown) => (v === -1 ? undefined : intRange(0, UINT32_MAX, ' (or -1 for any)')(v));
    check(ctx, `${p}.major`, o['major'], num);
    check(ctx, `${p}.minor`, o['minor'], num);
    check(ctx, `${p}.access`, o['access'], (v) =>
      typeof v === 'string' && /^[rwm]*$/.test(v) && new Set(v).size === v.length
        ? undefined
        : `must combine "r", "w" and "m", got ${JSON.stringify(v)}`,
    );
  });
}

/**
 * Checks `linux.resources` without touching the host: types, ranges and the
 * cross-field rules the kernel would otherwise reject half-way through apply.
 * Host-dependent checks (missing controllers, unknown unified files) happen in
 * `Cgroup.apply` before its first write.
 */
export function validateResources(resources: LinuxResources | unknown): CgroupProblem[] {
  const ctx: Ctx = { problems: [] };
  const r = objectAt(ctx, ROOT, resources);
  if (!r) return ctx.problems;
  knownKeys(ctx, ROOT, r, [
    'devices',
    'memory',
    'cpu',
    'pids',
    'blockIO',
    'hugepageLimits',
    'network',
    'rdma',
    'unified',
  ]);
  validateDevices(ctx, arrayAt(ctx, `${ROOT}.devices`, r['devices']));
  const mem = objectAt(ctx, `${ROOT}.memory`, r['memory']);
  if (mem) validateMemory(ctx, mem);
  const cpu = objectAt(ctx, `${ROOT}.cpu`, r['cpu']);
  if (cpu) validateCpu(ctx, cpu);
  const pids = objectAt(ctx, `${ROOT}.pids`, r['pids']);
  if (pids) {
    knownKeys(ctx, `${ROOT}.pids`, pids, ['limit']);
    check(ctx, `${ROOT}.pids.limit`, pids['limit'], limitOrUnlimited);
  }
  const bio = objectAt(ctx, `${ROOT}.blockIO`, r['blockIO']);
  if (bio) validateBlockIO(ctx, bio);
  arrayAt(ctx, `${ROOT}.hugepageLimits`, r['hugepageLimits']).forEach((h, i) => {
    const p = `${ROOT}.hugepageLimits[${i}]`;
    const o = objectAt(ctx, p, h);
    if (!o) return;
    knownKeys(ctx, p, o, ['pageSize', 'limit']);
    if (typeof o['pageSize'] !== 'string' || !PAGE_SIZE.test(o['pageSize'])) {
      ctx.problems.push({
        path: `${p}.pageSize`,
        message: `must look like "2MB" or "1GB", got ${JSON.stringify(o['pageSize'])}`,
      });
    }
    check(ctx, `${p}.limit`, o['limit'], uint64);
    if (o['limit'] === undefined) ctx.problems.push({ path: `${p}.limit`, message: 'is required' });
  });
  const net = objectAt(ctx, `${ROOT}.network`, r['network']);
  if (net) {
    knownKeys(ctx, `${ROOT}.network`, net, ['classID', 'priorities']);
    check(ctx, `${ROOT}.network.classID`, net['classID'], intRange(0, UINT32_MAX));
    arrayAt(ctx, `${ROOT}.network.priorities`, net['priorities']).forEach((x, i) => {
      const p = `${ROOT}.network.priorities[${i}]`;
      const o = objectAt(ctx, p, x);
      if (!o) return;
      if (typeof o['name'] !== 'string' || !/^[^\s/]{1,15}$/.test(o['name'])) {
        ctx.problems.push({
          path: `${p}.name`,
          message: `must be an interface name, got ${JSON.stringify(o['name'])}`,
        });
      }
      check(ctx, `${p}.priority`, o['priority'], intRange(0, UINT32_MAX));
    });
  }
  const rdma = objectAt(ctx, `${ROOT}.rdma`, r['rdma']);
  if (rdma) {
    for (const [dev, v] of Object.entries(rdma)) {
      const p = `${ROOT}.rdma[${JSON.stringify(dev)}]`;
      if (!/^[^\s/]+$/.test(dev))
        ctx.problems.push({ path: p, message: 'device name must not contain spaces or /' });
      const o = objectAt(ctx, p, v);
      if (!o) continue;
      knownKeys(ctx, p, o, ['hcaHandles', 'hcaObjects']);
      check(ctx, `${p}.hcaHandles`, o['hcaHandles'], intRange(0, UINT32_MAX));
      check(ctx, `${p}.hcaObjects`, o['hcaObjects'], intRange(0, UINT32_MAX));
    }
  }
  const unified = objectAt(ctx, `${ROOT}.unified`, r['unified']);
  if (unified) {
    for (const [key, v] of Object.entries(unified)) {
      const p = `${ROOT}.unified[${JSON.stringify(key)}]`;
      if (!UNIFIED_KEY.test(key) || key.includes('..')) {
        ctx.problems.push({ path: p, message: 'key must look like "controller.file" (no "/" or "..")' });
      } else if (UNIFIED_FORBIDDEN.has(key)) {
        ctx.problems.push({ path: p, message: 'key is not a resource setting and cannot be written here' });
      }
      if (typeof v !== 'string')
        ctx.problems.push({ path: p, message: `value must be a string, got ${JSON.stringify(v)}` });
      else if (v.includes('\n')) ctx.problems.push({ path: p, message: 'value must be a single line' });
    }
  }
  return ctx.problems;
}
