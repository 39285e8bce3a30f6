// Integration: lifecycle bugs with a test each (issue 13): run()'s cleanup, run -d when start
// fails, exec's lock, the container lock's file (runs as root, real containers).
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cgroup, discoverHierarchy } from '@berth/cgroups';
import { defaultSpec, formatSpec, type Spec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { ContainerLock, Runtime } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-runtime-health-'));
const root = join(dir, 'run');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const unique = (p: string) => `${p}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

function bundle(args: string[], edit: (s: Spec) => void = () => {}): string {
  const b = mkdtempSync(join(dir, 'bundle-'));
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(b, 'rootfs', d), { recursive: true });
  copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
  for (const applet of ['sh', 'sleep', 'echo', 'touch', 'true'])
    symlinkSync('busybox', join(b, 'rootfs/bin', applet));
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  edit(spec);
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return b;
}

/** Where each hierarchy of this host keeps the container's cgroup (default cgroupsPath /berth/ID). */
async function cgroupDirs(id: string): Promise<string[]> {
  const h = await discoverHierarchy();
  const mounts = new Set([...Object.values(h.v1), ...(h.unified ? [h.unified] : [])]);
  return [...mounts].map((m) => join(m, 'berth', id));
}

const leftovers = async (id: string) => ({
  state: existsSync(join(root, id)),
  cgroups: (await cgroupDirs(id)).filter((d) => existsSync(d)),
});

describe('run', () => {
  it("returns the container's exit status when the cleanup after it fails (and says so)", async () => {
    const warnings: string[] = [];
    const rt = new Runtime({ root, warn: (m) => warnings.push(m) });
    const id = unique('cleanup');
    const [first] = await cgroupDirs(id);
    // a child cgroup made on the host inside the container's, with a mount on it: removing it
    // (children go first) and so the container's cgroup fails (EBUSY)
    const stuck = join(first as string, 'stuck');
    const b = bundle(['sh', '-c', 'exit 7'], (s) => {
      s.hooks = {
        createRuntime: [
          { path: '/bin/sh', args: ['sh', '-c', `mkdir ${stuck} && mount -t tmpfs berth-test ${stuck}`] },
        ],
      };
    });
    try {
      expect(await rt.run(id, b, { stdio: ['ignore', 'ignore', 'inherit'] })).toBe(7);
      await rt.close(); // run returns at the exit; its teardown (and its warning) completes by close()
      expect(warnings.join('\n')).toMatch(/cleanup: .*still busy/);
    } finally {
      spawnSync('umount', [stuck]);
      if (existsSync(stuck)) rmdirSync(stuck);
      await rt.delete(id, { force: true }).catch(() => undefined);
    }
    expect(await leftovers(id)).toEqual({ state: false, cgroups: [] });
  }, 60_000);

  it('run detached removes the container again when start fails', async () => {
    const warnings: string[] = [];
    const rt = new Runtime({ root, warn: (m) => warnings.push(m) });
    const id = unique('detach');
    // the startContainer hook tells the test it runs; the test stops the container's process so
    // that start cannot release it, then kills it: start fails with "its process exited"
    const b = bundle(['sleep', '60'], (s) => {
      s.root = { path: 'rootfs', readonly: false };
      s.hooks = { startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'touch /tmp/go; sleep 0.5'] }] };
    });
    const go = join(b, 'rootfs/tmp/go');
    const running = rt.run(id, b, { detach: true, stdio: ['ignore', 'ignore', 'ignore'] });
    const outcome = running.then(
      () => undefined,
      (e: Error) => e,
    );
    try {
      for (let i = 0; i < 1000 && !existsSync(go); i++) await new Promise((r) => setTimeout(r, 5));
      expect(existsSync(go)).toBe(true);
      const pid = JSON.parse(readFileSync(join(root, id, 'state.json'), 'utf8')).pid as number;
      process.kill(pid, 'SIGSTOP');
      // the hook has exited once the container's cgroup holds only its (stopped) process again:
      // start now waits for a release that cannot come; then the process dies
      const cg = await Cgroup.load(`/berth/${id}`);
      for (let i = 0; i < 2000 && (await cg.pids()).join() !== String(pid); i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(await cg.pids()).toEqual([pid]);
      await new Promise((r) => setTimeout(r, 100));
      process.kill(pid, 'SIGKILL');
      const err = await outcome;
      expect(err?.message).toMatch(/cannot start container .*: its process exited/);
      expect(await leftovers(id)).toEqual({ state: false, cgroups: [] });
    } finally {
      await outcome;
      await rt.delete(id, { force: true }).catch(() => undefined);
    }
  }, 60_000);
});

describe('exec', () => {
  it('holds the container lock until its process has joined: a delete meanwhile waits for it', async () => {
    const rt = new Runtime({ root });
    const id = unique('exec');
    await rt.create(id, bundle(['sleep', '60']), { stdio: ['ignore', 'ignore', 'ignore'] });
    await rt.start(id);
    try {
      // exec is called first and takes the lock; delete asks for it at once
      const exec = rt.exec(
        id,
        { args: ['sleep', '30'], cwd: '/' },
        { stdio: ['ignore', 'ignore', 'ignore'] },
      );
      const del = rt.delete(id, { force: true });
      // delete waited until the exec'd process was in the container, then killed it with the rest
      expect(await exec).toBe(137);
      await del;
    } finally {
      await rt.delete(id, { force: true }).catch(() => undefined);
    }
    expect(await leftovers(id)).toEqual({ state: false, cgroups: [] });
  }, 60_000);
});

describe('ContainerLock', () => {
  it('locks ids of any valid length, each its own lock, and leaves no lock file for an id that was never made', async () => {
    for (const id of ['a', 'x'.repeat(75), 'y'.repeat(200), 'z'.repeat(1024)]) {
      const lock = await ContainerLock.acquire(root, id);
      // a second holder is refused while the first holds it
      await expect(ContainerLock.acquire(root, id, 50)).rejects.toMatchObject({ code: 'ELOCKED' });
      lock.release();
      (await ContainerLock.acquire(root, id, 1000)).release();
    }
    // two long ids that share a prefix are two locks
    const a = await ContainerLock.acquire(root, `${'p'.repeat(150)}-a`);
    const b = await ContainerLock.acquire(root, `${'p'.repeat(150)}-b`, 1000);
    a.release();
    b.release();
    expect(existsSync(root) ? readdirSync(root).filter((n) => n.includes('ppp')) : []).toEqual([]);
    expect(readdirSync(join(root, '@locks'))).toEqual([]);
  });

  it("is a file only the runtime's user can open (no other user or container can take it first), gone with the container", async () => {
    const id = unique('locked');
    const rt = new Runtime({ root });
    await rt.create(id, bundle(['sleep', '60']));
    try {
      const locks = join(root, '@locks');
      expect(statSync(locks).mode & 0o777).toBe(0o700);
      expect(readdirSync(locks)).toContain(id);
      // another user cannot open it to hold it (an abstract socket name, as before, anyone could bind)
      const squat = spawnSync(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          'sh',
          '-c',
          `flock -n -x '${join(locks, id)}' true && echo took`,
        ],
        { encoding: 'utf8' },
      );
      expect(squat.stdout).not.toContain('took');
      expect(squat.stderr).toMatch(/Permission denied/);
      // while root's own holder keeps every command waiting
      const holder = await ContainerLock.acquire(root, id);
      setTimeout(() => holder.release(), 300);
      const t0 = Date.now();
      await rt.kill(id, 9);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    } finally {
      await rt.delete(id, { force: true });
    }
    expect(readdirSync(join(root, '@locks'))).not.toContain(id);
  }, 90_000);
});
