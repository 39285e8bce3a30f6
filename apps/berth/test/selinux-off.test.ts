// Integration (root): SELinux fields where SELinux is not enabled, as runc handles
// them. A process label cannot be applied, so asking for one is an error
// (runc: "selinux label is specified in config, but selinux is disabled or not
// supported"); a mount label is dropped (go-selinux's FormatMountLabel adds no
// context= where SELinux is off) and the container runs. Where SELinux is on,
// apps/berth/test/guest/selinux.guest.ts covers the labels (packages/vm/test/selinux-host.test.ts).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostLsms } from '@berth/runtime';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
  expect(sb.states()).toEqual([]);
});
afterAll(() => sb.cleanup());

const selinux = hostLsms().selinux;
const LABEL = 'system_u:system_r:container_t:s0:c1,c2';

describe.skipIf(selinux)(
  'SELinux fields where SELinux is off [skipped: this host has SELinux enabled]',
  () => {
    it('process.selinuxLabel fails the create, naming the field, and leaves nothing behind', () => {
      const bundle = sb.bundle((c) => {
        c.process.args = ['true'];
        c.process.selinuxLabel = LABEL;
      });
      const id = sb.id('seoff');
      const r = sb.berth(['create', '-b', bundle, id]);
      expect(r.status).toBe(1);
      expect(r.stderr).toBe(
        'berth: process.selinuxLabel: SELinux is disabled or not supported on this host\n',
      );
      expect(sb.berth(['state', id]).status).not.toBe(0);
    });

    it('linux.mountLabel is dropped: the container runs, no mount carries a context', () => {
      const bundle = sb.bundle((c) => {
        c.process.args = ['cat', '/proc/self/mountinfo'];
        c.linux.mountLabel = 'system_u:object_r:container_file_t:s0:c1,c2';
      });
      const r = sb.berth(['run', '-b', bundle, sb.id('seoff')]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/ - mqueue /); // the container's own mounts are there…
      expect(r.stdout).not.toMatch(/context=/); // …without a label
    });

    it('berth exec: a process label (--process-label or the process file) is refused, the container runs on', () => {
      const bundle = sb.bundle((c) => {
        c.process.args = ['sleep', '600'];
      });
      const id = sb.id('seoff');
      expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
      try {
        const flag = sb.berth(['exec', '--process-label', LABEL, id, 'true']);
        expect(flag.status).toBe(255); // exec's own failure (runc's status)
        expect(flag.stderr).toBe(
          'berth: process.selinuxLabel: SELinux is disabled or not supported on this host\n',
        );
        const file = join(sb.dir, 'process.json');
        writeFileSync(
          file,
          JSON.stringify({ args: ['true'], cwd: '/', user: { uid: 0, gid: 0 }, selinuxLabel: LABEL }),
        );
        expect(sb.berth(['exec', '--process', file, id]).stderr).toMatch(/^berth: process\.selinuxLabel: /);
        expect(sb.berth(['exec', id, 'true']).status).toBe(0);
      } finally {
        expect(sb.berth(['delete', '--force', id]).status).toBe(0);
      }
    });
  },
);
