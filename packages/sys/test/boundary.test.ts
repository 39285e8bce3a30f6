// Integration: the launcher holds the host boundary by construction (runs as root).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLONE_NEWNS,
  isTrusted,
  type LaunchError,
  launch,
  launcherPath,
  MS,
  type PlanStep,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-boundary-'));
afterAll(() => {
  spawnSync('umount', ['-R', '-l', dir]);
  rmSync(dir, { recursive: true, force: true });
});

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** A host file the container must never touch: distinctive owner, mode, content. */
function victim(name: string) {
  const path = join(dir, name);
  writeFileSync(path, 'host secret\n');
  chmodSync(path, 0o600);
  spawnSync('chown', ['4242:4243', path]);
  const before = statSync(path);
  return {
    path,
    unchanged() {
      const now = statSync(path);
      expect({ uid: now.uid, gid: now.gid, mode: now.mode, ino: now.ino }).toEqual({
        uid: before.uid,
        gid: before.gid,
        mode: before.mode,
        ino: before.ino,
      });
      expect(readFileSync(path, 'utf8')).toBe('host secret\n');
    },
  };
}

/** A plan that makes a private mount namespace, opens `rootfs` as the root, runs `steps`, and exits. */
async function inRootfs(rootfs: string, steps: PlanStep[], walk = false): Promise<LaunchError | undefined> {
  const l = launch(
    [
      { op: 'clone', flags: CLONE_NEWNS, detach: false },
      { op: 'mount', target: '/', flags: MS.SLAVE | MS.REC },
      ...(walk ? [{ op: 'testWalk', on: true } as PlanStep] : []),
      { op: 'root', path: rootfs },
      ...steps,
      { op: 'exec', path: '/bin/true', argv: ['true'], env: [] },
    ],
    { stdio: ['ignore', 'ignore', 'ignore'] },
  );
  try {
    await l.expect('pid');
    await l.expect('eof');
    return undefined;
  } catch (e) {
    return e as LaunchError;
  } finally {
    await l.exited;
  }
}

function rootfsWith(name: string, build: (root: string) => void): string {
  const root = join(dir, name);
  mkdirSync(root, { recursive: true });
  build(root);
  return root;
}

for (const walk of [false, true]) {
  const how = walk ? 'the user-space walk (no openat2)' : 'openat2(RESOLVE_IN_ROOT)';
  describe(`paths in the root, resolved by fd with ${how}`, () => {
    it('never chowns or chmods a host file through a device path that is a symlink', async () => {
      const v = victim(`dev-null-${walk}`);
      const root = rootfsWith(`r-devnull-${walk}`, (r) => {
        mkdirSync(join(r, 'dev'));
        symlinkSync(`/proc/self/root${v.path}`, join(r, 'dev/null'));
        symlinkSync(`../../../../../../..${v.path}`, join(r, 'dev/zero'));
      });
      const zero = await inRootfs(
        root,
        [{ op: 'mknod', path: '/dev/zero', mode: 0o20666, major: 1, minor: 5, uid: 0, gid: 0, inRoot: true }],
        walk,
      );
      expect(zero?.message).toMatch(/^create device \/dev\/zero: EEXIST/);
      const err = await inRootfs(
        root,
        [{ op: 'mknod', path: '/dev/null', mode: 0o20666, major: 1, minor: 3, uid: 0, gid: 0, inRoot: true }],
        walk,
      );
      // something else at a device path is an error (config-linux.md), and it is never followed
      expect(err?.message).toMatch(/^create device \/dev\/null: EEXIST/);
      v.unchanged();
      // the same node already there is fine
      const same = await inRootfs(
        rootfsWith(`r-devsame-${walk}`, (r) => {
          mkdirSync(join(r, 'dev'));
          spawnSync('mknod', ['-m', '666', join(r, 'dev/null'), 'c', '1', '3']);
        }),
        [{ op: 'mknod', path: '/dev/null', mode: 0o20666, major: 1, minor: 3, uid: 0, gid: 0, inRoot: true }],
        walk,
      );
      expect(same).toBeUndefined();
      expect(lstatSync(join(root, 'dev/null')).isSymbolicLink()).toBe(true);
    });

    it('makes devices, directories and mount points inside the root when a parent links out', async () => {
      const outside = join(dir, `outside-${walk}`);
      mkdirSync(outside);
      const root = rootfsWith(`r-parent-${walk}`, (r) => {
        symlinkSync(outside, join(r, 'abs')); // absolute: means <root>/<outside> inside the root
        symlinkSync(`../../../../../..${outside}`, join(r, 'dotdot'));
        symlinkSync('/nowhere', join(r, 'dangling'));
        mkdirSync(join(r, outside), { recursive: true }); // the image has the directory the links name
      });
      const err = await inRootfs(
        root,
        [
          {
            op: 'mknod',
            path: '/abs/cpu/0/node',
            mode: 0o20666,
            major: 1,
            minor: 3,
            uid: 7,
            gid: 7,
            inRoot: true,
          },
          { op: 'mkdir', path: '/dotdot/made/here', mode: 0o755, inRoot: true },
          { op: 'mkfile', path: '/abs/file', mode: 0o644, inRoot: true },
          { op: 'symlink', target: '/etc/passwd', path: '/dotdot/link', inRoot: true },
        ],
        walk,
      );
      expect(err).toBeUndefined();
      expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(outside);
      expect(spawnSync('ls', ['-A', outside], { encoding: 'utf8' }).stdout).toBe('');
      // everything landed inside the root, parents of the device included (podman's /dev/cpu/0/cpuid)
      const node = statSync(join(root, outside, 'cpu/0/node'));
      expect(node.isCharacterDevice()).toBe(true);
      expect(node.uid).toBe(7);
      expect(node.mode & 0o7777).toBe(0o666);
      expect(statSync(join(root, outside, 'made/here')).isDirectory()).toBe(true);
      expect(existsSync(join(root, outside, 'file'))).toBe(true);
      expect(readlinkSync(join(root, outside, 'link'))).toBe('/etc/passwd');
      // a parent that is a dangling link: made where it leads inside the root (runc's
      // MkdirAllInRoot), never on the host
      const err2 = await inRootfs(
        root,
        [
          { op: 'mkdir', path: '/dangling/x', mode: 0o755, inRoot: true },
          { op: 'mkfile', path: '/dangling/y/f', mode: 0o644, inRoot: true },
        ],
        walk,
      );
      expect(err2).toBeUndefined();
      expect(statSync(join(root, 'nowhere/x')).isDirectory()).toBe(true);
      expect(statSync(join(root, 'nowhere/y/f')).isFile()).toBe(true);
      expect(existsSync('/nowhere')).toBe(false);
    });

    it('refuses magic links (/proc/self/root, /proc/self/fd) anywhere in a container path', async () => {
      const outside = join(dir, `magic-${walk}`);
      mkdirSync(outside);
      const root = rootfsWith(`r-magic-${walk}`, (r) => {
        mkdirSync(join(r, 'proc'));
        symlinkSync(`/proc/self/root${outside}`, join(r, 'escape'));
      });
      // the container's /proc, then a mount point whose path goes through /proc/self/root
      const err = await inRootfs(
        root,
        [
          { op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: 0, inRoot: true },
          { op: 'mkdir', path: '/escape/sub', mode: 0o755, inRoot: true },
        ],
        walk,
      );
      expect(err?.message).toMatch(/create directory \/escape\/sub: (ELOOP|EXDEV|ENOENT)/);
      expect(spawnSync('ls', ['-A', outside], { encoding: 'utf8' }).stdout).toBe('');
      const err2 = await inRootfs(
        root,
        [
          { op: 'mount', source: 'proc', target: '/proc', fstype: 'proc', flags: 0, inRoot: true },
          {
            op: 'mount',
            source: 'tmpfs',
            target: '/proc/self/fd/3',
            fstype: 'tmpfs',
            flags: 0,
            inRoot: true,
          },
        ],
        walk,
      );
      expect(err2?.message).toMatch(/mount tmpfs on \/proc\/self\/fd\/3: open mount target: (ELOOP|EXDEV)/);
    });
  });
}

describe('procfs writes', () => {
  it('go through the verified procfs and never across a mount below it', async () => {
    // a file bind-mounted over a procfs file must not redirect the write (the CVE-2025-52881 class)
    const decoy = join(dir, 'decoy');
    writeFileSync(decoy, 'untouched\n');
    const l = launch(
      [
        { op: 'clone', flags: CLONE_NEWNS, detach: false },
        { op: 'mount', target: '/', flags: MS.SLAVE | MS.REC },
        { op: 'mount', source: decoy, target: '/proc/self/oom_score_adj', flags: MS.BIND },
        { op: 'procWrite', path: 'self/oom_score_adj', content: '100' },
        { op: 'exec', path: '/bin/true', argv: ['true'], env: [] },
      ],
      { stdio: ['ignore', 'ignore', 'ignore'] },
    );
    // the launcher's procfs handle was opened at start-up, before this mount existed: the write
    // lands on procfs. A write through a fresh lookup of /proc would cross the bind mount.
    await l.expect('pid');
    await expect(l.expect('eof')).resolves.toMatchObject({ kind: 'eof' });
    expect(await l.exited).toBe(0);
    expect(readFileSync(decoy, 'utf8')).toBe('untouched\n');
  });
});

describe('the launcher binary', () => {
  it('runs from a sealed memfd copy: its /proc/PID/exe cannot be written, even after it exits', async () => {
    // a copy, so that a regression corrupts the copy and not the build
    const copy = join(dir, 'berth-launcher-copy');
    copyFileSync(launcherPath(), copy);
    chmodSync(copy, 0o755);
    const before = sha(copy);
    const l = launch(
      [
        { op: 'clone', flags: CLONE_NEWNS, detach: false },
        { op: 'sync', id: 1 },
        { op: 'exec', path: '/bin/true', argv: ['true'], env: [] },
      ],
      { stdio: ['ignore', 'ignore', 'ignore'], launcher: copy },
    );
    const { pid } = await l.expect('pid');
    await l.expect('sync');
    expect(readlinkSync(`/proc/${pid}/exe`)).toMatch(/^\/memfd:berth-launcher/);
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/Uid:\s+0/);
    // what a process in the container would do (CVE-2019-5736): hold the exe, write once it is free
    const held = openSync(`/proc/${pid}/exe`, 'r');
    expect(() => writeFileSync(`/proc/${pid}/exe`, 'pwned')).toThrow(/EPERM|ETXTBSY|EACCES/);
    l.release();
    await l.expect('eof');
    await l.exited;
    expect(() => writeFileSync(`/proc/self/fd/${held}`, 'pwned')).toThrow(/EPERM|EACCES/);
    closeSync(held);
    expect(sha(copy)).toBe(before);
  });

  it('as root, is never one that an environment variable names or that others could write', () => {
    const evil = join(dir, 'evil-launcher');
    const marker = join(dir, 'evil-ran');
    writeFileSync(evil, `#!/bin/sh\ntouch ${marker}\n`);
    chmodSync(evil, 0o755);
    const script = `import('${new URL('../dist/index.js', import.meta.url).pathname}').then((m) => console.log(m.launcherPath()))`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      env: { ...process.env, BERTH_LAUNCHER: evil, CC: evil },
    });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).not.toBe(evil);
    expect(existsSync(marker)).toBe(false);
    expect(isTrusted(r.stdout.trim())).toBe(true);
    // a launcher that others could replace is not trusted
    const loose = join(dir, 'loose-launcher');
    copyFileSync(launcherPath(), loose);
    chmodSync(loose, 0o777);
    expect(isTrusted(loose)).toBe(false);
    chmodSync(loose, 0o755);
    expect(isTrusted(loose)).toBe(false); // in a directory under /tmp: world-writable (sticky) above it
  });
});

describe('processes reached through pidfds', () => {
  const startTime = (pid: number) =>
    Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19]);

  it('never signals or joins a process that is not the one that started at the recorded time', async () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const pid = other.pid!;
      const wrong = startTime(pid) + 1; // the record's process is gone; this pid now belongs to another
      for (const step of [
        { op: 'pidfdKill', pid, startTime: wrong, signal: 9 } as PlanStep,
        { op: 'pidfdSetns', pid, startTime: wrong, flags: CLONE_NEWNS } as PlanStep,
      ]) {
        const l = launch([step, { op: 'exec', path: '/bin/true', argv: ['true'], env: [] }], {
          stdio: ['ignore', 'ignore', 'ignore'],
        });
        await expect(l.expect('eof')).rejects.toMatchObject({ errno: 'ESRCH' });
        await l.exited;
      }
      expect(other.exitCode).toBe(null);
      expect(existsSync(`/proc/${pid}`)).toBe(true);
      // with the right start time it is that process
      const l = launch([{ op: 'pidfdKill', pid, startTime: startTime(pid), signal: 15 }], {
        stdio: ['ignore', 'ignore', 'ignore'],
      });
      await l.expect('eof');
      await l.exited;
      if (other.exitCode === null && other.signalCode === null)
        await new Promise((r) => other.once('exit', r));
      expect(other.signalCode).toBe('SIGTERM');
    } finally {
      other.kill('SIGKILL');
    }
  });
});
