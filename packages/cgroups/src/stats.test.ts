import { describe, expect, it } from 'vitest';
import { parseCgroupMounts } from './detect.js';
import { parseProcCgroup } from './own.js';
import { emptyStats, toRuncStats } from './stats.js';
import { parseBlkioRecursive } from './v1/blkio.js';

describe('runc events --stats shape', () => {
  it('follows runc field names and omitempty rules', () => {
    const s = emptyStats();
    s.cpu.usage.total = 10;
    s.memory.usage = { usage: 5, max: 0, limit: 100, failcnt: 0 };
    s.memory.events.oomKill = 2;
    s.pids = { current: 3, limit: 0 };
    s.hugetlb['2MB'] = { usage: 0, max: 0, failcnt: 1 };
    s.io.serviceBytes.push({ major: 8, minor: 0, op: 'Read', value: 4096 });
    const r = toRuncStats(s) as Record<string, Record<string, unknown>>;
    expect(r['cpu']).toEqual({ usage: { total: 10, kernel: 0, user: 0 }, throttling: {} });
    expect(r['memory']?.['usage']).toEqual({ limit: 100, usage: 5, failcnt: 0 });
    expect(r['memory']?.['event_count']).toEqual({ oom_kill: 2 });
    expect(r['pids']).toEqual({ current: 3 });
    expect(r['hugetlb']).toEqual({ '2MB': { failcnt: 1 } });
    expect(r['blkio']).toEqual({ ioServiceBytesRecursive: [{ major: 8, op: 'Read', value: 4096 }] });
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });
});

describe('parsers', () => {
  it('finds v1 controllers and the cgroup2 mount in mountinfo', () => {
    const text = [
      '30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct',
      '31 25 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd',
      '32 25 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate',
    ].join('\n');
    expect(parseCgroupMounts(text)).toEqual({
      v1: {
        cpu: '/sys/fs/cgroup/cpu,cpuacct',
        cpuacct: '/sys/fs/cgroup/cpu,cpuacct',
        'name=systemd': '/sys/fs/cgroup/systemd',
      },
      unified: '/sys/fs/cgroup/unified',
    });
  });

  it('reads /proc/PID/cgroup', () => {
    expect(parseProcCgroup('4:memory:/a/b\n1:cpu,cpuacct:/\n0::/x\n')).toEqual({
      memory: '/a/b',
      cpu: '/',
      cpuacct: '/',
      unified: '/x',
    });
  });

  it('skips the Total line of blkio stats', () => {
    expect(parseBlkioRecursive('8:0 Read 10\n8:0 Write 20\nTotal 30\n')).toEqual([
      { major: 8, minor: 0, op: 'Read', value: 10 },
      { major: 8, minor: 0, op: 'Write', value: 20 },
    ]);
  });
});
