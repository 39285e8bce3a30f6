// Integration: real podman with berth as its OCI runtime, asking for the VM backend with
// nothing but an annotation (`podman run --annotation org.berth.backend=vm`): podman does
// not know about VMs. podman gets storage and run directories of its own under a temp
// dir; the image is berth's built-in busybox, saved by berth and loaded by podman.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Sandbox } from '../helpers.js';
import { BERTH_BIN, IMAGE, imageArchive } from './clients.js';

const sb = new Sandbox();
const dir = join(sb.dir, 'podman');
const ENV = {
  ...process.env,
  CONTAINERS_CONF: join(dir, 'containers.conf'),
  CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
  CONTAINERS_REGISTRIES_CONF: join(dir, 'registries.conf'),
  XDG_CONFIG_HOME: join(dir, 'config'),
};

function podman(args: string[]) {
  const r = spawnSync(
    'podman',
    [
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
      ...args,
    ],
    { encoding: 'utf8', env: ENV, timeout: 150_000, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** VM processes (berth-vmm and QEMU) whose command line names this test's directory. */
function vms(): string[] {
  try {
    return execFileSync('pgrep', ['-af', 'qemu-system'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(dir));
  } catch {
    return [];
  }
}

beforeAll(() => {
  for (const d of ['root', 'runroot', 'tmp', 'net', 'config']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(
    join(dir, 'containers.conf'),
    '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n',
  );
  writeFileSync(
    join(dir, 'storage.conf'),
    `[storage]\ndriver = "vfs"\ngraphroot = "${join(dir, 'root')}"\nrunroot = "${join(dir, 'runroot')}"\n`,
  );
  writeFileSync(
    join(dir, 'registries.conf'),
    'unqualified-search-registries = []\nshort-name-mode = "disabled"\n',
  );
  const r = podman(['load', '-i', imageArchive(sb)]);
  if (r.status !== 0) throw new Error(`podman load: ${r.stderr}`);
});

afterAll(() => {
  expect(vms()).toEqual([]);
  expect(sb.mounts()).toEqual([]);
  sb.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

describe('podman --runtime berth --annotation org.berth.backend=vm', () => {
  it('runs the container in a VM with its own kernel and reports its exit status', () => {
    const hostKernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    const r = podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--annotation',
      'org.berth.backend=vm',
      IMAGE,
      'sh',
      '-c',
      'echo "kernel $(uname -r)"; echo "host $(hostname)"; exit 3',
    ]);
    expect(r.stderr).not.toMatch(/error/i);
    expect(r.status).toBe(3);
    const kernel = /kernel (\S+)/.exec(r.stdout)?.[1];
    expect(kernel).toBeTruthy();
    expect(kernel).not.toBe(hostKernel);
    expect(r.stdout).toMatch(/host \S+/);
    expect(vms()).toEqual([]);
  });

  it('pauses and unpauses a VM container (its vCPUs stop) and removes it with nothing left', () => {
    const name = `vmpause-${process.pid}`;
    const started = podman([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'none',
      '--annotation',
      'org.berth.backend=vm',
      IMAGE,
      'sleep',
      '600',
    ]);
    try {
      expect(started.stderr).not.toMatch(/error/i);
      expect(started.status).toBe(0);
      const status = () => podman(['inspect', '--format', '{{.State.Status}}', name]).stdout.trim();
      expect(status()).toBe('running');
      expect(podman(['pause', name])).toMatchObject({ status: 0 });
      expect(status()).toBe('paused');
      expect(podman(['unpause', name])).toMatchObject({ status: 0 });
      expect(status()).toBe('running');
    } finally {
      expect(podman(['rm', '-f', '-t', '0', name]).status).toBe(0);
    }
    expect(vms()).toEqual([]);
  });

  it('gives the VM container a terminal with -t (conmon takes the pty master from --console-socket)', () => {
    const r = podman([
      'run',
      '--rm',
      '-t',
      '--network',
      'none',
      '--annotation',
      'org.berth.backend=vm',
      IMAGE,
      'sh',
      '-c',
      'tty; test -t 1 && echo stdout-is-tty; exit 6',
    ]);
    expect(r.stderr).not.toMatch(/error/i);
    // lines end in \r\n, as podman shows them with runc or crun (the pty handed over has ONLCR on)
    expect(r.stdout).toMatch(/^\/dev\/pts\/\d+\r\nstdout-is-tty\r\n$/);
    expect(r.status).toBe(6);
    expect(vms()).toEqual([]);
  });
});
