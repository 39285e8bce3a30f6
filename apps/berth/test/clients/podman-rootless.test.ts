// Integration: rootless podman (run by an unprivileged user) with berth as its OCI runtime.
// podman runs its runtime as root in the user namespace it keeps for the user (container
// root is the user, ids 1..N the user's subordinate range), with only a few variables in
// the environment: berth is then root in a user namespace, not the host's root. It must
// keep its state under $XDG_RUNTIME_DIR, bind the host's device nodes (it cannot make
// them), run without a cgroup where it cannot make one (as runc does on a v1 or hybrid
// host), and trust its launcher though the host's root owns it under an unmapped id.
// The test makes its own user (useradd, subordinate ids) and removes it afterwards, with
// podman's pause process (which holds the user namespace) and everything in its home.
// slirp4netns (rootless podman's network) needs /dev/net/tun open to the user, which some hosts
// keep root's alone (0600): podman runs in a mount namespace of the test's where a node of the
// same device, mode 0666, is bound over it.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, leftInRoot, Sandbox } from '../helpers.js';
import { RANGE, type TestUser, TestUsers, UsersCli } from '../users.js';
import { clientCommand, IMAGE, imageArchive, onTerminal, uniqueName } from './clients.js';

const sb = new Sandbox();
const users = new TestUsers();
const names = new Set<string>();
let user: TestUser;
let cli: UsersCli;
let env: NodeJS.ProcessEnv;

const asUser = (argv: string[]): string[] => [
  'setpriv',
  `--reuid=${user.uid}`,
  `--regid=${user.gid}`,
  '--init-groups',
  '--',
  ...argv,
];

function podmanArgv(): string[] {
  return [
    'podman',
    '--storage-driver',
    'vfs',
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
    '--runtime',
    cli.bin,
  ];
}

// podman as the user, with the user's environment only (what a login would give it), in a mount
// namespace where /dev/net/tun is open to it (its pause process keeps that namespace for the rest)
let client: ReturnType<typeof clientCommand> | undefined;
const podman = (args: string[]) => client!.run(args);
const ok = (args: string[]) => client!.ok(args);
let tun = '';
const withTun = (argv: string[]): string[] =>
  tun
    ? [
        'unshare',
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount --bind "$0" /dev/net/tun && exec "$@"',
        tun,
        ...argv,
      ]
    : argv;
const name = (prefix: string) => uniqueName(names, prefix);

/** berth's state directories of the user's containers. */
function states(): string[] {
  return leftInRoot(join(user.runtimeDir, 'berth'));
}

/** Mounts in the host's table under the user's home (podman's storage) or runtime directory. */
function mountsOfUser(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(user.home));
}

/** Where a cgroup of berth's default path would be made on this host: the cgroup2 tree, else the pids hierarchy. */
function ownCgroupDir(): string {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const pids = mounts.find((l) => / - cgroup cgroup .*\bpids\b/.test(l))?.split(' ')[4];
  const unified = mounts.find((l) => l.includes(' - cgroup2 '))?.split(' ')[4];
  return pids ?? unified ?? '/sys/fs/cgroup';
}

beforeAll(() => {
  user = users.make(true);
  cli = new UsersCli(user);
  env = {
    HOME: user.home,
    USER: user.name,
    LOGNAME: user.name,
    PATH: '/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
    XDG_RUNTIME_DIR: user.runtimeDir,
    // no configuration of the host's but this (registries: none)
    CONTAINERS_CONF: join(user.home, 'containers.conf'),
    CONTAINERS_REGISTRIES_CONF: join(user.home, 'registries.conf'),
  };
  if (existsSync('/dev/net/tun')) {
    tun = join(sb.dir, 'tun');
    const st = statSync('/dev/net/tun');
    spawnSync('mknod', [
      '-m',
      '0666',
      tun,
      'c',
      String(Math.floor(st.rdev / 256) & 0xfff),
      String(st.rdev & 0xff),
    ]);
  }
  const [bin, ...prefix] = withTun(asUser(podmanArgv()));
  client = clientCommand(bin!, { prefix: () => prefix, env });
  writeFileSync(
    join(user.home, 'containers.conf'),
    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
  );
  writeFileSync(
    join(user.home, 'registries.conf'),
    'unqualified-search-registries = []\nshort-name-mode = "disabled"\n',
  );
  // the image, from berth's archive copied where the user can read it
  const archive = join(user.home, 'busybox.tar');
  copyFileSync(imageArchive(sb), archive);
  chmodSync(archive, 0o644);
  ok(['load', '-i', archive]);
}, 180_000);

afterAll(() => {
  try {
    for (const n of names) podman(['rm', '-f', '-t', '0', n]);
  } finally {
    // podman's pause process holds the user's namespace until it is killed
    const pauseFile = join(user.runtimeDir, 'libpod', 'tmp', 'pause.pid');
    const pause = existsSync(pauseFile) ? Number(readFileSync(pauseFile, 'utf8').trim()) : 0;
    if (pause > 0 && statSync(`/proc/${pause}`, { throwIfNoEntry: false })?.uid === user.uid)
      process.kill(pause, 'SIGKILL');
    cli?.remove();
    sb.cleanup();
    const errors = users.remove();
    expect(errors).toEqual([]);
  }
}, 120_000);

describe('rootless podman with berth as its runtime', () => {
  it('runs a container as root in the user namespace podman keeps for the user', () => {
    const r = podman([
      'run',
      '--rm',
      '--network',
      'none',
      IMAGE,
      'sh',
      '-c',
      'id -u; cat /proc/self/uid_map; stat -c "%t:%T %F" /dev/null; ls /sys/fs/cgroup | wc -l; touch /sys/fs/cgroup/x 2>&1; grep Seccomp: /proc/self/status; exit 3',
    ]);
    // the container's status is podman's
    expect(r.status).toBe(3);
    // nothing of berth's in the container's output: no warning, no debug line
    expect(r.stdout + r.stderr).not.toMatch(/berth:/);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('0');
    // container root is the user; 1..N its subordinate range (podman's map, which berth keeps)
    const maps = lines.slice(1, 3).map((l) => l.trim().split(/\s+/).map(Number));
    expect(maps).toContainEqual([0, user.uid, 1]);
    expect(maps).toContainEqual([1, user.subStart!, RANGE]);
    // the host's /dev/null, bound (a user namespace cannot make device nodes)
    expect(lines[3]).toBe('1:3 character special file');
    // /sys/fs/cgroup shows the cgroups it is in (it has none of its own here), read-only
    expect(Number(lines[4])).toBeGreaterThan(0);
    expect(lines[5]).toMatch(/Read-only file system/);
    // podman's seccomp profile is on
    expect(lines[6]).toMatch(/^Seccomp:\s+2$/);
    // nothing left: no state, no mount
    expect(states()).toEqual([]);
  });

  it('keeps its state in $XDG_RUNTIME_DIR/berth: exec, top, logs, kill, stop, rm', () => {
    const c = name('rl');
    ok([
      'run',
      '-d',
      '--name',
      c,
      '--network',
      'none',
      IMAGE,
      'sh',
      '-c',
      'echo started; trap "exit 9" USR1; while :; do sleep 0.1; done',
    ]);
    const id = ok(['inspect', '-f', '{{.Id}}', c]).trim();
    // the state of berth running as root in the user's namespace is the user's, in the user's runtime dir
    expect(states()).toContain(id);
    expect(statSync(join(user.runtimeDir, 'berth', id)).uid).toBe(user.uid);
    expect(existsSync(join('/run/berth', id))).toBe(false);
    const pid = Number(ok(['inspect', '-f', '{{.State.Pid}}', c]).trim());
    expect(alive(pid)).toBe(true);
    // the container's processes are the user's on the host
    expect(statSync(`/proc/${pid}`).uid).toBe(user.uid);
    expect(ok(['exec', c, 'sh', '-c', 'echo exec-ok $(id -u)']).trim()).toBe('exec-ok 0');
    expect(ok(['top', c, 'pid', 'args'])).toMatch(/while/);
    expect(ok(['logs', c])).toBe('started\n');
    ok(['kill', '-s', 'USR1', c]);
    expect(ok(['wait', c]).trim()).toBe('9');
    expect(alive(pid)).toBe(false);
    ok(['start', c]);
    ok(['stop', '-t', '1', c]);
    ok(['rm', c]);
    names.delete(c);
    expect(states()).toEqual([]);
    expect(mountsOfUser()).toEqual([]);
  });

  it("networks through slirp4netns and publishes a port on the host's loopback (rootlessport)", async () => {
    expect(tun).not.toBe(''); // the host has a tun device
    const c = name('web');
    const port = 20_000 + (process.pid % 20_000);
    ok([
      'run',
      '-d',
      '--name',
      c,
      '-p',
      `127.0.0.1:${port}:8080`,
      IMAGE,
      'sh',
      '-c',
      'mkdir /www && ip -4 -o addr show tap0 > /www/index.html && exec httpd -f -p 8080 -h /www',
    ]);
    let body = '';
    for (let i = 0; i < 50 && !body; i++) {
      try {
        body = await (await fetch(`http://127.0.0.1:${port}/`)).text();
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    // the container's address on slirp4netns's tap, served to the host through the published port
    expect(body).toMatch(/tap0\s+inet 10\.0\.2\.100\//);
    ok(['rm', '-f', '-t', '0', c]);
    names.delete(c);
    expect(states()).toEqual([]);
  });

  it('maps the user to itself with --userns=keep-id, and cannot write what the host keeps from the user', () => {
    const r = podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--userns',
      'keep-id',
      '-v',
      `${user.home}:/work`,
      '-v',
      '/etc:/hostetc',
      IMAGE,
      'sh',
      '-c',
      'id -u; echo hi > /work/made; touch /hostetc/berth-rootless-test 2>&1; echo $?',
    ]);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(String(user.uid));
    // written as the user on the host
    expect(statSync(join(user.home, 'made')).uid).toBe(user.uid);
    // the host's /etc is root's: root in the user's namespace is not root there
    expect(lines[1]).toMatch(/Permission denied/);
    expect(lines[2]).toBe('1');
    expect(existsSync('/etc/berth-rootless-test')).toBe(false);
  });

  it('run by hand in the user namespace (podman unshare): no cgroup where it cannot make one, and a limit refused, naming why', () => {
    // a bundle of the user's (container root is the user here)
    const bundle = join(user.home, 'bundle');
    cpSync(sb.bundle(), bundle, { recursive: true, verbatimSymlinks: true });
    spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, bundle]);
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    const write = () => writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    config.process.args = ['sh', '-c', 'id -u; cat /proc/self/uid_map | head -1'];
    write();
    const berth = (args: string[]) => podman(['unshare', cli.bin, ...args]);
    // where the user's cgroup cannot be written from its namespace (v1, hybrid, a v2 host that delegated
    // nothing): no cgroup, no warning; where it can, a cgroup of the container's own
    const cgroupWritable =
      spawnSync('setpriv', asUser(['sh', '-c', 'test -w "$0"', ownCgroupDir()]).slice(1)).status === 0;
    const r = berth(['run', '-b', bundle, name('by-hand')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim().split('\n')[0]).toBe('0');
    expect(r.stdout.trim().split('\n')[1]!.trim().split(/\s+/).map(Number)).toEqual([0, user.uid, 1]);
    // a limit without a cgroup to hold it is an error that says so, and nothing is left
    config.linux.resources = { pids: { limit: 50 } };
    write();
    const limited = berth(['run', '-b', bundle, name('by-hand')]);
    if (cgroupWritable) expect(limited.status).toBe(0);
    else {
      expect(limited.status).not.toBe(0);
      expect(limited.stderr).toMatch(
        /linux\.resources\.pids: berth runs as root in a user namespace and cannot make the container's cgroup \(\/sys\/fs\/cgroup\/.*: EACCES/,
      );
    }
    expect(states()).toEqual([]);
    expect(mountsOfUser()).toEqual([]);
  });

  it('builds an image whose RUN steps berth runs (podman build, buildah inside)', () => {
    const ctx = join(user.home, 'build');
    mkdirSync(ctx);
    writeFileSync(
      join(ctx, 'Containerfile'),
      `FROM ${IMAGE}\nRUN echo built > /built && cat /proc/self/uid_map > /map\nENV FOO=bar\nRUN ["sh", "-c", "test -f /built && echo \\"foo=$FOO\\" > /foo"]\n`,
    );
    // berth, noting each command buildah gives it (as the user: root of its namespace)
    const calls = join(ctx, 'calls');
    const bin = join(ctx, 'berth-noting');
    writeFileSync(bin, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${cli.bin}' "$@"\n`, { mode: 0o755 });
    spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, ctx]);
    const tag = `localhost/${name('built')}`;
    ok(['build', '--runtime', bin, '-t', tag, ctx]);
    // two RUN steps: two containers of berth's
    expect(readFileSync(calls, 'utf8').match(/^(run|create) /gm)).toHaveLength(2);
    const out = ok(['run', '--rm', '--network', 'none', tag, 'cat', '/built', '/foo', '/map']).split('\n');
    expect(out.slice(0, 2)).toEqual(['built', 'foo=bar']);
    // the build's containers ran in the user's namespace too
    expect(out[2]!.trim().split(/\s+/).map(Number)).toEqual([0, user.uid, 1]);
    ok(['rmi', tag]);
    names.delete(tag.slice('localhost/'.length));
    expect(states()).toEqual([]);
  });

  it('gives `run -it` a terminal whose lines end in one \\r', () => {
    const r = onTerminal(
      [
        'env',
        '-i',
        ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
        ...asUser([...podmanArgv(), 'run', '--rm', '-it', '--network', 'none', IMAGE, 'sh']),
      ],
      'tty; echo "size=$(stty size)"; exit 7\r',
    );
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r\n/);
    expect(r.stdout).toMatch(/^size=33 111\r$/m);
    expect(r.status).toBe(7);
  });
});
