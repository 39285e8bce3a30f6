import { CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER } from '@berth/sys';
import { describe, expect, it } from 'vitest';
import { formatIdMap, toHostId } from './idmap.js';
import { planNamespaces } from './plan.js';

describe('planNamespaces', () => {
  it('creates namespaces without a path as clone flags', () => {
    const p = planNamespaces([{ type: 'pid' }, { type: 'mount' }, { type: 'network' }]);
    expect(p.cloneFlags).toBe(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET);
    expect(p.create).toEqual(['pid', 'mount', 'network']);
    expect(p.steps).toEqual([]);
  });

  it('joins namespaces with a path, user first and mount last', () => {
    const p = planNamespaces([
      { type: 'mount', path: '/proc/9/ns/mnt' },
      { type: 'network', path: '/var/run/netns/x' },
      { type: 'user', path: '/proc/9/ns/user' },
      { type: 'pid' },
    ]);
    expect(p.cloneFlags).toBe(CLONE_NEWPID);
    expect(p.join.map((j) => j.kind)).toEqual(['user', 'network', 'mount']);
    expect(p.steps[0]).toMatchObject({ op: 'setns', path: '/proc/9/ns/user', nstype: CLONE_NEWUSER });
    expect(p.steps[2]).toMatchObject({
      op: 'setns',
      path: '/proc/9/ns/mnt',
      describe: 'join mount namespace /proc/9/ns/mnt',
    });
  });

  it('as root, the user namespace after the others, the mount namespace still last', () => {
    const requests = [
      { type: 'mount', path: '/proc/9/ns/mnt' },
      { type: 'user', path: '/proc/9/ns/user' },
      { type: 'time', path: '/proc/9/ns/time' },
      { type: 'network', path: '/proc/9/ns/net' },
    ];
    expect(planNamespaces(requests, { privileged: true }).join.map((j) => j.kind)).toEqual([
      'network',
      'time',
      'user',
      'mount',
    ]);
    expect(planNamespaces(requests).join.map((j) => j.kind)).toEqual(['user', 'network', 'time', 'mount']);
  });

  it('rejects an unknown type and a type listed twice, naming the entry', () => {
    expect(() => planNamespaces([{ type: 'pid' }, { type: 'foo' }])).toThrow(
      'linux.namespaces[1].type: "foo" is not a namespace type',
    );
    expect(() => planNamespaces([{ type: 'pid' }, { type: 'pid' }])).toThrow(
      'linux.namespaces[1].type: pid namespace is listed twice',
    );
  });
});

describe('id maps', () => {
  const maps = [
    { containerID: 0, hostID: 100000, size: 1000 },
    { containerID: 1000, hostID: 5000, size: 1 },
  ];
  it('formats /proc/PID/uid_map lines', () => {
    expect(formatIdMap(maps)).toBe('0 100000 1000\n1000 5000 1\n');
  });
  it('maps container ids to host ids', () => {
    expect(toHostId(maps, 0)).toBe(100000);
    expect(toHostId(maps, 999)).toBe(100999);
    expect(toHostId(maps, 1000)).toBe(5000);
    expect(toHostId(maps, 1001)).toBeUndefined();
  });
});
