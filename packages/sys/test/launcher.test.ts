// Integration: runs the real launcher (needs root for namespaces).
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, type LaunchError, launch, MS } from '../src/index.js';
import { sh, testDir } from './helpers.js';

const dir = testDir('berth-sys-test-');

function collect(l: ReturnType<typeof launch>): Promise<string> {
  let out = '';
  l.process.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return l.exited.then(() => out);
}

describe('launcher', () => {
  it('creates namespaces, runs steps in order and execs', async () => {
    const l = launch(
      [
        { op: 'clone', flags: CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWNS, detach: false },
        { op: 'sync', id: 1 },
        { op: 'sethostname', name: 'berth-launch-test' },
        sh('echo "$$ $(hostname)"'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const out = collect(l);
    const pid = await l.expect('pid');
    expect(pid.pid).toBeGreaterThan(1);
    expect((await l.expect('sync')).id).toBe(1);
    l.release();
    await l.expect('eof');
    expect(await l.exited).toBe(0);
    expect((await out).trim()).toBe('1 berth-launch-test');
  });

  it("exits with the container's status, 128+N for signal N", async () => {
    const run = async (script: string) => {
      const l = launch([{ op: 'clone', flags: CLONE_NEWUTS, detach: false }, sh(script)], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      return l.exited;
    };
    expect(await run('exit 7')).toBe(7);
    expect(await run('kill -KILL $$')).toBe(137);
  });

  it('names the failing step, syscall and errno', async () => {
    const l = launch(
      [
        { op: 'clone', flags: CLONE_NEWNS, detach: false },
        { op: 'mount', target: '/', flags: MS.REC | MS.SLAVE },
        { op: 'mount', source: 'none', target: dir, fstype: 'nosuchfs', flags: 0 },
        sh('echo never'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const out = collect(l);
    await l.expect('pid');
    const err = (await l.expect('eof').catch((e: unknown) => e)) as LaunchError;
    expect(err.name).toBe('LaunchError');
    expect(err.stepIndex).toBe(2);
    expect(err.errno).toBe('ENODEV');
    expect(err.message).toBe(`mount none on ${dir}: ENODEV (no such device)`);
    expect(await l.exited).toBe(1);
    expect(await out).toBe('');
  });

  it('skips optional steps whose path does not exist, fails required ones', async () => {
    const ok = launch(
      [
        { op: 'clone', flags: CLONE_NEWNS, detach: false },
        { op: 'mask', path: join(dir, 'missing'), optional: true },
        sh('exit 0'),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    expect(await ok.exited).toBe(0);
    const bad = launch(
      [
        { op: 'clone', flags: CLONE_NEWNS, detach: false },
        { op: 'chdir', path: join(dir, 'missing') },
        sh('exit 0'),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    await bad.expect('pid');
    await expect(bad.expect('eof')).rejects.toThrow(/change to working directory .*missing: ENOENT/);
  });

  it('stops at a sync point when the parent aborts: no later step runs', async () => {
    const marker = join(dir, 'marker');
    const l = launch(
      [{ op: 'clone', flags: 0, detach: false }, { op: 'sync', id: 5 }, sh(`touch ${marker}`)],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    await l.expect('pid');
    await l.expect('sync');
    l.abort();
    await expect(l.expect('eof')).rejects.toThrow(/parent aborted/);
    expect(await l.exited).toBe(1);
    expect(existsSync(marker)).toBe(false);
  });

  it('in detached mode returns at once and reports ready from the container', async () => {
    const fifo = join(dir, 'exec.fifo');
    const l = launch(
      [
        { op: 'mknod', path: fifo, mode: 0o010622, major: 0, minor: 0, uid: 0, gid: 0 },
        { op: 'clone', flags: CLONE_NEWPID | CLONE_NEWNS, detach: true },
        { op: 'fifoOpen', path: fifo },
        { op: 'ready' },
        { op: 'fifoWait' },
        sh('exit 0'),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const { pid } = await l.expect('pid');
    expect(await l.exited).toBe(0); // the launcher is gone, the container waits
    await l.expect('ready');
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    process.kill(pid, 'SIGKILL');
    l.detach();
    for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 10));
    rmSync(fifo);
  });
});

describe('Launch.expect', () => {
  it('leaves no timer behind when the launcher ends before the awaited message', async () => {
    const made: NodeJS.Timeout[] = [];
    const cleared = new Set<unknown>();
    const realSet = globalThis.setTimeout;
    const realClear = globalThis.clearTimeout;
    const setSpy = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      const t = realSet(fn, ms);
      if (ms === 2000) made.push(t);
      return t;
    }) as typeof setTimeout);
    const clearSpy = vi.spyOn(globalThis, 'clearTimeout').mockImplementation(((t?: NodeJS.Timeout) => {
      cleared.add(t);
      realClear(t);
    }) as typeof clearTimeout);
    try {
      const l = launch([{ op: 'clone', flags: 0, detach: false }, sh('exit 3')], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      await l.expect('pid');
      await expect(l.expect('sync')).rejects.toThrow(
        'container init exited before setup finished (launcher exit status 3)',
      );
    } finally {
      setSpy.mockRestore();
      clearSpy.mockRestore();
    }
    // the 2 s wait for the exit status is over: its timer is cleared and never held the process
    expect(made).toHaveLength(1);
    for (const t of made) {
      expect(cleared.has(t)).toBe(true);
      expect(t.hasRef()).toBe(false);
    }
  });
});
