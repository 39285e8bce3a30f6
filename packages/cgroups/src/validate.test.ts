import { describe, expect, it } from 'vitest';
import { unknownResourceFields, validateResources } from './validate.js';

const paths = (r: unknown) => validateResources(r).map((p) => p.path);

describe('validateResources', () => {
  it('accepts a typical config', () => {
    expect(
      validateResources({
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
        ],
        memory: {
          limit: 1 << 30,
          swap: 2 * 2 ** 30,
          reservation: 1 << 29,
          swappiness: 60,
          disableOOMKiller: false,
        },
        cpu: { shares: 1024, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
        pids: { limit: -1 },
        blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1000 }] },
        hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
        network: { classID: 1, priorities: [{ name: 'eth0', priority: 5 }] },
        rdma: { mlx5_0: { hcaHandles: 3 } },
        unified: { 'memory.high': '1G', 'hugetlb.1GB.max': '0' },
      }),
    ).toEqual([]);
  });

  it('names each bad field by its JSON path', () => {
    expect(
      validateResources({
        memory: { limit: 100, swap: 50 },
        cpu: { shares: 1, quota: 10, cpus: '3-1', idle: 2 },
        devices: [{ allow: 'yes', type: 'x', access: 'rwx' }],
        blockIO: { weight: 5000, weightDevice: [{ major: 8 }] },
        hugepageLimits: [{ pageSize: '2M', limit: -1 }],
        unified: { 'cgroup.procs': '1', '../etc/passwd': 'x', 'memory.max': 5 },
        bogus: 1,
      }),
    ).toEqual([
      // the OCI shape, checked by @berth/spec
      { path: 'linux.resources.devices[0].allow', message: 'must be a boolean' },
      { path: 'linux.resources.devices[0].type', message: '"x" is not a device rule type (a, c or b)' },
      {
        path: 'linux.resources.devices[0].access',
        message: '"rwx" must be a combination of r, w and m (at least one)',
      },
      { path: 'linux.resources.blockIO.weightDevice[0].minor', message: 'is required' },
      { path: 'linux.resources.blockIO.weightDevice[0]', message: 'must set weight or leafWeight' },
      {
        path: 'linux.resources.hugepageLimits[0].pageSize',
        message: '"2M" is not a page size like "2MB" or "1GB"',
      },
      { path: 'linux.resources.hugepageLimits[0].limit', message: 'must be a non-negative integer' },
      { path: 'linux.resources.unified["memory.max"]', message: 'must be a string' },
      // what the cgroup files accept, checked here (an unknown field is not a problem: see below)
      {
        path: 'linux.resources.memory.swap',
        message: 'must be >= memory.limit (100): it is memory+swap, not swap alone',
      },
      { path: 'linux.resources.cpu.shares', message: 'must be between 2 and 262144 (or 0), got 1' },
      {
        path: 'linux.resources.cpu.quota',
        message: 'must be >= 1000 microseconds (or -1 for unlimited), got 10',
      },
      { path: 'linux.resources.cpu.cpus', message: 'range 3-1 is reversed' },
      { path: 'linux.resources.cpu.idle', message: 'must be between 0 and 1, got 2' },
      { path: 'linux.resources.blockIO.weight', message: 'must be between 10 and 1000 (or 0), got 5000' },
      {
        path: 'linux.resources.unified["cgroup.procs"]',
        message: 'key is not a resource setting and cannot be written here',
      },
      {
        path: 'linux.resources.unified["../etc/passwd"]',
        message: 'key must look like "controller.file" (no "/" or "..")',
      },
    ]);
  });

  it('rejects negative limits other than -1', () => {
    expect(paths({ memory: { limit: -2 }, pids: { limit: -7 } })).toEqual([
      'linux.resources.memory.limit',
      'linux.resources.pids.limit',
    ]);
  });

  it('unknown fields are not problems (the runtime-spec forbids failing on them), but are listed for a warning', () => {
    const r = { CPU: { cpus: '0' }, memory: { limitt: 5 }, pids: { limit: 10 } };
    expect(validateResources(r)).toEqual([]);
    expect(unknownResourceFields(r).sort()).toEqual(['linux.resources.CPU', 'linux.resources.memory.limitt']);
  });

  it('rejects swap without a memory limit and burst above quota', () => {
    expect(paths({ memory: { swap: 100 }, cpu: { quota: 10000, burst: 20000 } })).toEqual([
      'linux.resources.cpu.burst',
      'linux.resources.memory.swap',
    ]);
  });

  it('reports each rule once: a shape problem is not repeated by the kernel rules', () => {
    const bad = { cpu: { cpus: 'first', shares: 'x' }, devices: [{ allow: true, access: 'rrw' }] };
    expect(validateResources(bad)).toEqual([
      { path: 'linux.resources.cpu.shares', message: 'must be a non-negative integer' },
      { path: 'linux.resources.cpu.cpus', message: '"first" is not a list like "0-3,7"' },
      {
        path: 'linux.resources.devices[0].access',
        message: 'must name each of r, w and m at most once, got "rrw"',
      },
    ]);
  });

  it('refuses huge page sizes the kernel has no files for, and device numbers beyond 32 bits', () => {
    expect(
      paths({ hugepageLimits: [{ pageSize: '1PB', limit: 0 }], devices: [{ allow: true, major: 2 ** 33 }] }),
    ).toEqual(['linux.resources.devices[0].major', 'linux.resources.hugepageLimits[0].pageSize']);
  });

  it('rejects a non-object', () => {
    expect(validateResources(42)).toEqual([{ path: 'linux.resources', message: 'must be an object' }]);
  });
});
