// Integration: `berth run --backend vm` — an image in a QEMU microVM with its own kernel
// (TCG where /dev/kvm is missing). The image form mounts the snapshot on the host and
// shares it; the terminal form relays the guest's pty. python3 plays the terminal.
import { execFileSync, spawnSync } from 'node:child_process';
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

describe('berth run --backend vm', () => {
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
      { encoding: 'utf8', env: { ...process.env, BERTH_STORE: sb.store }, timeout: 120_000 },
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
      { encoding: 'utf8', env: { ...process.env, BERTH_STORE: sb.store }, timeout: 120_000 },
    );
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r?\n/);
    expect(r.stdout).toContain('stdin-is-tty');
    expect(r.status).toBe(4);
  });

  it('refuses an unknown backend, naming the flag', () => {
    const r = sb.berth(['run', '--rm', '--backend', 'kvm', 'busybox', 'true']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--backend must be container or vm, not "kvm"/);
  });
});
