// The spawn addon (native/spawn-addon.c): how a CLI command starts the launcher with
// posix_spawn (CLONE_VM|CLONE_VFORK) instead of a fork of the whole Node process. What the child
// gets must be what libuv's spawn gives it: exactly the fds asked for, its signals at their
// defaults (but glibc's internal 32 and 33, which posix_spawn leaves ignored and the launcher
// resets), nothing blocked, its own session when detached; and the addon is loaded only as the
// prebuilt launcher is run: recorded sha256, trusted owner and directories.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type HandleChannel, loadSpawnAddon, nodeHandles, spawnWithHandles } from '../src/handles.js';
import { prebuiltLauncher, prebuiltSpawnAddon, spawnAddon } from '../src/index.js';
import { testDir } from './helpers.js';

const dir = testDir('berth-spawn-addon-test-');
const dist = fileURLToPath(new URL('../dist', import.meta.url));
const machine = { x64: 'x86_64', arm64: 'aarch64' }[process.arch as string];
const h = nodeHandles()!;
const manifest = JSON.parse(readFileSync(join(dist, 'launcher.json'), 'utf8'));
// a tree others may write to (a checkout under /tmp) is trusted for neither the prebuilt launcher
// nor the addon: the launcher is then forked by libuv, and the addon's own tests load it directly
const trusted = prebuiltLauncher() !== undefined;
const addon = loadSpawnAddon(join(dist, manifest.addons[machine!].file));

/** `script` run by /bin/sh through the addon, with fds 0-2 and one channel (fd 3); its exit and what it wrote on fd 3. */
async function run(script: string, detached = false) {
  const s = spawnWithHandles(
    h,
    '/bin/sh',
    ['-c', script],
    ['PATH=/usr/bin:/bin'],
    ['ignore', 'ignore', 2],
    1,
    detached,
    'sh',
    addon,
  );
  const [c] = s.channels as [HandleChannel];
  let out = '';
  c.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const closed = new Promise<void>((r) => c.on('close', () => r()));
  const exit = await s.process.exited;
  await closed;
  return { exit, out, pid: s.process.pid, kill: s.process.kill };
}

describe('the spawn addon', () => {
  it('is built with the launcher, loads, and is used exactly where the prebuilt launcher is trusted', () => {
    expect(manifest.addons[machine!].file).toBe(`spawn-${machine}.node`);
    expect(addon).not.toBeNull();
    expect(spawnAddon() !== null).toBe(trusted);
  });

  it("starts the launcher with CLONE_VM|CLONE_VFORK where it is trusted, else with libuv's fork", async () => {
    // a fresh node under strace: the clone that starts the launcher shares this memory
    const t = spawnSync(
      'strace',
      [
        '-f',
        '-e',
        'trace=clone,clone3,vfork',
        '-o',
        join(dir, 'strace'),
        process.execPath,
        '--input-type=module',
        '-e',
        `const { launch } = await import(${JSON.stringify(join(dist, 'index.js'))});
         const l = launch([{ op: 'clone', flags: 0, detach: false }, { op: 'exit', code: 0 }], { stdio: ['ignore', 'ignore', 'inherit'] });
         process.exitCode = await l.exited.catch(() => 9);`,
      ],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(t.error).toBeUndefined();
    const trace = readFileSync(join(dir, 'strace'), 'utf8');
    // node's own threads aside, the one process it started was started with CLONE_VFORK
    const starts = trace
      .split('\n')
      .filter((l) => /clone3?\(|vfork\(/.test(l) && !l.includes('CLONE_THREAD'));
    expect(starts.length).toBeGreaterThan(0);
    if (trusted) expect(starts[0]).toMatch(/CLONE_VM\|CLONE_VFORK/);
    else expect(starts[0]).not.toMatch(/CLONE_VM/);
  });

  it("gives the child exactly the fds asked for, its signals at their defaults (but glibc's own), nothing blocked", async () => {
    const r = await run('ls /proc/self/fd >&3; grep -E "^Sig(Ign|Blk):" /proc/self/status >&3; exit 7');
    expect(r.exit).toEqual({ code: 7, signal: null });
    const [fds, ...sig] = r.out
      .trim()
      .split('\n')
      .reduce<string[]>((acc, l) => {
        if (/^\d+$/.test(l)) acc[0] = `${acc[0] ?? ''} ${l}`.trim();
        else acc.push(l);
        return acc;
      }, []);
    // 0-2 and the channel; the fourth is ls's own directory fd
    expect(fds!.split(' ').map(Number)).toEqual([0, 1, 2, 3, 4]);
    // glibc's posix_spawn leaves its own signals 32 and 33 ignored, and no other; the launcher
    // puts those back too (the container's process has none ignored: runtime's pool.test.ts)
    expect(sig[0]).toBe('SigBlk:\t0000000000000000');
    expect(BigInt(`0x${sig[1]!.split('\t')[1]}`) & ~0x180000000n).toBe(0n);
  });

  it("its own session when detached, the caller's otherwise", async () => {
    const own = await run('ps -o sid= -p $$ >&3; echo $$ >&3', true);
    const [sid, pid] = own.out.trim().split(/\s+/);
    expect(sid).toBe(pid);
    const shared = await run('ps -o sid= -p $$ >&3; echo $$ >&3');
    const [sid2, pid2] = shared.out.trim().split(/\s+/);
    expect(sid2).not.toBe(pid2);
  });

  it('reports a signal, kills only while the child is not reaped, and names a program that is not there', async () => {
    const s = spawnWithHandles(
      h,
      '/bin/sleep',
      ['60'],
      [],
      ['ignore', 'ignore', 'ignore'],
      0,
      false,
      'sleep',
      addon,
    );
    expect(s.process.pid).toBeGreaterThan(0);
    expect(s.process.kill('SIGKILL')).toBe(true);
    expect(await s.process.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(s.process.kill('SIGKILL')).toBe(false);
    const missing = spawnWithHandles(h, '/nonexistent/prog', [], [], ['ignore'], 1, false, 'prog', addon);
    expect(missing.process.pid).toBeUndefined();
    await expect(missing.process.exited).rejects.toMatchObject({
      code: 'ELAUNCHER',
      errno: 'ENOENT',
      message: 'cannot run prog: spawn /nonexistent/prog ENOENT',
    });
  });

  it('watches any number of children with one SIGCHLD listener, each exit its own', async () => {
    const before = process.listenerCount('SIGCHLD');
    const kids = Array.from({ length: 16 }, (_, i) =>
      spawnWithHandles(
        h,
        '/bin/sh',
        ['-c', `exit ${i}`],
        [],
        ['ignore', 'ignore', 'ignore'],
        0,
        false,
        'sh',
        addon,
      ),
    );
    expect(process.listenerCount('SIGCHLD')).toBeLessThanOrEqual(before + 1);
    expect(await Promise.all(kids.map((k) => k.process.exited))).toEqual(
      kids.map((_, i) => ({ code: i, signal: null })),
    );
    expect(process.listenerCount('SIGCHLD')).toBe(before);
  });

  it('is loaded only from a trusted tree, and never when its sha256 is not the recorded one', () => {
    const d = join(dir, 'copy');
    cpSync(dist, d, {
      recursive: true,
      filter: (src) => !src.endsWith('.map') && !src.endsWith('.verified'),
    });
    const file = join(d, `spawn-${machine}.node`);
    // a copy under /tmp (sticky and world-writable) is not trusted as root
    if (process.geteuid?.() === 0) expect(prebuiltSpawnAddon(d)).toBeUndefined();
    chmodSync(file, 0o666);
    expect(prebuiltSpawnAddon(d)).toBeUndefined();
    const bytes = readFileSync(file);
    bytes[bytes.length - 1]! ^= 0xff;
    writeFileSync(file, bytes);
    expect(() => prebuiltSpawnAddon(d)).toThrow(
      /sha256 [0-9a-f]{64} is not the [0-9a-f]{64} recorded .*refusing to load it/,
    );
    // what is not a Node-API module of ours does not load: libuv's spawn then
    expect(loadSpawnAddon('/bin/true')).toBeNull();
  });
});
