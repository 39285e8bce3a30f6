// Integration: real containerd, through its runc shim v2 (io.containerd.runc.v2)
// with berth as the shim's runc binary (BinaryName, which `ctr run --runc-binary`
// sets). The test starts a containerd of its own (its own root, state and socket
// under a temp dir; never a system one) and stops it at the end. The image is
// berth's built-in busybox, written by `berth save`, imported by ctr.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftInRoot, Sandbox } from '../helpers.js';
import {
  BERTH_BIN,
  cgroupValue,
  clientCommand,
  IMAGE,
  imageArchive,
  onTerminal,
  uniqueName,
} from './clients.js';

const sb = new Sandbox();
const dir = join(sb.dir, 'containerd');
const address = join(dir, 'containerd.sock');
const namespace = `berth-test-${process.pid}`;
const ids = new Set<string>();
let containerd: ChildProcess | undefined;

function ctrArgs(): string[] {
  return ['--address', address, '--namespace', namespace];
}

const { run: ctr, ok } = clientCommand('ctr', { prefix: ctrArgs });
const id = (prefix: string) => uniqueName(ids, prefix);

/** `ctr run` with berth as the runc shim's binary. */
const berthRoot = join(dir, 'berth-root');
const RUN = [
  'run',
  '--runtime',
  'io.containerd.runc.v2',
  '--runc-binary',
  BERTH_BIN,
  // berth keeps its container state here, not in the system's /run/berth
  '--runc-root',
  berthRoot,
  '--snapshotter',
  'native',
];

function taskPid(c: string): number {
  const line = ok(['task', 'ls'])
    .split('\n')
    .find((l) => l.startsWith(`${c} `));
  return Number(line?.trim().split(/\s+/)[1]);
}

beforeAll(async () => {
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'config.toml');
  writeFileSync(
    config,
    `version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${address}"
[ttrpc]
  address = "${address}.ttrpc"
[debug]
  address = "${join(dir, 'debug.sock')}"
[metrics]
  address = ""
`,
  );
  // ctr 1.6 drops --runc-binary (and --runc-root) when --uidmap is given: the shim then runs
  // "runc" from containerd's PATH, which for this containerd is berth too
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(BERTH_BIN, join(bin, 'runc'));
  // its log to a file: a pipe would fill while a spawnSync blocks this process, and stall containerd
  const log = join(dir, 'containerd.log');
  const logFd = openSync(log, 'a');
  containerd = spawn('containerd', ['--config', config], {
    stdio: ['ignore', logFd, logFd],
    env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}` },
  });
  closeSync(logFd);
  for (let i = 0; i < 300 && !existsSync(address); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(address))
    throw new Error(`containerd did not start: ${readFileSync(log, 'utf8').slice(-2000)}`);
  ok(['images', 'import', '--snapshotter', 'native', '--all-platforms', imageArchive(sb)]);
});

afterAll(async () => {
  for (const c of ids) {
    ctr(['task', 'kill', '-s', 'SIGKILL', c]);
    ctr(['task', 'rm', '-f', c]);
    ctr(['containers', 'rm', c]);
  }
  const left = ok(['containers', 'ls', '-q']).trim();
  ctr(['images', 'rm', IMAGE]);
  if (containerd) {
    containerd.kill('SIGTERM');
    await new Promise((r) => containerd!.once('exit', r));
  }
  // the shim keeps runc state in ROOT/NAMESPACE: nothing of a container is left there
  const stateDir = join(berthRoot, namespace);
  const states = leftInRoot(stateDir);
  const mounts = sb.mounts();
  sb.cleanup();
  rmSync(dir, { recursive: true, force: true });
  // containerd puts each container's cgroup under /NAMESPACE; berth removes the container's own,
  // the parent is containerd's to keep (as with runc): this test made it, so it removes it
  const { Cgroup } = await import('@berth/cgroups');
  const parent = await Cgroup.load(`/${namespace}`).catch(() => undefined);
  const leftCgroups = parent ? await parent.pids() : [];
  await parent?.delete();
  expect(leftCgroups).toEqual([]);
  expect(left).toBe('');
  expect(states).toEqual([]);
  expect(mounts).toEqual([]);
});

describe('containerd (runc shim v2) with berth as its runc binary', () => {
  it('runs a container: output, exit status, stdin, env, cwd', () => {
    const c = id('run');
    const r = ctr([...RUN, '--rm', IMAGE, c, 'sh', '-c', 'echo out; echo err >&2; exit 4']);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err');
    expect(r.status).toBe(4);
    // ctr passes stdin on but never closes it: a line, not EOF
    expect(
      ok([...RUN, '--rm', IMAGE, id('stdin'), 'sh', '-c', 'read line; echo "got: $line"'], 'from stdin\n'),
    ).toBe('got: from stdin\n');
    const out = ok([
      ...RUN,
      '--rm',
      '--env',
      'GREETING=hello there',
      '--cwd',
      '/tmp',
      IMAGE,
      id('env'),
      'sh',
      '-c',
      'echo "$GREETING"; pwd; id -u',
    ]);
    expect(out).toBe('hello there\n/tmp\n0\n');
  });

  it('seccomp (the default profile), read-only rootfs, cap-drop, memory and cpu limits', () => {
    const seccomp = ok([
      ...RUN,
      '--rm',
      '--seccomp',
      IMAGE,
      id('seccomp'),
      'grep',
      'Seccomp:',
      '/proc/self/status',
    ]);
    expect(seccomp).toMatch(/Seccomp:\s+2/);
    const ro = ctr([...RUN, '--rm', '--read-only', IMAGE, id('ro'), 'touch', '/file']);
    expect(ro.status).not.toBe(0);
    const caps = ok([
      ...RUN,
      '--rm',
      '--cap-drop',
      'CAP_CHOWN',
      IMAGE,
      id('caps'),
      'sh',
      '-c',
      'chown 1 /tmp || echo denied',
    ]);
    expect(caps).toContain('denied');
    const c = id('limits');
    ok([
      ...RUN,
      '-d',
      '--memory-limit',
      String(64 * 1024 * 1024),
      '--cpu-quota',
      '20000',
      '--cpu-period',
      '100000',
      IMAGE,
      c,
      'sleep',
      '600',
    ]);
    const pid = taskPid(c);
    expect(cgroupValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max')).toBe(String(64 * 1024 * 1024));
    expect(cgroupValue(pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max').split(' ')[0]).toBe('20000');
    ok(['task', 'kill', '-s', 'SIGKILL', c]);
    for (let i = 0; i < 100 && !/STOPPED/.test(ok(['task', 'ls'])); i++) spawnSync('sleep', ['0.1']);
    ok(['task', 'rm', c]);
    ok(['containers', 'rm', c]);
  });

  it('detach, exec, ps, pause and resume, kill and delete', () => {
    const c = id('detached');
    ok([...RUN, '-d', IMAGE, c, 'sleep', '600']);
    expect(ok(['task', 'exec', '--exec-id', 'e1', c, 'sh', '-c', 'echo exec ok']).trim()).toBe('exec ok');
    const pid = taskPid(c);
    expect(ok(['task', 'ps', c])).toContain(String(pid));
    ok(['task', 'pause', c]);
    expect(ok(['task', 'ls'])).toMatch(new RegExp(`${c}\\s+\\d+\\s+PAUSED`));
    ok(['task', 'resume', c]);
    expect(ok(['task', 'ls'])).toMatch(new RegExp(`${c}\\s+\\d+\\s+RUNNING`));
    // sleep is the container's pid 1: only SIGKILL ends it
    ok(['task', 'kill', '-s', 'SIGKILL', c]);
    for (let i = 0; i < 200 && !new RegExp(`${c}\\s+\\d+\\s+STOPPED`).test(ok(['task', 'ls'])); i++)
      spawnSync('sleep', ['0.1']);
    ok(['task', 'rm', c]);
    ok(['containers', 'rm', c]);
    expect(ok(['containers', 'ls', '-q'])).not.toContain(c);
  });

  it('a user namespace: ctr run --uidmap/--gidmap (its snapshot remapped by containerd)', () => {
    const host = 600000 + (process.pid % 1000) * 70000;
    const out = ok([
      ...RUN,
      '--rm',
      '--uidmap',
      `0:${host}:65536`,
      '--gidmap',
      `0:${host}:65536`,
      IMAGE,
      id('userns'),
      'sh',
      '-c',
      'cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c %u /bin; touch /tmp/made && stat -c %u /tmp/made',
    ]);
    expect(out.split('\n').map((l) => l.trim().split(/\s+/).join(' '))).toEqual([
      `0 ${host} 65536`,
      `0 ${host} 65536`,
      '0',
      '0',
      '0',
      '',
    ]);
    // berth ran it (from containerd's PATH, see beforeAll) with the shim's default root: nothing left
    const state = join('/run/containerd/runc', namespace);
    expect(leftInRoot(state)).toEqual([]);
    rmSync(state, { recursive: true, force: true });
  });

  it('a tty session: ctr run -t', () => {
    const r = onTerminal(
      ['ctr', ...ctrArgs(), ...RUN, '--rm', '-t', IMAGE, id('tty'), 'sh'],
      'tty; test -t 0 && echo stdin-is-a-tty; echo "size=$(stty size)"; exit 6\r',
    );
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    // lines end in \r\n (ONLCR on in the pty handed over, as runc and crun hand it); not a staircase
    expect(r.stdout).toMatch(/^stdin-is-a-tty\r$/m);
    // the terminal's size reaches the container
    expect(r.stdout).toMatch(/^size=33 111\r$/m);
    expect(r.status).toBe(6);
  });
});
