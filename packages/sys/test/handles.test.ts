// Integration: the launcher forked through Node's own handles (src/handles.ts), as the CLI
// starts it, and the fallback to child_process where those handles are not given.
import { ChildProcess, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { nodeHandles } from '../src/handles.js';
import { captureOutput, launch, launcherPath } from '../src/index.js';
import { BUSYBOX, sh, testDir } from './helpers.js';

const dir = testDir('berth-handles-test-');

const IGNORE: ['ignore', 'ignore', 'inherit'] = ['ignore', 'ignore', 'inherit'];

/** @berth/sys as one CommonJS script, for a fresh node with flags of its own (built once). */
let bundle: string | undefined;
function bundled(): string {
  if (bundle !== undefined) return bundle;
  const { outputFiles } = buildSync({
    entryPoints: [fileURLToPath(new URL('../src/index.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    external: ['koffi'],
    write: false,
  });
  bundle = outputFiles[0]!.text;
  return bundle;
}

/** Runs `body` (with `sys` the bundled package) in a fresh node; its stdout, stderr and status. */
function inFreshNode(body: string, nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const script = `const sys = (() => { const module = { exports: {} }; const exports = module.exports;
${bundled()}
return module.exports; })();
const launcher = ${JSON.stringify(launcherPath())};
(async () => { ${body} })().catch((e) => { console.error(String(e && e.stack || e)); process.exit(99); });`;
  return spawnSync(process.execPath, [...nodeArgs, '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  });
}

const LOADED = `const loaded = process.moduleLoadList.filter((m) => /^NativeModule (child_process|net|dgram|stream)$/.test(m));`;

describe('the launcher forked through Node handles', () => {
  it('is how this Node starts it (no ChildProcess); the CLI test checks what that leaves unloaded', async () => {
    expect(nodeHandles()).not.toBeNull();
    const l = launch([{ op: 'clone', flags: 0, detach: false }, sh('exit 6')], { stdio: IGNORE });
    expect(l.process).not.toBeInstanceOf(ChildProcess);
    expect(await l.exited).toBe(6);
    // a 'pipe' entry needs Node's streams: child_process then
    const piped = launch([{ op: 'clone', flags: 0, detach: false }, sh('exit 0')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    expect(piped.process).toBeInstanceOf(ChildProcess);
    expect(await piped.exited).toBe(0);
  });

  it('runs the plan: pid, sync, release, exec; the container writes to the fd it was given', async () => {
    const outFile = join(dir, 'out');
    const out = openSync(outFile, 'w');
    try {
      const l = launch(
        [{ op: 'clone', flags: 0, detach: false }, { op: 'sync', id: 3 }, sh('echo "hello from $$"')],
        { stdio: ['ignore', out, 'inherit'] },
      );
      const { pid } = await l.expect('pid');
      expect(pid).toBeGreaterThan(1);
      expect((await l.expect('sync')).id).toBe(3);
      l.release();
      await l.expect('eof');
      expect(await l.exited).toBe(0);
      expect(readFileSync(outFile, 'utf8')).toBe(`hello from ${pid}\n`);
    } finally {
      closeSync(out);
    }
  });

  it('preserved fds arrive as 3, 4, … and the plan and sync fds follow them', async () => {
    const outFile = join(dir, 'preserved');
    const out = openSync(outFile, 'w');
    try {
      const l = launch(
        [{ op: 'sync', id: 1 }, { op: 'clone', flags: 0, detach: false }, sh('echo via-fd-3 >&3')],
        {
          stdio: IGNORE,
          preserveFds: [out],
        },
      );
      expect((await l.expect('sync')).id).toBe(1);
      // the launcher, stopped at its first step: 3 the preserved file, 5 its sync socket
      const fd = (n: number) => readlinkSync(`/proc/${l.process.pid}/fd/${n}`);
      expect(fd(3)).toBe(outFile);
      expect(fd(5)).toMatch(/^socket:/);
      expect(fd(0)).toBe('/dev/null');
      l.release();
      expect(await l.exited).toBe(0);
    } finally {
      closeSync(out);
    }
    expect(readFileSync(outFile, 'utf8')).toBe('via-fd-3\n');
  });

  it('a plan larger than the socket buffer is sent whole', async () => {
    // 800 KB of environment (one string may not pass 128 KiB at exec): several socket buffers
    const pad = Array.from({ length: 8 }, (_, i) => `PAD${i}=${'x'.repeat(100_000)}`);
    const big = { ...sh('exit 5'), env: ['PATH=/bin', ...pad] };
    const l = launch(undefined, { stdio: IGNORE });
    l.sendPlan([{ op: 'clone', flags: 0, detach: false }, big]);
    expect(await l.exited).toBe(5);
  });

  it('kill reaches the launcher while it runs, and is refused after its exit', async () => {
    const l = launch([{ op: 'sync', id: 2 }, sh('exit 0')], { stdio: IGNORE });
    await l.expect('sync');
    expect(l.process.kill('SIGKILL')).toBe(true);
    expect(await l.exited).toBe(137);
    expect(l.process.kill('SIGKILL')).toBe(false);
  });

  it('a launcher that cannot be run is an error naming it, and holds nothing open', () => {
    const missing = join(dir, 'no-such-launcher');
    const r = inFreshNode(`
      const l = sys.launch([${JSON.stringify(sh('exit 0'))}], { launcher: ${JSON.stringify(missing)}, stdio: ['ignore', 'ignore', 'inherit'] });
      const why = await l.expect('pid').then(() => 'no error', (e) => e.message);
      const exited = await l.exited.then(() => 'no error', (e) => e.code + ': ' + e.message);
      console.log(JSON.stringify({ why, exited }));`);
    expect(r.stderr).toBe('');
    // and the process ended by itself: no handle of the failed spawn kept its event loop alive
    expect(r.status).toBe(0);
    const { why, exited } = JSON.parse(r.stdout);
    expect(why).toMatch(/no-such-launcher ENOENT/);
    expect(exited).toBe(`ELAUNCHER: cannot run the launcher: spawn ${missing} ENOENT`);
  });

  it('a detached launch lets this process exit while the container runs', () => {
    const marker = join(dir, 'detached-pid');
    const r = inFreshNode(`
      const l = sys.launch([{ op: 'clone', flags: 0, detach: true }, ${JSON.stringify(sh(`echo $$ > ${marker}; exec sleep 30`))}],
        { launcher, stdio: ['ignore', 'ignore', 'ignore'] }); // (stderr: spawnSync would wait for it)
      const { pid } = await l.expect('pid');
      l.detach();
      console.log(pid);`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const pid = Number(r.stdout.trim());
    try {
      for (let i = 0; i < 200 && !existsSync(marker); i++) spawnSync('sleep', ['0.01']);
      expect(Number(readFileSync(marker, 'utf8').trim())).toBe(pid);
      expect(existsSync(`/proc/${pid}`)).toBe(true);
    } finally {
      process.kill(pid, 'SIGKILL');
    }
  });
});

describe('where process.binding is deprecated at run time', () => {
  it('the launcher is forked by child_process: no warning (DEP0111), and it runs', () => {
    for (const args of [['--pending-deprecation', '--throw-deprecation'], ['--throw-deprecation']]) {
      const r = inFreshNode(
        `const l = sys.launch([{ op: 'clone', flags: 0, detach: false }, ${JSON.stringify(sh('exit 9'))}],
          { launcher, stdio: ['ignore', 'ignore', 'inherit'] });
        const code = await l.exited;
        ${LOADED}
        console.log(JSON.stringify({ code, childProcess: loaded.includes('NativeModule child_process') }));`,
        args,
        args.length === 1 ? { NODE_PENDING_DEPRECATION: '1' } : {},
      );
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toEqual({ code: 9, childProcess: true });
      expect(r.status).toBe(0);
    }
  });
});

describe('captureOutput', () => {
  it("returns a program's exit and its stdout and stderr, found on PATH", async () => {
    expect(nodeHandles()).not.toBeNull(); // (so these go through the handles)
    expect(await captureOutput('sh', ['-c', 'echo out; echo err >&2; exit 3'])).toEqual({
      code: 3,
      signal: null,
      stdout: 'out\n',
      stderr: 'err\n',
    });
    expect(await captureOutput('sh', ['-c', 'kill -TERM $$'])).toMatchObject({
      code: null,
      signal: 'SIGTERM',
    });
  });

  it('takes output larger than a socket buffer whole, and kills a program that writes more than maxBuffer', async () => {
    const r = await captureOutput(BUSYBOX, ['head', '-c', '3000000', '/dev/zero'], { maxBuffer: 4 << 20 });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(3_000_000);
    const t0 = Date.now();
    await expect(captureOutput(BUSYBOX, ['cat', '/dev/zero'], { maxBuffer: 1 << 20 })).rejects.toMatchObject({
      code: 'EOUTPUT',
    });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('a program that is not there is ELAUNCHER with ENOENT', async () => {
    await expect(captureOutput('berth-no-such-program', [])).rejects.toMatchObject({
      code: 'ELAUNCHER',
      errno: 'ENOENT',
      message: 'cannot run berth-no-such-program: spawn berth-no-such-program ENOENT',
    });
  });

  it('gives the same through child_process where the handles are not used (pending deprecations)', () => {
    const r = inFreshNode(
      `const ok = await sys.captureOutput('sh', ['-c', 'echo out; echo err >&2; exit 3']);
      const missing = await sys.captureOutput('berth-no-such-program', []).catch((e) => ({ code: e.code, errno: e.errno }));
      const loaded = process.moduleLoadList.includes('NativeModule child_process');
      console.log(JSON.stringify({ ok, missing, loaded }));`,
      ['--pending-deprecation', '--throw-deprecation'],
    );
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual({
      ok: { code: 3, signal: null, stdout: 'out\n', stderr: 'err\n' },
      missing: { code: 'ELAUNCHER', errno: 'ENOENT' },
      loaded: true,
    });
  });
});
