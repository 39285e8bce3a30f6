// What a command loads (issue #12): the lifecycle commands load neither node:crypto nor
// node:fs/promises (the bundle's stand-ins load them at first use, src/lazy/), nor the
// image and registry code, nor koffi, nor child_process, net and the stream machinery (the
// launcher is forked through libuv's handles: @berth/sys src/handles.ts). Each was
// milliseconds of every command's start-up.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, Sandbox } from './helpers.js';

const s = new Sandbox();
afterAll(() => s.cleanup());

// dumps, at exit, the builtins Node loaded and every file module in require's cache
const hook = join(s.dir, 'modules-hook.cjs');
writeFileSync(
  hook,
  `process.on('exit', () => require('fs').writeFileSync(process.env.BERTH_TEST_MODULES,
    JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache) })));`,
);

/** Runs the CLI with the hook; what it loaded (and its stdout, when that is a pipe). */
function loaded(
  args: string[],
  stdout: 'ignore' | 'pipe' = 'ignore',
): { builtins: string[]; files: string[]; stdout: string } {
  const out = join(s.dir, `modules-${Math.random().toString(36).slice(2)}.json`);
  const r = spawnSync(process.execPath, ['-r', hook, CLI, '--root', s.root, ...args], {
    encoding: 'utf8',
    env: { ...process.env, BERTH_TEST_MODULES: out, BERTH_STORE: s.store },
    stdio: ['ignore', stdout, 'pipe'],
    timeout: 60_000,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return { ...JSON.parse(readFileSync(out, 'utf8')), stdout: r.stdout ?? '' };
}

// node:crypto stays unloaded where the prebuilt launcher is used: a tree in a directory others
// may write (a checkout under /tmp) is not trusted, and the launcher is then compiled from
// source into root's cache, found by a sha256 of that source at every start
const prebuiltUsed = (await import('@berth/sys')).prebuiltLauncher() !== undefined;
// koffi stays unloaded where the spawn addon is trusted (the same rule): its flock is the locks'.
// Elsewhere (that checkout under /tmp) the locks take flock from koffi, ~15 ms more per command
const addonUsed = (await import('@berth/sys')).prebuiltSpawnAddon() !== undefined;
const HEAVY = [
  'fs/promises',
  'https',
  'http',
  'tls',
  'zlib',
  'readline',
  ...(prebuiltUsed ? ['crypto'] : []),
];
function expectLean(m: { builtins: string[]; files: string[] }): void {
  for (const b of HEAVY) expect(m.builtins).not.toContain(`NativeModule ${b}`);
  // the lock binds a name, it does not listen: no net.Server, whose listen loads the cluster module
  expect(m.builtins).not.toContain('NativeModule cluster');
  // the launcher is forked and spoken to through Node's own handles: ~7 ms and ~2 MiB less
  // (node:crypto, loaded where the launcher's source is hashed, brings the stream machinery)
  for (const b of ['child_process', 'net', 'dgram', ...(prebuiltUsed ? ['stream'] : [])])
    expect(m.builtins).not.toContain(`NativeModule ${b}`);
  if (addonUsed) expect(m.files.filter((f) => f.includes('koffi'))).toEqual([]);
}

describe('start-up: what a command loads', () => {
  it('run -b, create, state, start, exec, kill and delete: no node:crypto, fs/promises, child_process, net, image code or koffi', () => {
    const bundle = s.bundle((c) => {
      c.process.args = ['/bin/sleep', '30'];
    });
    const once = s.id('lean');
    const run = loaded(['run', '-b', s.bundle((c) => (c.process.args = ['/bin/true'])), once]);
    // the list is real: the launcher is spawned through libuv's process handle
    expect(run.builtins).toContain('Internal Binding process_wrap');
    expectLean(run);

    const id = s.id('lean');
    // create leaves the container running with berth's stdio: files, not pipes
    const created = s.detached(['create', '-b', bundle, id]);
    expect(created.stderr).toBe('');
    expect(created.status).toBe(0);
    // state starts no process, opens no socket, and writes its stdout (a pipe, as containerd
    // gives it) without Node's stream for it
    const state = loaded(['state', id], 'pipe');
    expectLean(state);
    expect(JSON.parse(state.stdout)).toMatchObject({ id, status: 'created' });
    for (const b of ['child_process', 'net', 'stream'])
      expect(state.builtins).not.toContain(`NativeModule ${b}`);
    expectLean(loaded(['start', id]));
    // exec (Kubernetes' exec probes): the container's namespaces read without libuv's pool
    expectLean(loaded(['exec', id, '/bin/true']));
    expectLean(loaded(['kill', id, 'KILL']));
    expectLean(loaded(['delete', '-f', id]));
    expect(s.states()).toEqual([]);
    expect(s.cgroups()).toEqual([]);
    expect(s.mounts()).toEqual([]);
  });

  it('run -b with a containerd-style id under a long root: nothing gets hot enough for TurboFan', () => {
    // V8 optimises a function that runs long enough, on another thread: for a command that
    // lives 100 ms that is megabytes of peak memory (the compiler's code and zone) and a core's
    // worth of time. path.join's normalisation, run per cgroup file with the container's id
    // in the path, used to be that function.
    const root = join(s.dir, 'run/containerd/io.containerd.runtime.v2.task/k8s.io');
    const id = `${s.id('opt')}-${'0123456789abcdef'.repeat(4)}`.slice(0, 64);
    const r = spawnSync(
      process.execPath,
      [
        '--trace-opt',
        CLI,
        '--root',
        root,
        'run',
        '-b',
        s.bundle((c) => (c.process.args = ['/bin/true'])),
        id,
      ],
      { encoding: 'utf8', env: { ...process.env, BERTH_STORE: s.store }, timeout: 60_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const marked = r.stdout.split('\n').filter((l) => l.startsWith('[marking') && l.includes('TURBOFAN'));
    // where koffi is loaded for the locks (see addonUsed), its module loader runs path.normalize
    // hot; nothing of berth's may be marked either way
    expect(addonUsed ? marked : marked.filter((l) => !l.includes('<JSFunction normalizeString '))).toEqual(
      [],
    );
    expect(s.cgroups()).toEqual([]);
  });

  it('run --rm IMAGE of an image in the store: no HTTP/TLS client, no zlib, no cluster module, no child_process', () => {
    s.image(); // the built-in image made (its first run may inflate and hash what it must)
    const m = loaded(['run', '--rm', 'busybox', 'true']);
    // the image code is loaded; the registry client and the inflater are not, as nothing is pulled;
    // the network's nft check runs through Node's handles, and dgram waits for a published UDP port
    for (const b of ['https', 'http', 'tls', 'zlib', 'cluster', 'child_process', 'net', 'dgram'])
      expect(m.builtins).not.toContain(`NativeModule ${b}`);
    expect(s.mounts()).toEqual([]);
    expect(s.cgroups()).toEqual([]);
  });

  it('--version loads no child_process, net, stream or crypto', () => {
    const m = loaded(['--version'], 'pipe');
    expect(m.stdout).toMatch(/^berth version /);
    for (const b of ['child_process', 'net', 'stream', 'crypto', 'fs/promises'])
      expect(m.builtins).not.toContain(`NativeModule ${b}`);
  });
});
