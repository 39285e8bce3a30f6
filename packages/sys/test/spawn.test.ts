// Integration: the launcher started with posix_spawn (needs root for namespaces).
import { createHash } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLONE_NEWPID, CLONE_NEWUTS, launch, loadSpawner, type Spawner } from '../src/index.js';
import { BUSYBOX, sh } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-spawn-test-'));
let spawner: Spawner;
beforeAll(async () => {
  const s = await loadSpawner();
  if (!s) throw new Error('posix_spawn with closefrom is missing from this C library (glibc >= 2.34 has it)');
  spawner = s;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An fd Node did not open close-on-exec (as a C library or an embedding program may): the launcher must not get it. */
function leakyFd(path: string): number {
  const koffi = createRequire(import.meta.url)('koffi');
  const lib = koffi.load('libc.so.6');
  const fcntl = lib.func('int fcntl(int fd, int cmd, ...)');
  const fd = openSync(path, 'w');
  expect(fcntl(fd, 2 /* F_SETFD */, 'int', 0)).toBe(0);
  expect(fcntl(fd, 1 /* F_GETFD */, 'int', 0)).toBe(0);
  return fd;
}

describe('launcher through posix_spawn', () => {
  it('runs the plan: pid, sync, release, exec; the container writes to the fd it was given', async () => {
    const outFile = join(dir, 'out');
    const out = openSync(outFile, 'w');
    try {
      const l = launch(
        [
          { op: 'clone', flags: CLONE_NEWPID | CLONE_NEWUTS, detach: false },
          { op: 'sync', id: 1 },
          { op: 'sethostname', name: 'berth-spawn-test' },
          sh('echo "$$ $(hostname)"'),
        ],
        { stdio: ['ignore', out, 'inherit'], spawner },
      );
      expect(l.process.stdin).toBeNull();
      expect((await l.expect('pid')).pid).toBeGreaterThan(1);
      expect((await l.expect('sync')).id).toBe(1);
      l.release();
      await l.expect('eof');
      expect(await l.exited).toBe(0);
    } finally {
      closeSync(out);
    }
    expect(readFileSync(outFile, 'utf8').trim()).toBe('1 berth-spawn-test');
  });

  it("exits with the container's status, 128+N for signal N", async () => {
    const run = (script: string) =>
      launch([{ op: 'clone', flags: CLONE_NEWUTS, detach: false }, sh(script)], {
        stdio: ['ignore', 'ignore', 'inherit'],
        spawner,
      }).exited;
    expect(await Promise.all([run('exit 7'), run('kill -KILL $$'), run('exit 0')])).toEqual([7, 137, 0]);
  });

  it('the launcher holds only its stdio and its sync socket: no other fd of this process, close-on-exec or not', async () => {
    const leak = leakyFd(join(dir, 'host-file'));
    try {
      // the launcher stops at its first step, before any clone: look at its fds then
      const l = launch([{ op: 'sync', id: 9 }, { op: 'clone', flags: 0, detach: false }, sh('exit 0')], {
        stdio: ['ignore', 'ignore', 'inherit'],
        spawner,
      });
      expect((await l.expect('sync')).id).toBe(9);
      const fdDir = `/proc/${l.process.pid}/fd`;
      const fds = Object.fromEntries(readdirSync(fdDir).map((fd) => [fd, readlinkSync(join(fdDir, fd))]));
      // it runs from a sealed memfd copy (made once per process, or by the launcher itself)
      const exe = readlinkSync(`/proc/${l.process.pid}/exe`);
      l.abort();
      await expect(l.expect('eof')).rejects.toThrow(/parent aborted/);
      // 0–2: stdio; 4: the sync socket (the plan pipe, 3, is closed once read); the launcher's
      // own verified /proc fd. Nothing else: not the leaky file, not Node's epoll or pipes.
      const targets = Object.values(fds);
      expect(targets.some((t) => t.endsWith('host-file'))).toBe(false);
      expect(
        Object.keys(fds).filter((fd) => !['0', '1', '2', '4'].includes(fd) && fds[fd] !== '/proc'),
      ).toEqual([]);
      expect(fds['4']).toMatch(/^socket:/);
      expect(fds['0']).toBe('/dev/null');
      expect(exe).toMatch(/^\/memfd:berth-launcher/);
    } finally {
      closeSync(leak);
    }
  });

  it('preserved fds arrive as 3, 4, … and the plan and sync fds follow them', async () => {
    const outFile = join(dir, 'preserved');
    const out = openSync(outFile, 'w');
    try {
      // the launcher maps the caller's fd `out` to 3: the container writes there
      const l = launch([{ op: 'clone', flags: 0, detach: false }, sh('echo via-fd-3 >&3')], {
        stdio: ['ignore', 'ignore', 'inherit'],
        preserveFds: [out],
        spawner,
      });
      expect(await l.exited).toBe(0);
    } finally {
      closeSync(out);
    }
    expect(readFileSync(outFile, 'utf8')).toBe('via-fd-3\n');
  });

  it('waits for the exit without blocking the event loop', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    try {
      const l = launch([{ op: 'clone', flags: 0, detach: false }, sh('sleep 0.4')], {
        stdio: ['ignore', 'ignore', 'inherit'],
        spawner,
      });
      expect(await l.exited).toBe(0);
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(5);
  });

  it('a launcher that cannot be run is an error naming it', async () => {
    const l = launch([sh('exit 0')], {
      launcher: join(dir, 'no-such-launcher'),
      stdio: ['ignore', 'ignore', 'inherit'],
      spawner,
    });
    await expect(l.expect('pid')).rejects.toThrow(/no-such-launcher.*(ENOENT|No such file)/);
    await expect(l.exited).rejects.toThrow(/cannot run the launcher/);
  });

  it("the spawn is made off the event loop: launch returns before the launcher has exec'd", async () => {
    const l = launch([{ op: 'clone', flags: 0, detach: false }, sh('exit 3')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      spawner,
    });
    expect(l.process.pid).toBeUndefined(); // posix_spawn is still under way on libuv's thread pool
    await l.expect('pid');
    expect(l.process.pid).toBeGreaterThan(0);
    expect(await l.exited).toBe(3);
  });

  it("the launcher's messages are seen only once its spawn has completed here: process.pid is known with them", async () => {
    for (let i = 0; i < 20; i++) {
      const l = launch([{ op: 'sync', id: 7 }, sh('exit 0')], {
        stdio: ['ignore', 'ignore', 'inherit'],
        spawner,
      });
      // busy: the spawn's completion and the launcher's first message are both pending at once
      const until = Date.now() + 30;
      while (Date.now() < until);
      expect((await l.expect('sync')).id).toBe(7);
      expect(l.process.pid).toBeGreaterThan(0);
      l.release();
      expect(await l.exited).toBe(0);
    }
  });

  it("a kill made before the launcher has exec'd reaches it once it has", async () => {
    // no clone: the launcher itself becomes the sleep, so that the kill leaves nothing running
    const l = launch([sh('sleep 30')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      spawner,
    });
    expect(l.process.pid).toBeUndefined();
    expect(l.process.kill('SIGKILL')).toBe(true);
    expect(await l.exited).toBe(128 + 9);
  });

  it('a plan larger than an unread pipe holds: sent once the launcher runs, and no hang when it cannot run', async () => {
    const big = { ...sh('exit 5'), env: ['PATH=/bin', `PAD=${'x'.repeat(20_000)}`] };
    const ok = launch(undefined, { stdio: ['ignore', 'ignore', 'inherit'], spawner });
    ok.sendPlan([{ op: 'clone', flags: 0, detach: false }, big]);
    expect(await ok.exited).toBe(5);
    const missing = launch(undefined, {
      launcher: join(dir, 'no-such-launcher'),
      stdio: ['ignore', 'ignore', 'inherit'],
      spawner,
    });
    missing.sendPlan([big]); // returns: the write waits for a launcher that never comes
    await expect(missing.exited).rejects.toThrow(/no-such-launcher/);
  });

  it('kill after the exit is refused (the pid may belong to another process by then)', async () => {
    const l = launch([{ op: 'clone', flags: 0, detach: false }, sh('exit 4')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      spawner,
    });
    expect(await l.exited).toBe(4);
    expect(l.process.kill('SIGKILL')).toBe(false);
  });

  it('runs a sealed copy only of bytes that have the hash the caller verified', () => {
    // the copy is made from the file read by name: a file changed since its check is refused
    const file = join(dir, 'verified-prog');
    copyFileSync(BUSYBOX, file);
    const good = createHash('sha256').update(readFileSync(file)).digest('hex');
    expect(() => spawner.executable(file, 'f'.repeat(64))).toThrow(
      /is not the f{64} it was verified to have/,
    );
    expect(spawner.executable(file, good)).toMatch(/^\/proc\/\d+\/fd\/\d+$/);
  });
});
