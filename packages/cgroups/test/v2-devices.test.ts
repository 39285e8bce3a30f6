// Integration: the v2 device program goes through @berth/sys' bpf(2) binding and really filters devices.
// Runs on any host with a cgroup2 mount (v2 or hybrid), in a cgroup this test creates under it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CgroupError } from '../src/errors.js';
import { applyDevicesV2, attachedDevicePrograms } from '../src/v2/devices.js';

/** The host's cgroup2 mount point, read from mountinfo. */
function cgroup2Mount(): string {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    if (post?.split(' ')[0] === 'cgroup2') return pre!.split(' ')[4]!;
  }
  throw new Error('this host has no cgroup2 mount: the v2 device program test needs one');
}

const dir = join(cgroup2Mount(), `berth-devtest-${process.pid}-${Date.now().toString(36)}`);
mkdirSync(dir);
afterAll(() => {
  rmdirSync(dir);
  expect(existsSync(dir)).toBe(false);
});

describe('v2 device programs through @berth/sys bpf()', () => {
  it('attaches, replaces and really denies', () => {
    applyDevicesV2(dir, [{ allow: false, access: 'rwm' }]);
    expect(attachedDevicePrograms(dir)).toHaveLength(1);
    applyDevicesV2(dir, [
      { allow: false, access: 'rwm' },
      { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
    ]);
    // the old program is detached after the new one is attached
    expect(attachedDevicePrograms(dir)).toHaveLength(1);
    const out = execFileSync(
      'sh',
      [
        '-c',
        `echo $$ > ${dir}/cgroup.procs; cat /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null 2>&1 || echo zero-denied`,
      ],
      { encoding: 'utf8' },
    );
    expect(out).toBe('null-ok\nzero-denied\n');
  });

  it('names the call and errno when bpf fails', () => {
    let err: unknown;
    try {
      attachedDevicePrograms('/proc');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CgroupError);
    expect(err).toMatchObject({ code: 'EBPF', op: 'bpf prog query', path: '/proc' });
    expect((err as CgroupError).errno).toMatch(/^E[A-Z]+$/);
  });
});
