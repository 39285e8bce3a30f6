import { validateResources as validateShape } from '@berth/spec';
import type { CgroupProblem } from './errors.js';
import type { LinuxResources } from './types.js';

// Two layers, each rule in one place: `@berth/spec` checks the shape that
// config-linux.md defines (types, OCI ranges, rules between fields); this file
// adds only what the cgroup interfaces accept on top of that, so a value the
// kernel would refuse half-way through `apply` is refused before the first
// write. Host-dependent checks (missing controllers, unknown unified files)
// happen in `Cgroup.apply`.

const ROOT = 'linux.resources';
const UINT32_MAX = 4294967295;

type Obj = Record<string, unknown>;

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

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

const FIELDS = {
  resources: ['devices', 'memory', 'cpu', 'pids', 'blockIO', 'hugepageLimits', 'network', 'rdma', 'unified'],
  memory: [
    'limit',
    'reservation',
    'swap',
    'kernel',
    'kernelTCP',
    'swappiness',
    'disableOOMKiller',
    'useHierarchy',
    'checkBeforeUpdate',
  ],
  cpu: ['shares', 'quota', 'burst', 'period', 'realtimeRuntime', 'realtimePeriod', 'cpus', 'mems', 'idle'],
  pids: ['limit'],
  blockIO: [
    'weight',
    'leafWeight',
    'weightDevice',
    'throttleReadBpsDevice',
    'throttleWriteBpsDevice',
    'throttleReadIOPSDevice',
    'throttleWriteIOPSDevice',
  ],
  device: ['allow', 'type', 'major', 'minor', 'access'],
  weightDevice: ['major', 'minor', 'weight', 'leafWeight'],
  throttle: ['major', 'minor', 'rate'],
  hugepage: ['pageSize', 'limit'],
  network: ['classID', 'priorities'],
  priority: ['name', 'priority'],
  rdma: ['hcaHandles', 'hcaObjects'],
} as const;

class Rules {
  readonly problems: CgroupProblem[] = [];

  add(path: string, message: string): void {
    this.problems.push({ path, message });
  }

  /** Fields no version of the runtime-spec has: collected for a warning (the spec forbids an error for them). */
  readonly unknown: string[] = [];

  known(path: string, value: unknown, keys: readonly string[]): value is Obj {
    if (!isObject(value)) return false;
    for (const k of Object.keys(value)) if (!keys.includes(k)) this.unknown.push(`${path}.${k}`);
    return true;
  }

  /** `value` (already an integer per the spec) within [min, max], or one of `also`. */
  range(path: string, value: unknown, min: number, max: number, also: number[], unit = ''): void {
    if (!isInt(value) || also.includes(value) || (value >= min && value <= max)) return;
    const extra = also.length ? ` (or ${also.join(' or ')})` : '';
    this.add(path, `must be between ${min} and ${max}${unit}${extra}, got ${value}`);
  }

  deviceNumbers(path: string, d: Obj): void {
    for (const k of ['major', 'minor'])
      if (isInt(d[k]) && (d[k] as number) > UINT32_MAX)
        this.add(`${path}.${k}`, `must be at most ${UINT32_MAX}`);
  }
}

function cpuList(r: Rules, path: string, v: unknown): void {
  // anything outside this alphabet is already reported by @berth/spec
  if (typeof v !== 'string' || v === '' || !/^[0-9, -]*$/.test(v)) return;
  for (const part of v.split(',')) {
    const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) {
      r.add(path, `must be a list like "0-3,5", got ${JSON.stringify(v)}`);
      return;
    }
    if (m[2] !== undefined && Number(m[2]) < Number(m[1])) {
      r.add(path, `range ${part.trim()} is reversed`);
      return;
    }
  }
}

function memory(r: Rules, m: unknown): void {
  const p = `${ROOT}.memory`;
  if (!r.known(p, m, FIELDS.memory)) return;
  const { limit, swap } = m;
  if (isInt(limit) && isInt(swap) && limit > 0 && swap > 0 && swap < limit) {
    r.add(`${p}.swap`, `must be >= memory.limit (${limit}): it is memory+swap, not swap alone`);
  }
  if (isInt(swap) && swap > 0 && (limit === undefined || limit === -1 || limit === 0)) {
    r.add(`${p}.swap`, 'cannot set a swap limit without a memory limit');
  }
}

function cpu(r: Rules, c: unknown): void {
  const p = `${ROOT}.cpu`;
  if (!r.known(p, c, FIELDS.cpu)) return;
  r.range(`${p}.shares`, c['shares'], 2, 262144, [0]);
  if (isInt(c['quota']) && c['quota'] > 0 && c['quota'] < 1000) {
    r.add(`${p}.quota`, `must be >= 1000 microseconds (or -1 for unlimited), got ${c['quota']}`);
  }
  r.range(`${p}.period`, c['period'], 1000, 1000000, [0], ' microseconds');
  cpuList(r, `${p}.cpus`, c['cpus']);
  cpuList(r, `${p}.mems`, c['mems']);
  r.range(`${p}.idle`, c['idle'], 0, 1, []);
}

function blockIO(r: Rules, b: unknown): void {
  const p = `${ROOT}.blockIO`;
  if (!r.known(p, b, FIELDS.blockIO)) return;
  r.range(`${p}.weight`, b['weight'], 10, 1000, [0]);
  r.range(`${p}.leafWeight`, b['leafWeight'], 10, 1000, [0]);
  each(b['weightDevice'], `${p}.weightDevice`, (d, dp) => {
    if (!r.known(dp, d, FIELDS.weightDevice)) return;
    r.deviceNumbers(dp, d);
    r.range(`${dp}.weight`, d['weight'], 10, 1000, [0]);
    r.range(`${dp}.leafWeight`, d['leafWeight'], 10, 1000, [0]);
  });
  for (const t of FIELDS.blockIO.slice(3)) {
    each(b[t], `${p}.${t}`, (d, dp) => {
      if (r.known(dp, d, FIELDS.throttle)) r.deviceNumbers(dp, d);
    });
  }
}

function each(list: unknown, path: string, fn: (item: unknown, path: string) => void): void {
  if (!Array.isArray(list)) return;
  for (let i = 0; i < list.length; i++) fn(list[i], `${path}[${i}]`);
}

function kernelRules(r: Rules, res: Obj): void {
  r.known(ROOT, res, FIELDS.resources);
  each(res['devices'], `${ROOT}.devices`, (d, p) => {
    if (!r.known(p, d, FIELDS.device)) return;
    r.deviceNumbers(p, d);
    const access = d['access'];
    if (typeof access === 'string' && new Set(access).size !== access.length) {
      r.add(`${p}.access`, `must name each of r, w and m at most once, got ${JSON.stringify(access)}`);
    }
  });
  memory(r, res['memory']);
  cpu(r, res['cpu']);
  r.known(`${ROOT}.pids`, res['pids'], FIELDS.pids);
  blockIO(r, res['blockIO']);
  each(res['hugepageLimits'], `${ROOT}.hugepageLimits`, (h, p) => {
    if (!r.known(p, h, FIELDS.hugepage)) return;
    const size = h['pageSize'];
    // the spec allows any "<n><unit>B"; hugetlb's files only use KB to TB
    if (
      typeof size === 'string' &&
      /^[1-9][0-9]*[KMGTPE]?B$/.test(size) &&
      !/^[1-9][0-9]*[KMGT]B$/.test(size)
    ) {
      r.add(
        `${p}.pageSize`,
        `${JSON.stringify(size)} is not a huge page size the kernel names (KB, MB, GB or TB)`,
      );
    }
  });
  const net = res['network'];
  if (r.known(`${ROOT}.network`, net, FIELDS.network)) {
    each(net['priorities'], `${ROOT}.network.priorities`, (x, p) => {
      if (!r.known(p, x, FIELDS.priority)) return;
      const name = x['name'];
      if (typeof name === 'string' && name !== '' && !/^[^\s/]{1,15}$/.test(name)) {
        r.add(`${p}.name`, `must be an interface name, got ${JSON.stringify(name)}`);
      }
    });
  }
  const rdma = res['rdma'];
  if (isObject(rdma)) {
    for (const [dev, v] of Object.entries(rdma)) {
      const p = /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(dev)
        ? `${ROOT}.rdma.${dev}`
        : `${ROOT}.rdma[${JSON.stringify(dev)}]`;
      if (!/^[^\s/]+$/.test(dev)) r.add(p, 'device name must not contain spaces or /');
      r.known(p, v, FIELDS.rdma);
    }
  }
  const unified = res['unified'];
  if (isObject(unified)) {
    for (const [key, v] of Object.entries(unified)) {
      const p = `${ROOT}.unified[${JSON.stringify(key)}]`;
      if (!UNIFIED_KEY.test(key) || key.includes('..')) {
        r.add(p, 'key must look like "controller.file" (no "/" or "..")');
      } else if (UNIFIED_FORBIDDEN.has(key)) {
        r.add(p, 'key is not a resource setting and cannot be written here');
      }
      if (typeof v === 'string' && v.includes('\n')) r.add(p, 'value must be a single line');
    }
  }
}

/**
 * Checks `linux.resources` without touching the host: the OCI shape (from
 * `@berth/spec`), then what the cgroup files accept — kernel ranges, the rules
 * between fields that the kernel would otherwise reject half-way through
 * apply, and no field this package would not apply.
 */
export function validateResources(resources: LinuxResources | unknown): CgroupProblem[] {
  const shape = validateShape(resources, ROOT);
  if (!isObject(resources)) return shape;
  const r = new Rules();
  kernelRules(r, resources);
  return [...shape, ...r.problems];
}

/**
 * The fields of `resources` that berth does not know (JSON paths, e.g.
 * `linux.resources.memory.limitt`): the runtime-spec says a runtime MUST NOT fail on an
 * unknown property, so they are not problems, but nothing applies them: worth a warning,
 * since a misspelt limit is a limit that does not hold.
 */
export function unknownResourceFields(resources: LinuxResources | unknown): string[] {
  if (!isObject(resources)) return [];
  const r = new Rules();
  kernelRules(r, resources);
  return r.unknown;
}
