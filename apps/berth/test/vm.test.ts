// Integration: `berth run --backend vm` — an image in a QEMU microVM with its own kernel
// (TCG where /dev/kvm is missing). The image form mounts the snapshot on the host and
// shares it; the terminal form relays the guest's pty. python3 plays the terminal.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, PTY_RUN, Sandbox } from './helpers.js';

const sb = new Sandbox();

/** QEMU processes started for this sandbox (their command line names its directory). */
function qemus(): string[] {
  try {
    return execFileSync('pgrep', ['-af', 'qemu-system'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(sb.dir));
  } catch {
    return [];
  }
}

afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.states()).toEqual([]);
  expect(qemus()).toEqual([]);
});
afterAll(() => sb.cleanup());

// TCG guests on a host whose two cores run other tests' VMs too can be slow (not stuck)
const VM_TESTS = { timeout: 900_000 };

describe('berth run --backend vm', VM_TESTS, () => {
  it('runs an image in a VM with its own kernel; the exit status is the container’s', () => {
    sb.image(); // the built-in busybox image, made by a container run
    const hostKernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        '--root',
        sb.root,
        'run',
        '--rm',
        '--backend',
        'vm',
        '--memory',
        '96m',
        'busybox',
        'sh',
        '-c',
        'echo "kernel $(uname -r)"; echo "pid $$"; test -e /etc/resolv.conf && echo resolv; exit 9',
      ],
      { encoding: 'utf8', env: { ...process.env, BERTH_STORE: sb.store }, timeout: 300_000 },
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(9);
    const kernel = /kernel (\S+)/.exec(r.stdout)?.[1];
    expect(kernel).toBeTruthy();
    expect(kernel).not.toBe(hostKernel);
    // a pid namespace of its own inside the guest, and the files the network setup binds
    expect(r.stdout).toContain('pid 1\n');
    expect(r.stdout).toContain('resolv\n');
  });

  it('gives the container a terminal with -t', () => {
    const r = spawnSync(
      'python3',
      [
        '-c',
        PTY_RUN,
        process.execPath,
        CLI,
        '--root',
        sb.root,
        'run',
        '--rm',
        '-t',
        '--backend',
        'vm',
        'busybox',
        'sh',
        '-c',
        'tty; test -t 0 && echo stdin-is-tty; exit 4',
      ],
      { encoding: 'utf8', env: { ...process.env, BERTH_STORE: sb.store }, timeout: 300_000 },
    );
    // each line ended by \r\n, once: what a terminal shows without a staircase
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r\nstdin-is-tty\r\n/);
    expect(r.stdout).not.toContain('\r\r\n');
    expect(r.status).toBe(4);
  });

  it('hands a terminal to --console-socket for a detached VM container', () => {
    const bundle = sb.bundle((c) => {
      c.process.terminal = true;
      c.process.args = ['sh', '-c', 'echo "on $(tty)"; read line; echo "got $line"'];
      c.annotations = { 'org.berth.backend': 'vm' };
    });
    const id = sb.id('vmcon');
    const sock = join(sb.dir, `${id}.sock`);
    // python3 is the console-socket server (Node cannot receive fds), as containerd's shim would be
    const script = `
import os, select, socket, subprocess, sys, time
sock_path, root, cli, bundle, cid = sys.argv[1:6]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(sock_path)
srv.listen(1)
base = [${JSON.stringify(process.execPath)}, cli, '--root', root]
log = open(sock_path + '.log', 'w')
create = subprocess.Popen(base + ['create', '--console-socket', sock_path, '-b', bundle, cid], stdout=log, stderr=log)
srv.settimeout(180)
conn, _ = srv.accept()
msg, fds, _, _ = socket.recv_fds(conn, 64, 1)
create.wait()
if create.returncode != 0:
    sys.exit('create failed')
subprocess.run(base + ['start', cid], check=True)
out = b''
sent = False
deadline = time.time() + 120
while b'got hello\\r\\n' not in out and time.time() < deadline:
    r, _, _ = select.select([fds[0]], [], [], 1)
    if not r:
        continue
    try:
        chunk = os.read(fds[0], 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
    if not sent and b'on ' in out and b'\\n' in out:
        os.write(fds[0], b'hello\\r')
        sent = True
sys.stdout.write(out.decode())
`;
    const r = spawnSync('python3', ['-c', script, sock, sb.root, CLI, bundle, id], {
      encoding: 'utf8',
      env: { ...process.env, BERTH_STORE: sb.store },
      timeout: 240_000,
    });
    expect(r.stderr).toBe('');
    expect(readFileSync(`${sock}.log`, 'utf8')).toBe('');
    // the guest's own pty, relayed to the master the socket received; keys typed there reach it
    // lines ended by \r\n, as from runc's and crun's ptys (ONLCR on): the receiver relays them as they are
    expect(r.stdout).toMatch(/^on \/dev\/pts\/\d+\r\n/);
    expect(r.stdout).toContain('got hello\r\n');
    expect(r.stdout).not.toContain('\r\r\n');
    expect(sb.berth(['delete', '--force', id])).toMatchObject({ status: 0, stderr: '' });
  });

  it('a failing poststart hook is an error: the VM is stopped and destroyed, and run says so', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
      c.hooks = {
        poststart: [{ path: '/bin/sh', args: ['sh', '-c', 'echo poststart says no >&2; exit 3'] }],
      };
    });
    const r = spawnSync(
      process.execPath,
      [
        CLI,
        '--root',
        sb.root,
        'run',
        '--backend',
        'vm',
        '--network',
        'none',
        '-b',
        bundle,
        sb.id('vm-pstart'),
      ],
      { encoding: 'utf8', timeout: 300_000 },
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/hooks\.poststart\[0\] .*exit status 3: poststart says no/);
    expect(r.stderr).not.toMatch(/does not exist/);
    // afterEach: no state, mount or QEMU left
  });

  it('says in berth features what a VM container honours', () => {
    const r = sb.berth(['features']);
    expect(r.status).toBe(0);
    const a = JSON.parse(r.stdout).annotations as Record<string, string>;
    expect(a['org.berth.backend.vm.honours']).toMatch(/--console-socket/);
    expect(a['org.berth.backend.vm.honours']).toMatch(/pause and resume/);
    expect(a['org.berth.backend.vm.unsupported']).toMatch(/update/);
    expect(a['org.berth.backend.vm.unsupported']).not.toMatch(/pause|console-socket/);
  });

  it('refuses an unknown backend, naming the flag', () => {
    const r = sb.berth(['run', '--rm', '--backend', 'kvm', 'busybox', 'true']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--backend must be container or vm, not "kvm"/);
  });
});
