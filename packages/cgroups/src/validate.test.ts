import { describe, expect, it } from 'vitest';
import { validateResources } from './validate.js';

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
      { path: 'linux.resources.bogus', message: 'unknown field' },
      { path: 'linux.resources.devices[0].allow', message: 'must be a boolean, got "yes"' },
      { path: 'linux.resources.devices[0].type', message: 'must be "a", "b" or "c", got "x"' },
      { path: 'linux.resources.devices[0].access', message: 'must combine "r", "w" and "m", got "rwx"' },
      {
        path: 'linux.resources.memory.swap',
        message: 'must be >= memory.limit (100): it is memory+swap, not swap alone',
      },
      { path: 'linux.resources.cpu.shares', message: 'must be between 2 and 262144, got 1' },
      {
        path: 'linux.resources.cpu.quota',
        message: 'must be >= 1000 microseconds (or -1 for unlimited), got 10',
      },
      { path: 'linux.resources.cpu.cpus', message: 'range 3-1 is reversed' },
      { path: 'linux.resources.cpu.idle', message: 'must be between 0 and 1, got 2' },
      { path: 'linux.resources.blockIO.weight', message: 'must be between 10 and 1000, got 5000' },
      { path: 'linux.resources.blockIO.weightDevice[0].minor', message: 'is required' },
      {
        path: 'linux.resources.hugepageLimits[0].pageSize',
        message: 'must look like "2MB" or "1GB", got "2M"',
      },
      { path: 'linux.resources.hugepageLimits[0].limit', message: 'must not be negative, got -1' },
      {
        path: 'linux.resources.unified["cgroup.procs"]',
        message: 'key is not a resource setting and cannot be written here',
      },
      {
        path: 'linux.resources.unified["../etc/passwd"]',
        message: 'key must look like "controller.file" (no "/" or "..")',
      },
      { path: 'linux.resources.unified["memory.max"]', message: 'value must be a string, got 5' },
    ]);
  });

  it('rejects negative limits other than -1', () => {
    expect(paths({ memory: { limit: -2 }, pids: { limit: -7 } })).toEqual([
      'linux.resources.memory.limit',
      'linux.resources.pids.limit',
    ]);
  });

  it('rejects swap without a memory limit and burst above quota', () => {
    expect(paths({ memory: { swap: 100 }, cpu: { quota: 10000, burst: 20000 } })).toEqual([
      'linux.resources.memory.swap',
      'linux.resources.cpu.burst',
    ]);
  });

  it('rejects a non-object', () => {
    expect(validateResources(42)).toEqual([
      { path: 'linux.resources', message: 'must be an object, got 42' },
    ]);
  });
});
