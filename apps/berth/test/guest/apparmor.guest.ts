// AppArmor, run where it is enabled: this file is not part of the host's suite
// (its name does not end in .test.ts) but of the guest test host's
// (packages/vm/test/cgroup-v2-host.test.ts boots Debian's kernel, which enables
// AppArmor, with the host's root filesystem shared read-only). It loads a
// profile with apparmor_parser and runs containers under it through the CLI.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from '../helpers.js';

const sb = new Sandbox();
const PROFILE = `berth-aa-test-${process.pid}`;

beforeAll(() => {
  // the guest's agent does not mount securityfs: AppArmor's interface lives there
  if (!existsSync('/sys/kernel/security/apparmor')) {
    execFileSync('mount', ['-t', 'securityfs', 'securityfs', '/sys/kernel/security']);
  }
  const file = join(sb.dir, 'profile');
  // everything allowed but two paths, as the container sees them
  writeFileSync(
    file,
    `profile ${PROFILE} flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  mount,
  umount,
  pivot_root,
  signal,
  ptrace,
  unix,
  deny /etc/berth-secret r,
  deny /denied/** w,
}
`,
  );
  execFileSync('apparmor_parser', ['--replace', '--skip-cache', file]);
});
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.states()).toEqual([]);
});
afterAll(() => {
  try {
    execFileSync('apparmor_parser', ['--remove', join(sb.dir, 'profile')]);
  } finally {
    sb.cleanup();
  }
});

function confined(profile: string | undefined, script: string): string {
  const bundle = sb.bundle((c) => {
    c.process.args = ['sh', '-c', script];
    c.root.readonly = false; // the write below is denied by the profile, not by a read-only root
    if (profile) c.process.apparmorProfile = profile;
  });
  writeFileSync(join(bundle, 'rootfs/etc/berth-secret'), 'secret\n');
  mkdirSync(join(bundle, 'rootfs/denied'), { recursive: true });
  const r = sb.berth(['run', '-b', bundle, sb.id('aa')]);
  expect(r.stderr.replace(/.*Permission denied\n/g, '')).toBe('');
  return r.stdout;
}

const PROBE =
  'cat /proc/self/attr/current; cat /etc/berth-secret >/dev/null && echo read-ok; touch /denied/x && echo write-ok; true';

describe('AppArmor (enabled in this kernel)', () => {
  it('is what berth detects', () => {
    expect(existsSync('/sys/kernel/security/apparmor')).toBe(true);
    const features = JSON.parse(sb.berth(['features']).stdout);
    expect(features.linux.apparmor).toEqual({ enabled: true });
  });

  it('process.apparmorProfile confines the container: its label, a denied read and a denied write', () => {
    expect(confined(PROFILE, PROBE)).toBe(`${PROFILE} (enforce)\n`);
    // the same container without the profile: unconfined, both allowed
    expect(confined(undefined, PROBE)).toBe('unconfined\nread-ok\nwrite-ok\n');
  });

  it("berth exec: the container's profile by default, --apparmor for another", () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
      c.process.apparmorProfile = PROFILE;
    });
    const id = sb.id('aaexec');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    try {
      const own = sb.berth(['exec', id, 'cat', '/proc/self/attr/current']);
      expect(own.stdout, own.stderr).toBe(`${PROFILE} (enforce)\n`);
      const other = sb.berth(['exec', '--apparmor', 'unconfined', id, 'cat', '/proc/self/attr/current']);
      expect(other.stdout, other.stderr).toBe('unconfined\n');
    } finally {
      expect(sb.berth(['delete', '--force', id]).status).toBe(0);
    }
  });

  it('a profile that is not loaded fails the create, naming it, and leaves nothing behind', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['true'];
      c.process.apparmorProfile = 'berth-not-loaded';
    });
    const r = sb.berth(['run', '-b', bundle, sb.id('aamissing')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/berth-not-loaded/);
  });
});
