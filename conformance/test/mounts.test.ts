// config.md root and mounts; config-linux.md filesystems, devices, masked and
// readonly paths, rootfsPropagation; runtime-linux.md /dev symlinks.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { mountAt, req, Suite } from '../src/harness.js';

const s = new Suite();
afterAll(() => s.cleanup());
afterEach(async () => {
  expect(await s.settle()).toEqual({ states: [], mounts: [], cgroups: [] });
});

const EROFS = 30;

req('C-ROOT-RO', 'root.readonly: the root filesystem is read-only inside the container', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.root.readonly = true;
      c.process.args = ['/checker', 'report', '--write', '/newfile', '--mkdir', '/newdir', '--file', '/'];
    }),
  );
  expect(report.actions['write /newfile']).toBe(EROFS);
  expect(report.actions['mkdir /newdir']).toBe(EROFS);
  expect(report.files['/'].readonly).toBe(true);
});

req('C-MOUNT-ORDER', 'mounts are mounted in the listed order', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.mounts.push(
        { destination: '/data/outer', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] },
        { destination: '/data/outer/inner', type: 'tmpfs', source: 'tmpfs', options: ['size=2m'] },
      );
      c.process.args = ['/checker', 'report', '--file', '/data/outer/inner'];
    }),
  );
  const outer = mountAt(report, '/data/outer')!;
  const inner = mountAt(report, '/data/outer/inner')!;
  expect(outer).toBeDefined();
  expect(inner).toBeDefined();
  // inner is mounted on top of outer, so outer came first
  expect(inner.parent).toBe(outer.id);
  expect(inner.superOptions).toContain('size=2048k');
});

req('C-MOUNT-REL', 'a relative mount destination is interpreted relative to /', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.mounts.push({ destination: 'data/rel', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] });
    }),
  );
  expect(mountAt(report, '/data/rel')?.fstype).toBe('tmpfs');
});

req(
  'C-MOUNT-BIND',
  'bind and rbind: a bind mount shows the source; only rbind brings its submounts',
  async () => {
    const src = join(s.dir, `bind-src-${s.id('src')}`);
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(join(src, 'hello'), 'from the host');
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(src, 'sub')]).status).toBe(0);
    writeFileSync(join(src, 'sub', 'inside'), 'submount');
    try {
      const { report } = await s.run(
        s.bundle((c) => {
          c.mounts.push(
            { destination: '/data/bind', type: 'bind', source: src, options: ['bind'] },
            { destination: '/data/rbind', type: 'bind', source: src, options: ['rbind'] },
          );
          c.process.args = [
            '/checker',
            'report',
            '--file',
            '/data/bind/hello',
            '--file',
            '/data/bind/sub/inside',
            '--file',
            '/data/rbind/sub/inside',
          ];
        }),
      );
      expect(report.files['/data/bind/hello'].content).toBe('from the host');
      expect(report.files['/data/bind/sub/inside'].errno).toBe(2); // ENOENT: not recursive
      expect(report.files['/data/rbind/sub/inside'].content).toBe('submount');
    } finally {
      spawnSync('umount', [join(src, 'sub')]);
    }
  },
);

/** Runs a container with one tmpfs at /data/m with `options`; returns that mount. */
async function tmpfsWith(options: string[]) {
  const { report } = await s.run(
    s.bundle((c) => {
      c.mounts.push({ destination: '/data/m', type: 'tmpfs', source: 'tmpfs', options });
    }),
  );
  return mountAt(report, '/data/m')!;
}

req('C-MOUNT-OPT-FLAGS', 'mount options ro, nosuid, nodev, noexec are applied', async () => {
  const m = await tmpfsWith(['ro', 'nosuid', 'nodev', 'noexec']);
  expect(m.options).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
});

req(
  'C-MOUNT-OPT-DEFAULTS',
  'mount options rw, suid, dev, exec, async, atime, defaults are accepted and mean rw',
  async () => {
    const m = await tmpfsWith(['defaults', 'rw', 'suid', 'dev', 'exec', 'async', 'atime']);
    expect(m.options).toContain('rw');
    expect(m.options).not.toContain('nosuid');
    expect(m.options).not.toContain('noexec');
  },
);

req('C-MOUNT-OPT-ATIME', 'mount options noatime, nodiratime, strictatime, relatime are applied', async () => {
  const a = await tmpfsWith(['noatime', 'nodiratime']);
  expect(a.options).toEqual(expect.arrayContaining(['noatime', 'nodiratime']));
  const b = await tmpfsWith(['strictatime']);
  expect(b.options).not.toContain('relatime');
  expect(b.options).not.toContain('noatime');
  const c = await tmpfsWith(['relatime']);
  expect(c.options).toContain('relatime');
});

req('C-MOUNT-OPT-SYNC', 'mount options sync and dirsync are applied', async () => {
  const m = await tmpfsWith(['sync', 'dirsync']);
  expect(m.superOptions).toEqual(expect.arrayContaining(['sync', 'dirsync']));
});

req('C-MOUNT-OPT-NOSYMFOLLOW', 'mount option nosymfollow is applied (SHOULD)', async () => {
  const m = await tmpfsWith(['nosymfollow']);
  expect(m.options).toContain('nosymfollow');
});

req(
  'C-MOUNT-OPT-FS',
  'options mount(8) does not know are passed to the filesystem (tmpfs size, mode)',
  async () => {
    const m = await tmpfsWith(['size=3m', 'mode=710']);
    expect(m.superOptions).toEqual(expect.arrayContaining(['size=3072k', 'mode=710']));
  },
);

req(
  'C-MOUNT-OPT-PROPAGATION',
  'mount options shared, slave, private, unbindable (and r-forms) set propagation',
  async () => {
    const { report } = await s.run(
      s.bundle((c) => {
        c.mounts.push(
          { destination: '/data/shared', type: 'tmpfs', source: 'tmpfs', options: ['shared'] },
          { destination: '/data/rshared', type: 'tmpfs', source: 'tmpfs', options: ['rshared'] },
          { destination: '/data/private', type: 'tmpfs', source: 'tmpfs', options: ['private'] },
          { destination: '/data/unbindable', type: 'tmpfs', source: 'tmpfs', options: ['unbindable'] },
          { destination: '/data/runbindable', type: 'tmpfs', source: 'tmpfs', options: ['runbindable'] },
        );
      }),
    );
    const opt = (p: string) => mountAt(report, p)!.optional.join(' ');
    expect(opt('/data/shared')).toMatch(/shared:\d+/);
    expect(opt('/data/rshared')).toMatch(/shared:\d+/);
    expect(opt('/data/private')).not.toMatch(/shared|master/);
    expect(opt('/data/unbindable')).toMatch(/unbindable/);
    expect(opt('/data/runbindable')).toMatch(/unbindable/);
  },
);

req(
  'C-MOUNT-OPT-SLAVE',
  'mount options slave and rslave make a bind mount a slave of its source',
  async () => {
    const src = join(s.dir, `shared-src-${s.id('src')}`);
    mkdirSync(src);
    // the source is a shared mount of its own, so slave has a master to follow
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', src]).status).toBe(0);
    expect(spawnSync('mount', ['--make-shared', src]).status).toBe(0);
    try {
      const { report } = await s.run(
        s.bundle((c) => {
          c.mounts.push(
            { destination: '/data/slave', type: 'bind', source: src, options: ['bind', 'slave'] },
            { destination: '/data/rslave', type: 'bind', source: src, options: ['rbind', 'rslave'] },
          );
        }),
      );
      expect(mountAt(report, '/data/slave')!.optional.join(' ')).toMatch(/master:\d+/);
      expect(mountAt(report, '/data/rslave')!.optional.join(' ')).toMatch(/master:\d+/);
    } finally {
      spawnSync('umount', [src]);
    }
  },
);

req(
  'C-MOUNT-OPT-RRO',
  'mount option rro makes a bind mount and its submounts read-only (SHOULD)',
  async () => {
    const src = join(s.dir, `rro-src-${s.id('src')}`);
    mkdirSync(join(src, 'sub'), { recursive: true });
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', join(src, 'sub')]).status).toBe(0);
    try {
      const { report } = await s.run(
        s.bundle((c) => {
          c.mounts.push({ destination: '/data/rro', type: 'bind', source: src, options: ['rbind', 'rro'] });
          c.process.args = ['/checker', 'report', '--write', '/data/rro/x', '--write', '/data/rro/sub/x'];
        }),
      );
      expect(report.actions['write /data/rro/x']).toBe(EROFS);
      expect(report.actions['write /data/rro/sub/x']).toBe(EROFS);
    } finally {
      spawnSync('umount', [join(src, 'sub')]);
    }
  },
);

req('L-FS', '/proc, /sys, /dev/pts, /dev/shm are proc, sysfs, devpts and tmpfs', async () => {
  const { report } = await s.run(s.bundle());
  expect(mountAt(report, '/proc')?.fstype).toBe('proc');
  expect(mountAt(report, '/sys')?.fstype).toBe('sysfs');
  expect(mountAt(report, '/dev/pts')?.fstype).toBe('devpts');
  expect(mountAt(report, '/dev/shm')?.fstype).toBe('tmpfs');
});

req('L-DEV-DEFAULT', 'the default devices exist: null, zero, full, random, urandom, tty, ptmx', async () => {
  const devices = [
    '/dev/null',
    '/dev/zero',
    '/dev/full',
    '/dev/random',
    '/dev/urandom',
    '/dev/tty',
    '/dev/ptmx',
  ];
  const { report } = await s.run(
    s.bundle((c) => (c.process.args = ['/checker', 'report', ...devices.flatMap((d) => ['--file', d])])),
  );
  const want: Record<string, [number, number]> = {
    '/dev/null': [1, 3],
    '/dev/zero': [1, 5],
    '/dev/full': [1, 7],
    '/dev/random': [1, 8],
    '/dev/urandom': [1, 9],
    '/dev/tty': [5, 0],
  };
  for (const [path, [major, minor]] of Object.entries(want)) {
    expect(report.files[path], path).toMatchObject({ type: 'char', major, minor });
  }
  const ptmx = report.files['/dev/ptmx'];
  if (ptmx.type === 'symlink') expect(ptmx.link).toMatch(/^(\/dev\/)?pts\/ptmx$/);
  else expect(ptmx).toMatchObject({ type: 'char', major: 5, minor: 2 });
});

req(
  'L-DEV-SYMLINK',
  '/dev/fd, /dev/stdin, /dev/stdout, /dev/stderr are symlinks to /proc/self/fd',
  async () => {
    const links = ['/dev/fd', '/dev/stdin', '/dev/stdout', '/dev/stderr'];
    const { report } = await s.run(
      s.bundle((c) => (c.process.args = ['/checker', 'report', ...links.flatMap((d) => ['--file', d])])),
    );
    expect(report.files['/dev/fd']).toMatchObject({ type: 'symlink', link: '/proc/self/fd' });
    expect(report.files['/dev/stdin']).toMatchObject({ type: 'symlink', link: '/proc/self/fd/0' });
    expect(report.files['/dev/stdout']).toMatchObject({ type: 'symlink', link: '/proc/self/fd/1' });
    expect(report.files['/dev/stderr']).toMatchObject({ type: 'symlink', link: '/proc/self/fd/2' });
  },
);

req('L-DEV-CONF', 'linux.devices are available with their type, numbers, mode, uid and gid', async () => {
  const { report } = await s.run(
    s.bundle((c) => {
      c.linux.devices = [
        { path: '/dev/conf-null', type: 'c', major: 1, minor: 3, fileMode: 0o640, uid: 11, gid: 12 },
        { path: '/data/conf-fifo', type: 'p', fileMode: 0o600, uid: 0, gid: 0 },
      ];
      c.process.args = ['/checker', 'report', '--file', '/dev/conf-null', '--file', '/data/conf-fifo'];
    }),
  );
  expect(report.files['/dev/conf-null']).toMatchObject({
    type: 'char',
    major: 1,
    minor: 3,
    mode: 0o640,
    uid: 11,
    gid: 12,
  });
  expect(report.files['/data/conf-fifo']).toMatchObject({ type: 'fifo', mode: 0o600 });
});

req('L-DEV-CONFLICT', 'a file at a device path that does not match the device is an error', async () => {
  const b = s.bundle((c, bundle) => {
    writeFileSync(join(bundle, 'rootfs', 'data', 'not-a-device'), 'a regular file');
    c.linux.devices = [{ path: '/data/not-a-device', type: 'c', major: 1, minor: 3 }];
  });
  const id = s.id();
  expect((await s.createLogged(id, b)).status).not.toBe(0);
  expect(await s.state(id)).toBeUndefined();
});

req('L-MASKED', 'maskedPaths cannot be read: files read empty, directories are empty', async () => {
  const { report } = await s.run(
    s.bundle((c, bundle) => {
      writeFileSync(join(bundle, 'rootfs', 'data', 'secret'), 'secret');
      mkdirSync(join(bundle, 'rootfs', 'data', 'secret-dir'));
      writeFileSync(join(bundle, 'rootfs', 'data', 'secret-dir', 'f'), 'secret');
      c.linux.maskedPaths.push('/data/secret', '/data/secret-dir');
      c.process.args = [
        '/checker',
        'report',
        '--file',
        '/proc/kcore',
        '--file',
        '/data/secret',
        '--file',
        '/data/secret-dir',
      ];
    }),
  );
  expect(report.files['/data/secret'].content ?? '').toBe('');
  expect(report.files['/data/secret-dir'].entries ?? 0).toBe(0);
  expect(report.files['/proc/kcore'].content ?? '').toBe('');
});

req('L-RO-PATHS', 'readonlyPaths are read-only', async () => {
  const { report } = await s.run(
    s.bundle((c, bundle) => {
      mkdirSync(join(bundle, 'rootfs', 'data', 'ro'));
      c.linux.readonlyPaths.push('/data/ro');
      c.process.args = [
        '/checker',
        'report',
        '--mkdir',
        '/data/ro/x',
        '--write',
        '/proc/sys/kernel/hostname',
      ];
    }),
  );
  expect(report.actions['mkdir /data/ro/x']).toBe(EROFS);
  expect(report.actions['write /proc/sys/kernel/hostname']).toBe(EROFS);
});

req('L-ROOTPROP', 'rootfsPropagation: shared gives / a peer group, private gives it none', async () => {
  const shared = await s.run(s.bundle((c) => (c.linux.rootfsPropagation = 'shared')));
  expect(mountAt(shared.report, '/')!.optional.join(' ')).toMatch(/shared:\d+/);
  const priv = await s.run(s.bundle((c) => (c.linux.rootfsPropagation = 'private')));
  expect(mountAt(priv.report, '/')!.optional.join(' ')).not.toMatch(/shared|master/);
});
