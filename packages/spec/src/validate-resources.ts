import {
  arrayField,
  asObject,
  at,
  boolField,
  intField,
  type JsonObject,
  mapField,
  objectField,
  Problems,
  stringField,
  stringMapField,
} from './check.js';
import type { SpecProblem } from './types.js';

// -1 means "unlimited" for these (config-linux.md); anything lower is meaningless.
const MEMORY_LIMITS = ['limit', 'reservation', 'swap', 'kernel', 'kernelTCP'];
const THROTTLES = [
  'throttleReadBpsDevice',
  'throttleWriteBpsDevice',
  'throttleReadIOPSDevice',
  'throttleWriteIOPSDevice',
];

/**
 * The shape of `linux.resources` as config-linux.md defines it: types, the
 * OCI's ranges and the rules between fields. It never looks at the host;
 * `@berth/cgroups`' `validateResources` adds what the kernel accepts on top.
 *
 * @param value the resources object (or anything: a non-object is reported)
 * @param base the JSON path of `value`, `linux.resources` by default
 */
export function validateResources(value: unknown, base = 'linux.resources'): SpecProblem[] {
  const p = new Problems();
  const res = asObject(p, value, base);
  if (res) checkResources(p, res, base);
  return p.list;
}

export function checkResources(p: Problems, res: JsonObject, base: string): void {
  arrayField(p, res, 'devices', base, (item, path) => {
    const rule = asObject(p, item, path);
    if (!rule) return;
    boolField(p, rule, 'allow', path, { required: true });
    stringField(p, rule, 'type', path, { oneOf: ['a', 'c', 'b'], what: 'a device rule type (a, c or b)' });
    // -1 is how runc and crun spell the "*" wildcard when they serialize rules
    intField(p, rule, 'major', path, 'int64', { min: -1 });
    intField(p, rule, 'minor', path, 'int64', { min: -1 });
    // "" is refused, as runc does: crun and berth's cgroup code read a missing access as rwm,
    // and an empty one read that way would open the device fully
    stringField(p, rule, 'access', path, {
      pattern: /^[rwm]+$/,
      patternText: 'must be a combination of r, w and m (at least one)',
    });
  });

  const mem = objectField(p, res, 'memory', base);
  if (mem) {
    const path = at(base, 'memory');
    for (const key of MEMORY_LIMITS) intField(p, mem, key, path, 'int64', { min: -1 });
    intField(p, mem, 'swappiness', path, 'uint64', { max: 100 });
    for (const key of ['disableOOMKiller', 'useHierarchy', 'checkBeforeUpdate']) boolField(p, mem, key, path);
  }

  const cpu = objectField(p, res, 'cpu', base);
  if (cpu) validateCpu(p, cpu, at(base, 'cpu'));

  const pids = objectField(p, res, 'pids', base);
  if (pids) intField(p, pids, 'limit', at(base, 'pids'), 'int64', { required: true, min: -1 });

  const blkio = objectField(p, res, 'blockIO', base);
  if (blkio) validateBlockIO(p, blkio, at(base, 'blockIO'));

  arrayField(p, res, 'hugepageLimits', base, (item, path) => {
    const h = asObject(p, item, path);
    if (!h) return;
    stringField(p, h, 'pageSize', path, {
      required: true,
      pattern: /^[1-9][0-9]*[KMGTPE]?B$/,
      patternText: 'is not a page size like "2MB" or "1GB"',
    });
    intField(p, h, 'limit', path, 'uint64', { required: true });
  });

  const net = objectField(p, res, 'network', base);
  if (net) {
    const path = at(base, 'network');
    intField(p, net, 'classID', path, 'uint32');
    arrayField(p, net, 'priorities', path, (item, prioPath) => {
      const prio = asObject(p, item, prioPath);
      if (!prio) return;
      stringField(p, prio, 'name', prioPath, { required: true, nonEmpty: true });
      intField(p, prio, 'priority', prioPath, 'uint32', { required: true });
    });
  }

  mapField(p, res, 'rdma', base, (value, path) => {
    const rdma = asObject(p, value, path);
    if (!rdma) return;
    intField(p, rdma, 'hcaHandles', path, 'uint32');
    intField(p, rdma, 'hcaObjects', path, 'uint32');
    if (rdma['hcaHandles'] === undefined && rdma['hcaObjects'] === undefined) {
      p.add(path, 'must set hcaHandles or hcaObjects');
    }
  });

  stringMapField(p, res, 'unified', base);
}

function validateCpu(p: Problems, cpu: JsonObject, path: string): void {
  intField(p, cpu, 'shares', path, 'uint64');
  // quota -1 means "no limit", as cpu.cfs_quota_us spells it
  const quota = intField(p, cpu, 'quota', path, 'int64', { min: -1 });
  const burst = intField(p, cpu, 'burst', path, 'uint64');
  if (quota !== undefined && quota > 0 && burst !== undefined && burst > quota) {
    p.add(at(path, 'burst'), `${burst} must not exceed quota ${quota}`);
  }
  intField(p, cpu, 'period', path, 'uint64');
  intField(p, cpu, 'realtimeRuntime', path, 'int64', { min: -1 });
  intField(p, cpu, 'realtimePeriod', path, 'uint64');
  const list = { pattern: /^[0-9, -]*$/, patternText: 'is not a list like "0-3,7"' };
  stringField(p, cpu, 'cpus', path, list);
  stringField(p, cpu, 'mems', path, list);
  intField(p, cpu, 'idle', path, 'int64');
}

function validateBlockIO(p: Problems, blkio: JsonObject, base: string): void {
  intField(p, blkio, 'weight', base, 'uint16');
  intField(p, blkio, 'leafWeight', base, 'uint16');
  arrayField(p, blkio, 'weightDevice', base, (item, path) => {
    const dev = asObject(p, item, path);
    if (!dev) return;
    intField(p, dev, 'major', path, 'int64', { required: true });
    intField(p, dev, 'minor', path, 'int64', { required: true });
    intField(p, dev, 'weight', path, 'uint16');
    intField(p, dev, 'leafWeight', path, 'uint16');
    if (dev['weight'] === undefined && dev['leafWeight'] === undefined) {
      p.add(path, 'must set weight or leafWeight');
    }
  });
  for (const key of THROTTLES) {
    arrayField(p, blkio, key, base, (item, path) => {
      const dev = asObject(p, item, path);
      if (!dev) return;
      intField(p, dev, 'major', path, 'int64', { required: true });
      intField(p, dev, 'minor', path, 'int64', { required: true });
      intField(p, dev, 'rate', path, 'uint64', { required: true });
    });
  }
}
