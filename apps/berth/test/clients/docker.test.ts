// Integration: real Docker (Debian's dockerd 20.10 and its CLI) with berth as the
// daemon's runtime (`dockerd --add-runtime berth=… --default-runtime berth`): dockerd
// drives containerd's runc shim v2 with berth as the shim's binary, as it drives runc.
// The daemon is the test's own: its data root, exec root, socket, containerd, cgroup
// parent and config are under a temp dir or named for this test, with no default
// bridge and no firewall rules. scripts/setup.sh unpacks dockerd under
// /var/lib/berth/docker (not installed: no docker service runs on the machine). The
// image is berth's built-in busybox, written by `berth save --format docker-archive`.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { hostBoundingSet } from '@berth/runtime';
import { CAPABILITIES } from '@berth/spec';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftInRoot, Sandbox } from '../helpers.js';
import { BERTH_BIN, cgroupValue, clientCommand, IMAGE, links, onTerminal, uniqueName } from './clients.js';

const DOCKER = '/var/lib/berth/docker';
const sb = new Sandbox();
const dir = join(sb.dir, 'docker');
const socket = join(dir, 'docker.sock');
const execRoot = join(dir, 'exec');
const cgroupParent = `berth-docker-${process.pid}`;
const names = new Set<string>();
let dockerd: ChildProcess | undefined;
const daemonLog = join(dir, 'dockerd.log');
let linksBefore: string[] = [];
// dockerd makes /run/docker/plugins (a fixed path) for plugin sockets: removed after if it was not there
const runDockerBefore = existsSync('/run/docker');
const keyBefore = existsSync('/etc/docker/key.json');

const ENV = {
  ...process.env,
  PATH: `${DOCKER}/usr/bin:${DOCKER}/usr/sbin:${process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
  DOCKER_HOST: `unix://${socket}`,
  DOCKER_CONFIG: join(dir, 'cli'),
};

const { run: docker, ok } = clientCommand(`${DOCKER}/usr/bin/docker`, { env: ENV });
const name = (prefix: string) => uniqueName(names, prefix);

function inspect(container: string, format: string): string {
  return ok(['inspect', '-f', format, container]).trim();
}

/** Container states under the runtime roots dockerd gives the shim (EXEC_ROOT/runtime-runc/moby in 20.10, whatever the runtime). */
function berthStates(): string[] {
  const roots = existsSync(execRoot) ? readdirSync(execRoot).filter((d) => d.startsWith('runtime-')) : [];
  return roots.flatMap((r) => {
    const ns = join(execRoot, r, 'moby');
    return leftInRoot(ns);
  });
}

beforeAll(async () => {
  if (!existsSync(`${DOCKER}/usr/sbin/dockerd`))
    throw new Error(`no dockerd under ${DOCKER}: run scripts/setup.sh (it unpacks Debian's docker.io there)`);
  linksBefore = links();
  mkdirSync(join(dir, 'cli'), { recursive: true });
  const daemonLogFd = openSync(daemonLog, 'a');
  const config = join(dir, 'daemon.json');
  // the daemon's identity key, which dockerd 20.10 would otherwise write to /etc/docker
  writeFileSync(config, `${JSON.stringify({ 'deprecated-key-path': join(dir, 'key.json') })}\n`);
  dockerd = spawn(
    `${DOCKER}/usr/sbin/dockerd`,
    [
      '--config-file',
      config,
      '--data-root',
      join(dir, 'data'),
      '--exec-root',
      execRoot,
      '--pidfile',
      join(dir, 'docker.pid'),
      '-H',
      `unix://${socket}`,
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--userland-proxy=false',
      '--exec-opt',
      'native.cgroupdriver=cgroupfs',
      '--cgroup-parent',
      `/${cgroupParent}`,
      '--add-runtime',
      `berth=${BERTH_BIN}`,
      '--default-runtime',
      'berth',
    ],
    // its log to a file: a pipe would fill while a spawnSync blocks this process, and stall the daemon
    { stdio: ['ignore', daemonLogFd, daemonLogFd], env: ENV },
  );
  closeSync(daemonLogFd);
  for (let i = 0; i < 600 && docker(['version']).status !== 0; i++) {
    if (dockerd.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (docker(['version']).status !== 0)
    throw new Error(`dockerd did not start: ${readFileSync(daemonLog, 'utf8').slice(-2000)}`);
  const archive = join(sb.dir, 'busybox.docker.tar');
  sb.image();
  const saved = sb.berth(['save', '--format', 'docker-archive', '-o', archive, IMAGE]);
  if (saved.status !== 0) throw new Error(`berth save: ${saved.stderr}`);
  ok(['load', '-i', archive]);
});

afterAll(async () => {
  for (const n of names) docker(['rm', '-f', n]);
  for (const n of names) docker(['network', 'rm', n]);
  const states = berthStates();
  if (dockerd && dockerd.exitCode === null) {
    dockerd.kill('SIGTERM');
    await new Promise((r) => dockerd!.once('exit', r));
  }
  // dockerd keeps its default network sandbox mounted in its exec root for its next start
  spawnSync('umount', [join(execRoot, 'netns', 'default')]);
  if (!runDockerBefore) {
    for (const d of ['/run/docker/plugins', '/run/docker']) {
      try {
        rmdirSync(d);
      } catch {
        // not empty: something else uses it
      }
    }
  }
  const mounts = sb.mounts();
  // dockerd makes its cgroup parent and leaves it; this test named it, so it removes it
  const { Cgroup } = await import('@berth/cgroups');
  const parent = await Cgroup.load(`/${cgroupParent}`).catch(() => undefined);
  const leftPids = parent ? await parent.pids() : [];
  await parent?.delete();
  const newLinks = links().filter((l) => !linksBefore.includes(l));
  rmSync(dir, { recursive: true, force: true });
  sb.cleanup();
  expect(states).toEqual([]);
  expect(mounts).toEqual([]);
  expect(leftPids).toEqual([]);
  expect(newLinks).toEqual([]);
  // the daemon's key went to its config's path, not /etc/docker
  expect(existsSync('/etc/docker/key.json')).toBe(keyBefore);
});

/** Files Docker masks in /proc; which of them exist depends on the kernel's configuration. */
const MASKED_FILES = [
  '/proc/kcore',
  '/proc/keys',
  '/proc/timer_list',
  '/proc/sched_debug',
  '/proc/latency_stats',
];

describe('docker with berth as its runtime', () => {
  it('runs a container: output, exit status, stdin, env, workdir, user', () => {
    const r = docker(['run', '--rm', IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(r).toMatchObject({ status: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(ok(['run', '--rm', '-i', IMAGE, 'sh', '-c', 'read l; echo "got: $l"'], 'from stdin\n')).toBe(
      'got: from stdin\n',
    );
    const out = ok([
      'run',
      '--rm',
      '-e',
      'GREETING=hello there',
      '-w',
      '/tmp',
      '-u',
      '1000:1000',
      IMAGE,
      'sh',
      '-c',
      'echo "$GREETING"; pwd; id -u; id -g',
    ]);
    expect(out).toBe('hello there\n/tmp\n1000\n1000\n');
    // the runtime docker reports is berth (`docker info`), and the container ran under it
    expect(ok(['info', '-f', '{{.DefaultRuntime}}']).trim()).toBe('berth');
  });

  it("Docker's confinement reaches the container: its seccomp profile, capabilities and masked paths", () => {
    const out = ok([
      'run',
      '--rm',
      IMAGE,
      'sh',
      '-c',
      // /proc/sys read-only (the hostname written back: a file of the container's own UTS
      // namespace, which no write could take out of it)
      'grep -E "^(CapEff|Seccomp|NoNewPrivs):" /proc/self/status; v=$(cat /proc/sys/kernel/hostname); (echo "$v" > /proc/sys/kernel/hostname) 2>&1 | grep -q "Read-only" && echo ro-proc-sys; ' +
        // Docker's masked paths, those this kernel has: empty (/dev/null, or an empty tmpfs)
        `for f in ${MASKED_FILES.join(' ')}; do [ -e $f ] && echo "$f $(wc -c < $f)"; done; echo "/sys/firmware $(ls -A /sys/firmware | wc -l)"`,
    ]);
    // Docker's default capability set (14 capabilities), its seccomp filter
    expect(out).toMatch(/^CapEff:\s+00000000a80425fb$/m);
    expect(out).toMatch(/^Seccomp:\s+2$/m);
    expect(out).toMatch(/^NoNewPrivs:\s+0$/m);
    expect(out).toContain('ro-proc-sys');
    const masked = MASKED_FILES.filter((f) => existsSync(f)).map((f) => `${f} 0`);
    expect(masked.length).toBeGreaterThan(0);
    expect(out.split('\n').filter((l) => l.startsWith('/'))).toEqual([...masked, '/sys/firmware 0']);
    // a call Docker's profile refuses: unshare of a user namespace without CAP_SYS_ADMIN
    const denied = docker(['run', '--rm', IMAGE, 'unshare', '-U', 'true']);
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toMatch(/Operation not permitted/);
    const unconfined = ok([
      'run',
      '--rm',
      '--security-opt',
      'seccomp=unconfined',
      '--security-opt',
      'no-new-privileges',
      '--cap-drop',
      'ALL',
      IMAGE,
      'grep',
      '-E',
      '^(CapEff|Seccomp|NoNewPrivs):',
      '/proc/self/status',
    ]);
    expect(unconfined).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(unconfined).toMatch(/^Seccomp:\s+0$/m);
    expect(unconfined).toMatch(/^NoNewPrivs:\s+1$/m);
  });

  it('--privileged: every capability this host has, and the container output is only its own', () => {
    // runc 1.1 fails here when the host's bounding set lacks a capability ("unable to apply caps");
    // berth runs the container without it and says so in the runtime's log, not in the container's
    // output: containerd's shim runs `create` with the container's own stdio
    const c = name('priv');
    const id = ok([
      'run',
      '-d',
      '--name',
      c,
      '--privileged',
      IMAGE,
      'sh',
      '-c',
      'grep ^CapEff: /proc/self/status; sleep 600',
    ]).trim();
    // what docker asked for (its bundle's config.json), less what this host's bounding set lacks
    const bundle = join(execRoot, 'containerd/daemon/io.containerd.runtime.v2.task/moby', id);
    const asked: string[] = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')).process.capabilities
      .effective;
    let want = 0n;
    for (const cap of asked) want |= 1n << BigInt(CAPABILITIES.indexOf(cap));
    want &= hostBoundingSet();
    for (let i = 0; i < 100 && !ok(['logs', c]); i++) spawnSync('sleep', ['0.1']);
    const logs = docker(['logs', c]);
    expect(logs).toMatchObject({
      status: 0,
      stdout: `CapEff:\t${want.toString(16).padStart(16, '0')}\n`,
      stderr: '',
    });
    expect(asked).toContain('CAP_SYS_ADMIN');
    ok(['rm', '-f', c]);
  });

  it('tty sessions: docker run -it and docker exec -it', () => {
    const r = onTerminal(
      [`${DOCKER}/usr/bin/docker`, 'run', '--rm', '-it', IMAGE, 'sh'],
      'tty; test -t 0 && echo stdin-is-a-tty; echo "size=$(stty size)"; exit 7\r',
      ENV,
    );
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r$/m);
    // lines end in \r\n as on runc (the pty docker gets has ONLCR on): no staircase on the terminal
    expect(r.stdout).toMatch(/^stdin-is-a-tty\r$/m);
    // the terminal's size reaches the container
    expect(r.stdout).toMatch(/^size=33 111\r$/m);
    expect(r.status).toBe(7);
    // docker exec -it: a terminal of the exec's own, handed over the same way
    const c = name('exectty');
    ok(['run', '-d', '--name', c, IMAGE, 'sleep', '600']);
    const e = onTerminal(
      [`${DOCKER}/usr/bin/docker`, 'exec', '-it', c, 'sh'],
      'tty; echo "size=$(stty size)"; exit 4\r',
      ENV,
    );
    expect(e.stdout).toMatch(/^\/dev\/pts\/\d+\r$/m);
    expect(e.stdout).toMatch(/^size=33 111\r$/m);
    expect(e.status).toBe(4);
    ok(['rm', '-f', c]);
  });

  it('a detached container: exec, top, pause and unpause, update, kill -s, logs, stop', () => {
    const c = name('life');
    ok([
      'run',
      '-d',
      '--name',
      c,
      IMAGE,
      'sh',
      '-c',
      'trap "echo got-usr1; exit 9" USR1; echo started; while true; do sleep 0.1; done',
    ]);
    expect(inspect(c, '{{.State.Status}}')).toBe('running');
    const pid = Number(inspect(c, '{{.State.Pid}}'));
    expect(pid).toBeGreaterThan(1);
    // `docker exec` (berth exec --process, detached, with a pid file)
    expect(ok(['exec', c, 'sh', '-c', 'echo "exec as $(id -u) in $(hostname)"'])).toBe(
      `exec as 0 in ${inspect(c, '{{.Config.Hostname}}')}\n`,
    );
    expect(docker(['exec', c, 'sh', '-c', 'exit 5']).status).toBe(5);
    // `docker top` (berth ps --format json)
    expect(ok(['top', c])).toContain('while true');
    // `docker pause` (berth pause): frozen, then thawed
    ok(['pause', c]);
    expect(inspect(c, '{{.State.Status}}')).toBe('paused');
    expect(cgroupValue(pid, 'freezer', 'freezer.state', 'cgroup.freeze')).toMatch(/^(FROZEN|1)$/);
    ok(['unpause', c]);
    expect(inspect(c, '{{.State.Status}}')).toBe('running');
    // `docker update` (berth update --resources -)
    ok(['update', '--memory', '64m', '--memory-swap', '128m', '--pids-limit', '50', c]);
    expect(Number(cgroupValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max'))).toBe(64 * 1024 * 1024);
    expect(cgroupValue(pid, 'pids', 'pids.max', 'pids.max')).toBe('50');
    // `docker stats` reads the cgroup the container is in
    expect(ok(['stats', '--no-stream', '--format', '{{.PIDs}}', c]).trim()).toMatch(/^[1-9]\d*$/);
    // `docker kill -s` (berth kill): the container's trap runs, its exit status is docker's
    ok(['kill', '-s', 'USR1', c]);
    expect(ok(['wait', c]).trim()).toBe('9');
    expect(ok(['logs', c])).toBe('started\ngot-usr1\n');
    // started again (berth create and start with the same id), then `docker stop`
    ok(['start', c]);
    expect(inspect(c, '{{.State.Status}}')).toBe('running');
    ok(['stop', '-t', '1', c]);
    expect(inspect(c, '{{.State.Status}}')).toBe('exited');
    ok(['rm', c]);
    expect(berthStates()).toEqual([]);
  });

  it('a restart policy: each restart a new create of the same id', () => {
    const c = name('restart');
    ok(['run', '-d', '--name', c, '--restart', 'on-failure:2', IMAGE, 'sh', '-c', 'echo run; exit 1']);
    expect(ok(['wait', c]).trim()).toBe('1');
    for (let i = 0; i < 100 && inspect(c, '{{.RestartCount}}') !== '2'; i++) spawnSync('sleep', ['0.2']);
    for (let i = 0; i < 100 && inspect(c, '{{.State.Status}}') !== 'exited'; i++) spawnSync('sleep', ['0.2']);
    expect(inspect(c, '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}')).toBe('2 exited 1');
    expect(ok(['logs', c])).toBe('run\nrun\nrun\n');
    ok(['rm', c]);
  });

  it('an out-of-memory kill is reported: OOMKilled, exit status 137', () => {
    const c = name('oom');
    const r = docker([
      'run',
      '--name',
      c,
      '--memory',
      '32m',
      '--memory-swap',
      '32m',
      IMAGE,
      'sh',
      '-c',
      'x=a; while true; do x="$x$x"; done',
    ]);
    expect(r.status).toBe(137);
    expect(inspect(c, '{{.State.OOMKilled}} {{.State.ExitCode}}')).toBe('true 137');
    ok(['rm', c]);
  });

  it('a user-defined network: libnetwork wires the container from its prestart hook; containers join namespaces', () => {
    const net = name('net');
    // a bridge and subnet of this test's own, never docker0
    const bridge = `bd${process.pid % 100000}`;
    const subnet = `10.${150 + (process.pid % 50)}.${process.pid % 250}.0/24`;
    ok(['network', 'create', '-o', `com.docker.network.bridge.name=${bridge}`, '--subnet', subnet, net]);
    const web = name('web');
    ok(['run', '-d', '--name', web, '--network', net, IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/etc']);
    // another container finds it by name (Docker's DNS) and reaches it over the bridge
    const out = ok([
      'run',
      '--rm',
      '--network',
      net,
      IMAGE,
      'sh',
      '-c',
      // (no wget -T: busybox 1.35's static wget crashes with it)
      `ip -o -4 addr show eth0 | grep -o "inet [0-9.]*"; wget -q -O - http://${web}:8080/hostname`,
    ]);
    const webIp = inspect(web, `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`);
    expect(webIp.startsWith(subnet.split('.').slice(0, 3).join('.'))).toBe(true);
    expect(out).toMatch(new RegExp(`^inet ${subnet.split('.').slice(0, 3).join('\\.')}\\.\\d+\n`));
    expect(out.split('\n')[1]).toBe(inspect(web, '{{.Config.Hostname}}'));
    // --network container: and --pid container: join the running container's namespaces
    const joined = ok([
      'run',
      '--rm',
      '--network',
      `container:${web}`,
      '--pid',
      `container:${web}`,
      IMAGE,
      'sh',
      '-c',
      'ps -o comm | grep -c httpd; ip -o -4 addr show eth0 | grep -o "inet [0-9.]*"',
    ]);
    expect(joined).toBe(`1\ninet ${webIp}\n`);
    // --network none: only lo
    expect(ok(['run', '--rm', '--network', 'none', IMAGE, 'sh', '-c', 'ls /sys/class/net'])).toBe('lo\n');
    ok(['rm', '-f', web]);
    ok(['network', 'rm', net]);
    expect(links()).not.toContain(bridge);
  });

  it('mounts and process settings: read-only rootfs, tmpfs, binds, volumes, --init, ulimits, sysctls, /dev/shm', () => {
    const host = join(dir, 'shared');
    mkdirSync(host, { recursive: true });
    writeFileSync(join(host, 'file'), 'from the host\n');
    const vol = name('vol');
    const out = ok([
      'run',
      '--rm',
      '--read-only',
      '--tmpfs',
      '/scratch',
      '-v',
      `${host}:/host:ro`,
      '-v',
      `${vol}:/data`,
      '--init',
      '--ulimit',
      'nofile=1024:2048',
      '--sysctl',
      'net.ipv4.ip_forward=1',
      '--shm-size',
      '16m',
      IMAGE,
      'sh',
      '-c',
      [
        'cat /host/file',
        'echo x > /host/new 2>/dev/null || echo host-ro',
        'touch /rootfile 2>/dev/null || echo rootfs-ro',
        'echo kept > /data/f && cat /data/f',
        'touch /scratch/f && echo tmpfs-rw',
        'ps -o comm | sed -n 2p',
        'ulimit -n; ulimit -Hn',
        'cat /proc/sys/net/ipv4/ip_forward',
        'df -k /dev/shm | tail -1 | tr -s " " | cut -d" " -f2',
      ].join('; '),
    ]);
    expect(out).toBe(
      'from the host\nhost-ro\nrootfs-ro\nkept\ntmpfs-rw\ndocker-init\n1024\n2048\n1\n16384\n',
    );
    expect(existsSync(join(host, 'new'))).toBe(false);
    ok(['volume', 'rm', vol]);
  });
});
