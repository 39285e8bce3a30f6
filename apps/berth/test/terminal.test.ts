// Integration: process.terminal, in the foreground (berth relays the pty) and with
// --console-socket (the pty master is handed over, as containerd's shim expects).
// python3 plays the terminal and the console-socket server: Node cannot receive fds.
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, PTY_RUN, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

function python(script: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('python3', ['-c', script, ...args], {
    encoding: 'utf8',
    env: { ...process.env, BERTH_STORE: sb.store },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('terminals', () => {
  it('berth run -t gives the container a terminal of its own and relays it', () => {
    const r = python(PTY_RUN, [
      process.execPath,
      CLI,
      '--root',
      sb.root,
      'run',
      '--rm',
      '-t',
      'busybox',
      'sh',
      '-c',
      'tty; test -t 0 && echo stdin-is-tty; exit 5',
    ]);
    // what the user's terminal shows: each line ended by \r\n, once (the container's pty has ONLCR
    // off and the terminal's output processing stays on, as with runc; a staircase without \r)
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\nstdin-is-tty\r\n$/);
    expect(r.status).toBe(5);
  });

  it('hands the pty master to --console-socket and the container writes to it', () => {
    const bundle = sb.bundle((c) => {
      c.process.terminal = true;
      c.process.args = ['sh', '-c', 'echo "on $(tty)"'];
    });
    const id = sb.id('console');
    const sock = join(sb.dir, `${id}.sock`);
    const script = `
import array, os, socket, subprocess, sys
sock_path, root, cli, bundle, cid = sys.argv[1:6]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(1)
base = [${JSON.stringify(process.execPath)}, cli, '--root', root]
log = open(sock_path + '.log', 'w')
create = subprocess.Popen(base + ['create', '--console-socket', sock_path, '-b', bundle, cid], stdout=log, stderr=log)
conn, _ = srv.accept()
msg, fds, _, _ = socket.recv_fds(conn, 16, 1)
create.wait()
if create.returncode != 0:
    sys.exit('create failed')
subprocess.run(base + ['start', cid], check=True)
out = b''
while b'\\n' not in out:
    try:
        chunk = os.read(fds[0], 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
sys.stdout.write(out.decode())
`;
    const r = python(script, [sock, sb.root, CLI, bundle, id]);
    expect(r.stderr).toBe('');
    expect(readFileSync(`${sock}.log`, 'utf8')).toBe('');
    // the pty is handed over with the kernel's defaults, ONLCR on, as runc and crun hand it: the
    // receiver (containerd's shim, conmon) relays it to a raw terminal as it is
    expect(r.stdout).toMatch(/^on \/dev\/pts\/\d+\r\n$/);
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
  });

  it("binds the terminal onto /dev/console, and gives it to the process's user", () => {
    const bundle = sb.bundle((c) => {
      c.process.terminal = true;
      c.process.user = { uid: 1000, gid: 1000 };
      c.process.args = [
        'sh',
        '-c',
        'stat -c "%u %t:%T" /dev/console "$(tty)"; grep -c " /dev/console " /proc/self/mountinfo; echo to-console > /dev/console',
      ];
    });
    const r = python(PTY_RUN, [
      process.execPath,
      CLI,
      '--root',
      sb.root,
      'run',
      '-b',
      bundle,
      sb.id('console'),
    ]);
    expect(r.status).toBe(0);
    const [consoleLine, ttyLine, mounts, written] = r.stdout.split(/\r?\n/);
    // the same pty (136 is devpts' major), owned by the process's uid
    expect(consoleLine).toMatch(/^1000 88:\w+$/);
    expect(ttyLine).toBe(consoleLine);
    expect(mounts).toBe('1');
    expect(written).toBe('to-console');
  });

  it("berth exec -t: the exec'd process's own terminal, owned by its user; the container gets no /dev/console", () => {
    const id = sb.id('exec-tty');
    expect(sb.detached(['run', '-d', '--name', id, 'busybox', 'sleep', '60']).status).toBe(0);
    const r = python(PTY_RUN, [
      process.execPath,
      CLI,
      '--root',
      sb.root,
      'exec',
      '-t',
      '--user',
      '1000:1000',
      id,
      'sh',
      '-c',
      'stat -c "%u %n" "$(tty)"; test -e /dev/console || echo no-console',
    ]);
    expect(r.stdout).toMatch(/^1000 \/dev\/pts\/\d+\r\nno-console\r\n$/);
    expect(r.status).toBe(0);
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
  });

  it('refuses a /dev/console that is a symlink (never follows it), leaving nothing behind', () => {
    const bundle = sb.bundle((c) => {
      c.process.terminal = true;
      // the image's own /dev: no tmpfs over it
      c.mounts = c.mounts!.filter((m: { destination: string }) => m.destination !== '/dev');
    });
    const target = join(bundle, 'rootfs', 'etc', 'console-target');
    writeFileSync(target, 'unchanged\n');
    mkdirSync(join(bundle, 'rootfs', 'dev'), { recursive: true });
    symlinkSync('/etc/console-target', join(bundle, 'rootfs', 'dev', 'console'));
    symlinkSync('pts/ptmx', join(bundle, 'rootfs', 'dev', 'ptmx'));
    const id = sb.id('console-link');
    const r = python(PTY_RUN, [process.execPath, CLI, '--root', sb.root, 'run', '-b', bundle, id]);
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('berth: set up the terminal: /dev/console is a symlink: ELOOP');
    expect(readFileSync(target, 'utf8')).toBe('unchanged\n');
    expect(lstatSync(join(bundle, 'rootfs', 'dev', 'console')).isSymbolicLink()).toBe(true);
    expect(sb.states()).not.toContain(id);
  });

  it('refuses a detached terminal without a console socket', () => {
    const bundle = sb.bundle((c) => {
      c.process.terminal = true;
    });
    const r = sb.berth(['create', '-b', bundle, sb.id()]);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe(
      'berth: process.terminal: a detached container with a terminal needs --console-socket\n',
    );
  });
});

describe('berth spec', () => {
  it('writes the same config.json as runc spec', () => {
    const a = join(sb.dir, 'spec-a');
    const b = join(sb.dir, 'spec-b');
    for (const d of [a, b]) require('node:fs').mkdirSync(d);
    expect(sb.berth(['spec', '-b', a]).status).toBe(0);
    const runc = spawnSync('runc', ['spec', '-b', b]);
    expect(runc.status).toBe(0);
    const ours = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8'));
    const theirs = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    delete ours.ociVersion;
    delete theirs.ociVersion;
    expect(ours).toEqual(theirs);
    expect(sb.berth(['spec', '-b', a]).stderr).toMatch(/config\.json already exists/);
  });

  it('adds a cgroup namespace where the host has only cgroup v2, as runc spec does', () => {
    // both in a mount namespace where /sys/fs/cgroup is a cgroup2 mount, whatever this host's layout
    const a = join(sb.dir, 'spec-v2-a');
    const b = join(sb.dir, 'spec-v2-b');
    const script = [
      '{ [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] || mount -t cgroup2 cgroup2 /sys/fs/cgroup; }',
      `mkdir ${a} ${b}`,
      `${process.execPath} ${CLI} spec -b ${a}`,
      `runc spec -b ${b}`,
    ].join(' && ');
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const ours = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8'));
    const theirs = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    expect(ours.linux.namespaces.map((n: { type: string }) => n.type)).toEqual([
      'pid',
      'network',
      'ipc',
      'uts',
      'mount',
      'cgroup',
    ]);
    delete ours.ociVersion;
    delete theirs.ociVersion;
    expect(ours).toEqual(theirs);
  });
});
