// Integration: real system calls through koffi (needs root).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { libc, MS, SysError } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-libc-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mounted = (path: string) =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[1] === path);

describe('libc()', () => {
  it('mounts and unmounts for real', async () => {
    const sys = await libc();
    sys.mount('tmpfs', dir, 'tmpfs', MS.NOSUID, 'size=1m');
    try {
      expect(mounted(dir)).toBe(true);
    } finally {
      sys.umount(dir);
    }
    expect(mounted(dir)).toBe(false);
  });

  it('turns errno into a typed error naming the call and path', async () => {
    const sys = await libc();
    let err: unknown;
    try {
      sys.mount('none', join(dir, 'missing'), 'tmpfs', 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SysError);
    expect((err as SysError).errno).toBe('ENOENT');
    expect((err as SysError).message).toBe(
      `mount ${join(dir, 'missing')}: ENOENT (no such file or directory)`,
    );
  });

  it('opens a pidfd and signals through it', async () => {
    const sys = await libc();
    const { spawn } = await import('node:child_process');
    const child = spawn('/bin/busybox', ['sleep', '30'], { stdio: 'ignore' });
    const exited = new Promise<NodeJS.Signals | null>((r) => child.on('exit', (_c, s) => r(s)));
    const fd = sys.pidfdOpen(child.pid!);
    sys.pidfdSendSignal(fd, 15);
    sys.close(fd);
    expect(await exited).toBe('SIGTERM');
  });

  it('answers prctl (PR_GET_DUMPABLE)', async () => {
    const sys = await libc();
    expect(sys.prctl(3)).toBe(1);
  });
});
