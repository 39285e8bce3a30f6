// Integration: real podman with berth as its OCI runtime (`podman --runtime berth`),
// seccomp on (podman's default profile). podman gets storage, run and network
// config directories of its own under a temp dir, cgroupfs and file events, so
// nothing of a system podman is used or touched. The image is berth's built-in
// busybox, saved by berth and loaded by podman: no registry.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from '../helpers.js';
import {
  BERTH_BIN,
  cgroupValue,
  clientCommand,
  IMAGE,
  imageArchive,
  links,
  onTerminal,
  uniqueName,
} from './clients.js';

const sb = new Sandbox();
const dir = join(sb.dir, 'podman');
// podman 4.3 does not pass --runtime-flag to `delete`, so berth keeps its state in its default root
const berthRoot = process.env['BERTH_ROOT'] ?? '/run/berth';
const names = new Set<string>();
let linksBefore: string[] = [];
let chainsBefore = '';

function podmanArgs(): string[] {
  return [
    '--root',
    join(dir, 'root'),
    '--runroot',
    join(dir, 'runroot'),
    '--tmpdir',
    join(dir, 'tmp'),
    '--storage-driver',
    'vfs',
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
    '--network-config-dir',
    join(dir, 'net'),
    '--runtime',
    BERTH_BIN,
  ];
}

const ENV = {
  ...process.env,
  // podman reads no system or user configuration but these
  CONTAINERS_CONF: join(dir, 'containers.conf'),
  CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
  CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
  XDG_CONFIG_HOME: join(dir, 'config'),
};

// conmon marks an OOM kill with an empty file `oom` in its working directory: this one's own
const { run: podman, ok } = clientCommand('podman', { prefix: podmanArgs, env: ENV, cwd: dir });
const name = (prefix: string) => uniqueName(names, prefix);

function pidOf(container: string): number {
  return Number(ok(['inspect', '-f', '{{.State.Pid}}', container]).trim());
}

/** berth state directories whose bundle is in this test's podman storage. */
function statesOfThisTest(): string[] {
  if (!existsSync(berthRoot)) return [];
  return readdirSync(berthRoot).filter((id) => {
    try {
      const state = JSON.parse(readFileSync(join(berthRoot, id, 'state.json'), 'utf8'));
      return typeof state.bundle === 'string' && state.bundle.startsWith(dir);
    } catch {
      return false;
    }
  });
}

function iptables(args: string[]): string {
  return spawnSync('iptables', args, { encoding: 'utf8' }).stdout ?? '';
}

beforeAll(() => {
  linksBefore = links();
  chainsBefore = iptables(['-S']);
  for (const d of ['root', 'runroot', 'tmp', 'net', 'config']) mkdirSync(join(dir, d), { recursive: true });
  // a subnet of its own, so that it meets no other bridge on this host
  const subnet = `10.${200 + (process.pid % 50)}.${process.pid % 250}.0/24`;
  writeFileSync(
    join(dir, 'containers.conf'),
    `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n[network]\ndefault_subnet = "${subnet}"\nnetwork_config_dir = "${join(dir, 'net')}"\n`,
  );
  writeFileSync(
    join(dir, 'storage.conf'),
    `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, 'root')}"\nrunroot = "${join(dir, 'runroot')}"\n`,
  );
  writeFileSync(
    join(dir, 'registries.conf'),
    'unqualified-search-registries = []\nshort-name-mode = "disabled"\n',
  );
  ok(['load', '-i', imageArchive(sb)]);
});

afterAll(() => {
  for (const n of names) podman(['rm', '-f', '-t', '0', n]);
  // also what a failed test left (the store is this test's own)
  podman(['rm', '-a', '-f', '-t', '0']);
  podman(['volume', 'prune', '-f']);
  // what leaked is measured first, then everything is cleaned, then asserted
  const states = statesOfThisTest();
  const mounts = sb.mounts();
  // podman made the default bridge for this test (it was not there before): remove it
  for (const l of links())
    if (!linksBefore.includes(l) && /^cni-podman\d+$/.test(l)) spawnSync('ip', ['link', 'del', l]);
  const newLinks = links().filter((l) => !linksBefore.includes(l));
  // the CNI firewall plugin leaves its chains behind: remove them if this test made them
  if (!chainsBefore.includes('-N CNI-FORWARD') && iptables(['-S']).includes('-N CNI-FORWARD')) {
    iptables([
      '-D',
      'FORWARD',
      '-m',
      'comment',
      '--comment',
      'CNI firewall plugin rules',
      '-j',
      'CNI-FORWARD',
    ]);
    for (const chain of ['CNI-FORWARD', 'CNI-ADMIN']) {
      iptables(['-F', chain]);
      iptables(['-X', chain]);
    }
  }
  const chains = iptables(['-S']).includes('-N CNI-FORWARD');
  sb.cleanup();
  rmSync(dir, { recursive: true, force: true });
  // no state of this test's containers in berth's root, no mount, no new interface or chain
  expect(states).toEqual([]);
  expect(mounts).toEqual([]);
  expect(newLinks).toEqual([]);
  expect(chains).toBe(chainsBefore.includes('-N CNI-FORWARD'));
});

describe('podman --runtime berth', () => {
  it('runs a container: output, exit status, stdin, env, workdir, user, groups, hostname', () => {
    const r = podman([
      'run',
      '--rm',
      '--network',
      'none',
      IMAGE,
      'sh',
      '-c',
      'echo out; echo err >&2; exit 3',
    ]);
    expect(r.stdout).toBe('out\n');
    expect(r.stderr).toContain('err\n');
    expect(r.status).toBe(3);
    expect(ok(['run', '--rm', '-i', '--network', 'none', IMAGE, 'cat'], 'from stdin\n')).toBe('from stdin\n');
    const out = ok([
      'run',
      '--rm',
      '--network',
      'none',
      '-e',
      'GREETING=hello there',
      '-w',
      '/tmp',
      '-u',
      '1000:1001',
      '--group-add',
      '5',
      '--hostname',
      'podman-berth',
      IMAGE,
      'sh',
      '-c',
      'echo "$GREETING"; pwd; id -u; id -g; id -G; hostname; grep Seccomp: /proc/self/status',
    ]);
    const [greeting, cwd, uid, gid, groups, hostname, seccomp] = out.trim().split('\n');
    expect(greeting).toBe('hello there');
    expect(cwd).toBe('/tmp');
    expect(uid).toBe('1000');
    expect(gid).toBe('1001');
    expect(groups!.split(' ')).toContain('5');
    expect(hostname).toBe('podman-berth');
    // podman's default seccomp profile is in force
    expect(seccomp).toMatch(/^Seccomp:\s+2$/);
  });

  it('--read-only with its writable tmpfs dirs, --tmpfs (tmpcopyup) and --privileged (device parents)', () => {
    // --read-only: / refuses writes, the tmpfs podman puts on /tmp (tmpcopyup) takes them
    expect(
      ok([
        'run',
        '--rm',
        '--network',
        'none',
        '--read-only',
        IMAGE,
        'sh',
        '-c',
        'echo a > /tmp/a && cat /tmp/a',
      ]),
    ).toBe('a\n');
    // --tmpfs on a directory the image has: its files are copied up onto the tmpfs
    expect(
      ok([
        'run',
        '--rm',
        '--network',
        'none',
        '--tmpfs',
        '/etc',
        IMAGE,
        'sh',
        '-c',
        'grep -c " /etc " /proc/self/mountinfo; test -s /etc/passwd && echo copied; echo x > /etc/new && cat /etc/new',
      ]),
    ).toBe('1\ncopied\nx\n');
    // --privileged: every host device, parents made (/dev/cpu/0/cpuid where the host has it), all capabilities
    const priv = ok([
      'run',
      '--rm',
      '--network',
      'none',
      '--privileged',
      IMAGE,
      'sh',
      '-c',
      'test -c /dev/null && echo null; grep CapEff /proc/self/status; ls /dev | wc -l',
    ]);
    const [nullLine, capLine, count] = priv.trim().split('\n');
    expect(nullLine).toBe('null');
    expect(capLine).not.toMatch(/CapEff:\s+0000000000000000/);
    expect(Number(count)).toBeGreaterThan(10);
  });

  it('read-only rootfs, ulimits, cap-drop and a seccomp profile of our own', () => {
    const ro = podman(['run', '--rm', '--network', 'none', '--read-only', IMAGE, 'touch', '/file']);
    expect(ro.status).not.toBe(0);
    expect(ro.stderr).toMatch(/Read-only file system/);
    expect(
      ok([
        'run',
        '--rm',
        '--network',
        'none',
        '--ulimit',
        'nofile=100:200',
        IMAGE,
        'sh',
        '-c',
        'ulimit -n; ulimit -Hn',
      ]),
    ).toBe('100\n200\n');
    const caps = ok([
      'run',
      '--rm',
      '--network',
      'none',
      '--cap-drop',
      'ALL',
      IMAGE,
      'grep',
      'CapEff',
      '/proc/self/status',
    ]);
    expect(caps).toMatch(/CapEff:\s+0000000000000000/);
    const chown = podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--cap-drop',
      'CHOWN',
      IMAGE,
      'chown',
      '1:1',
      '/tmp',
    ]);
    expect(chown.status).not.toBe(0);
    const profile = join(dir, 'seccomp.json');
    writeFileSync(
      profile,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 }],
      }),
    );
    const denied = podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--security-opt',
      `seccomp=${profile}`,
      IMAGE,
      'mkdir',
      '/tmp/x',
    ]);
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toMatch(/Permission denied/);
  });

  it('memory, pids and cpu limits, podman update, and an OOM kill', () => {
    const c = name('limits');
    ok([
      'run',
      '-d',
      '--name',
      c,
      '--network',
      'none',
      '--memory',
      '64m',
      '--pids-limit',
      '50',
      '--cpus',
      '0.5',
      IMAGE,
      'sleep',
      '600',
    ]);
    const pid = pidOf(c);
    expect(cgroupValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max')).toBe(String(64 * 1024 * 1024));
    expect(cgroupValue(pid, 'pids', 'pids.max', 'pids.max')).toBe('50');
    const quota = cgroupValue(pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max');
    expect(quota.split(' ')[0]).toBe('50000');
    // podman 4.3's update has no --pids-limit: memory and cpu
    ok(['update', '--memory', '128m', '--cpus', '1', c]);
    expect(cgroupValue(pid, 'memory', 'memory.limit_in_bytes', 'memory.max')).toBe(String(128 * 1024 * 1024));
    expect(cgroupValue(pid, 'cpu', 'cpu.cfs_quota_us', 'cpu.max').split(' ')[0]).toBe('100000');
    ok(['rm', '-f', '-t', '0', c]);

    const oom = name('oom');
    const r = podman([
      'run',
      '--name',
      oom,
      '--network',
      'none',
      '--memory',
      '32m',
      '--memory-swap',
      '32m',
      IMAGE,
      'sh',
      '-c',
      'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived',
    ]);
    expect(r.stdout).not.toContain('survived');
    expect(r.status).toBe(137);
    // the shell itself holds the memory: the kernel's OOM killer ended pid 1 (SIGKILL). podman's
    // State.OOMKilled is not asserted: conmon does not see OOM events on a hybrid host (false with crun too)
    expect(ok(['inspect', '-f', '{{.State.ExitCode}}', oom]).trim()).toBe('137');
    ok(['rm', oom]);
  });

  it('detach, exec (also with a tty), top, pause and unpause, stop and rm', () => {
    const c = name('detached');
    ok(['run', '-d', '--name', c, '--network', 'none', IMAGE, 'sleep', '600']);
    expect(ok(['exec', c, 'sh', '-c', 'echo exec in $(hostname)']).trim()).toMatch(/^exec in /);
    expect(ok(['exec', '-t', c, 'tty']).trim()).toMatch(/^\/dev\/pts\/\d+$/);
    expect(ok(['exec', '-u', '65534', c, 'id', '-u']).trim()).toBe('65534');
    expect(ok(['top', c])).toMatch(/sleep 600/);
    ok(['pause', c]);
    expect(ok(['inspect', '-f', '{{.State.Status}}', c]).trim()).toBe('paused');
    ok(['unpause', c]);
    expect(ok(['inspect', '-f', '{{.State.Status}}', c]).trim()).toBe('running');
    const pid = pidOf(c);
    ok(['stop', '-t', '1', c]);
    expect(ok(['inspect', '-f', '{{.State.Status}}', c]).trim()).toBe('exited');
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    ok(['rm', c]);
    expect(podman(['inspect', c]).status).not.toBe(0);
  });

  it('volumes: a host directory and a named volume', () => {
    const host = join(dir, 'volume-host');
    mkdirSync(host, { recursive: true });
    writeFileSync(join(host, 'in'), 'from the host\n');
    const vol = name('vol');
    ok(['volume', 'create', vol]);
    const out = ok([
      'run',
      '--rm',
      '--network',
      'none',
      '-v',
      `${host}:/data`,
      '-v',
      `${vol}:/vol`,
      IMAGE,
      'sh',
      '-c',
      'cat /data/in; echo from the container > /data/out; echo kept > /vol/file',
    ]);
    expect(out).toBe('from the host\n');
    expect(readFileSync(join(host, 'out'), 'utf8')).toBe('from the container\n');
    expect(ok(['run', '--rm', '--network', 'none', '-v', `${vol}:/vol`, IMAGE, 'cat', '/vol/file'])).toBe(
      'kept\n',
    );
    ok(['volume', 'rm', vol]);
  });

  it('networks: none has only lo; the default bridge gives an address the host reaches', async () => {
    const none = ok(['run', '--rm', '--network', 'none', IMAGE, 'cat', '/proc/net/dev']);
    expect(none).toMatch(/\blo:/);
    expect(none).not.toMatch(/\beth0:/);
    const c = name('bridge');
    ok(['run', '-d', '--name', c, IMAGE, 'sh', '-c', 'echo hello-from-berth | nc -l -p 8080']);
    const ip = ok(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', c]).trim();
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    // host to container over the bridge podman made for this test
    let got = '';
    for (let i = 0; i < 50 && !got.includes('hello'); i++) {
      got = await new Promise<string>((resolve) => {
        const s = connect({ host: ip, port: 8080 });
        let data = '';
        s.on('data', (d) => (data += d));
        s.on('close', () => resolve(data));
        s.on('error', () => resolve(''));
        setTimeout(() => s.destroy(), 2000);
      });
      if (!got) await new Promise((r) => setTimeout(r, 100));
    }
    expect(got).toBe('hello-from-berth\n');
    ok(['rm', '-f', '-t', '0', c]);
  });

  it("a pod: its containers join the infra container's namespaces (net, ipc, uts, pid), as a Kubernetes pod's do", () => {
    // an infra image of the test's own (podman would build one around catatonit, which a host may lack)
    const pause = `localhost/berth-test-pause-${process.pid}:latest`;
    const base = name('pausebase');
    ok(['create', '--name', base, IMAGE, 'true']);
    ok([
      'commit',
      '-q',
      '--change',
      'ENTRYPOINT ["/bin/sleep","2147483647"]',
      '--change',
      'CMD []',
      base,
      pause,
    ]);
    ok(['rm', base]);
    const pod = name('pod');
    try {
      ok([
        'pod',
        'create',
        '--name',
        pod,
        '--share',
        'net,ipc,uts,pid',
        '--network',
        'none',
        '--infra-image',
        pause,
      ]);
      const web = name('web');
      ok([
        'run',
        '-d',
        '--pod',
        pod,
        '--name',
        web,
        IMAGE,
        'httpd',
        '-f',
        '-p',
        '127.0.0.1:8080',
        '-h',
        '/etc',
      ]);
      const out = ok([
        'run',
        '--rm',
        '--pod',
        pod,
        IMAGE,
        'sh',
        '-c',
        'ps -o comm | sort | uniq | tr "\\n" " "; echo; echo "$(wget -q -O - http://127.0.0.1:8080/hostname)"; hostname; readlink /proc/self/ns/ipc',
      ]);
      const [procs, served, hostname, ipc] = out.split('\n');
      // one pid namespace: the infra process and the other container's server are seen
      expect(procs!.split(' ')).toEqual(expect.arrayContaining(['sleep', 'httpd', 'ps']));
      // one network namespace (its loopback), one UTS namespace (the pod's hostname)
      expect(served).toBe(hostname);
      expect(hostname).toBe(pod);
      // one IPC namespace
      expect(ok(['exec', web, 'readlink', '/proc/self/ns/ipc']).trim()).toBe(ipc);
    } finally {
      podman(['pod', 'rm', '-f', '-t', '0', pod]);
      podman(['rmi', pause]);
    }
  });

  it("podman build: berth runs the RUN steps (buildah inside), with the image's ENV", () => {
    const ctx = join(dir, 'build');
    mkdirSync(ctx, { recursive: true });
    // berth, noting each command buildah gives it
    const calls = join(ctx, 'calls');
    const bin = join(dir, 'berth-noting');
    writeFileSync(bin, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${BERTH_BIN}' "$@"\n`, { mode: 0o755 });
    writeFileSync(
      join(ctx, 'Containerfile'),
      `FROM ${IMAGE}\nRUN echo built > /built\nENV FOO=bar\nRUN ["sh", "-c", "test -f /built && echo \\"foo=$FOO\\" > /foo"]\n`,
    );
    const tag = `localhost/${name('built')}`;
    ok(['build', '--runtime', bin, '--network', 'none', '-t', tag, ctx]);
    // two RUN steps: two containers of berth's
    expect(readFileSync(calls, 'utf8').match(/^(run|create) /gm)).toHaveLength(2);
    expect(ok(['run', '--rm', '--network', 'none', tag, 'cat', '/built', '/foo'])).toBe('built\nfoo=bar\n');
    ok(['rmi', tag]);
    names.delete(tag.slice('localhost/'.length));
    expect(statesOfThisTest()).toEqual([]);
  });

  it('a tty session: podman run -it', () => {
    const r = onTerminal(
      ['podman', ...podmanArgs(), 'run', '--rm', '-it', '--network', 'none', IMAGE, 'sh'],
      'tty; test -t 0 && echo stdin-is-a-tty; echo "size=$(stty size)"; exit 7\r',
      ENV,
    );
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    // lines end in \r\n (ONLCR on in the pty handed over, as runc and crun hand it); not a staircase
    expect(r.stdout).toMatch(/^stdin-is-a-tty\r$/m);
    // the terminal's size reaches the container
    expect(r.stdout).toMatch(/^size=33 111\r$/m);
    expect(r.status).toBe(7);
  });
});
