// The cgroup v2 test host: this machine's cgroups may be v1 or hybrid, so the v2
// code of @berth/cgroups and the CLI's limits are also run against a kernel that
// has only a cgroup2 hierarchy, with every controller: a guest booted by @berth/vm
// (QEMU, TCG where /dev/kvm is missing) with the host's root filesystem shared
// read-only over virtio-9p. Inside it vitest runs packages/cgroups/test/*.test.ts
// and apps/berth/test/cgroups.test.ts (test/cgroup-v2/vitest.config.ts), and, since
// Debian's kernel enables AppArmor, apps/berth/test/guest/apparmor.guest.ts; its JSON
// report comes back through a writable 9p share and the counts are asserted here.
// Needs root, qemu-system-x86 and musl-tools (scripts/setup.sh), and a built tree.
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PlanStep } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { createVm, runFiles, type Vm } from '../src/index.js';

const REPO = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');
const CONFIG = fileURLToPath(new URL('./cgroup-v2/vitest.config.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'berth-v2host-'));
let vm: Vm | undefined;
afterAll(async () => {
  await vm?.delete();
  rmSync(dir, { recursive: true, force: true });
});

const CLONE_NEWNS = 0x20000;
const MS_NOSUID = 2;
const MS_NODEV = 4;
const MS_BIND = 4096;
const MS_REC = 16384;

/** Where the guest mounts the host's root, and the plan that turns it into the guest's root. */
const HOST = '/host';
/** The writable host directory the report comes back through, in the guest. */
const OUT = '/berth-out';
/** The repository, shared on its own: it may sit under a directory the plan covers with a tmpfs (a CI clone in /tmp). */
const REPO_SHARE = '/berth-repo';

function plan(cli: string): PlanStep[] {
  const tmpfs = (target: string, mode: string): PlanStep => ({
    op: 'mount',
    source: 'tmpfs',
    target: `${HOST}${target}`,
    fstype: 'tmpfs',
    flags: MS_NOSUID | MS_NODEV,
    data: `mode=${mode}`,
  });
  const bind = (source: string, target: string): PlanStep => ({
    op: 'mount',
    source,
    target: `${HOST}${target}`,
    flags: MS_BIND | MS_REC,
  });
  return [
    // a mount namespace of its own: the pivot_root below must not move the agent's root
    { op: 'clone', flags: CLONE_NEWNS, detach: false },
    { op: 'sync', id: 2 },
    // the host's root is read-only: what the tests write goes to memory
    tmpfs('/tmp', '1777'),
    tmpfs('/run', '0755'),
    tmpfs('/var/tmp', '1777'),
    tmpfs('/root', '0700'),
    // the repository at its own path again, wherever it is (mkdir -p is a no-op where it is visible)
    { op: 'mkdir', path: `${HOST}${REPO}`, mode: 0o755 },
    bind(REPO_SHARE, REPO),
    bind('/dev', '/dev'),
    { op: 'mount', source: 'proc', target: `${HOST}/proc`, fstype: 'proc', flags: MS_NOSUID | MS_NODEV },
    // the guest's sysfs, with the agent's cgroup2 mount on /sys/fs/cgroup
    bind('/sys', '/sys'),
    bind(OUT, '/mnt'),
    // pivot_root, not chroot: the host's root becomes this namespace's root, as on a real
    // host, so that containers pivot from there, `setns` into their mount namespaces lands
    // in their root, and AppArmor names their files as they see them
    { op: 'pivotRoot', root: HOST },
    { op: 'chdir', path: REPO },
    {
      op: 'exec',
      path: process.execPath,
      argv: [
        process.execPath,
        join(REPO, 'node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        CONFIG,
        '--configLoader',
        'runner',
        '--reporter=default',
        '--reporter=json',
        '--outputFile.json=/mnt/report.json',
      ],
      env: [
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        'HOME=/root',
        'TMPDIR=/tmp',
        'CI=1',
        'NO_COLOR=1',
        `BERTH_TEST_CLI=${cli}`,
        // the copied CLI finds koffi (its one native dependency) in the repository
        `NODE_PATH=${join(REPO, 'node_modules')}`,
        // the guest kernel has no bridge, veth or nftables modules: `berth run IMAGE` without a network
        'BERTH_DEFAULT_NETWORK=none',
        // emulated CPUs: a CLI command may take far longer than on the host
        'BERTH_TEST_COMMAND_TIMEOUT=300000',
      ],
    },
  ];
}

interface Report {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: Array<{
    name: string;
    assertionResults: Array<{ fullName: string; status: string; failureMessages: string[] }>;
  }>;
}

describe('the cgroup v2 test host', () => {
  it('runs @berth/cgroups and the CLI limit tests in a guest with only cgroup2', {
    timeout: 1_200_000,
  }, async () => {
    // a copy of the CLI the guest reads from the share (a rebuild on the host cannot pull it away mid-run)
    copyFileSync(
      process.env['BERTH_TEST_CLI'] ?? join(REPO, 'apps/berth/dist/cli.cjs'),
      join(dir, 'cli.cjs'),
    );
    const cli = '/mnt/cli.cjs';
    const log = openSync(join(dir, 'vitest.log'), 'w');
    const started = Date.now();
    try {
      vm = await createVm({
        id: `v2host-${process.pid}`,
        rootfs: '/',
        guestPath: HOST,
        readonly: true,
        steps: plan(cli),
        runDir: join(dir, 'vm'),
        size: { vcpus: 2, memoryMiB: 3072 },
        stdio: ['ignore', log, log],
        shares: [
          { path: dir, guestPath: OUT, readonly: false },
          { path: REPO, guestPath: REPO_SHARE, readonly: true },
        ],
        cgroup2: true,
        autostart: true,
        timeoutMs: 300_000,
      });
    } finally {
      closeSync(log);
    }
    const booted = Date.now();
    const status = await vm.wait();
    const output = readFileSync(join(dir, 'vitest.log'), 'utf8');
    const ended = Date.now();
    const lastOutput = statSync(join(dir, 'vitest.log')).mtimeMs;
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    console.log(
      `cgroup v2 test host: ${s(ended - started)} (boot ${s(booted - started)}, vitest ${s(lastOutput - booted)}, exit ${s(ended - lastOutput)})\n${output.split('\n').slice(-30).join('\n')}`,
    );
    let report: Report;
    try {
      report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
    } catch (e) {
      throw new Error(
        `no report from the guest (${(e as Error).message}); exit ${JSON.stringify(status)}\n${output}\n${readFileSync(runFiles(join(dir, 'vm')).status, 'utf8')}\n${readFileSync(runFiles(join(dir, 'vm')).console, 'utf8').slice(-2000)}`,
      );
    }
    // the guest powered off with its tests: QEMU is gone; delete leaves no run directory
    expect(vm.alive()).toBe(false);
    await vm.delete();
    expect(existsSync(join(dir, 'vm'))).toBe(false);
    const skipped = report.testResults.flatMap((f) =>
      f.assertionResults.filter((a) => a.status !== 'passed' && a.status !== 'failed').map((a) => a.fullName),
    );
    console.log(
      `guest: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped.length} skipped${skipped.length ? `:\n  ${skipped.join('\n  ')}` : ''}`,
    );
    const failed = report.testResults.flatMap((f) =>
      f.assertionResults
        .filter((a) => a.status === 'failed')
        .map((a) => `${a.fullName}: ${a.failureMessages[0]?.split('\n')[0]}`),
    );
    expect(failed).toEqual([]);
    expect(status).toEqual({ code: 0 });
    const files = report.testResults.map((f) => f.name.slice(REPO.length + 1)).sort();
    expect(files).toEqual(
      expect.arrayContaining([
        'apps/berth/test/cgroups.test.ts',
        'apps/berth/test/guest/apparmor.guest.ts',
        'packages/cgroups/test/v2-devices.test.ts',
        'packages/cgroups/test/v2-unified.test.ts',
      ]),
    );
    expect(report.numPassedTests).toBeGreaterThanOrEqual(24);
    // skipped only where a test needs what a v2-only host cannot have (v1 controllers, a hybrid
    // layout, a controller missing from cgroup2): every v2 test ran
    expect(
      skipped.filter(
        (name) =>
          !/\[skipped: this host lacks (cgroup v1 controllers|hybrid layout|a cgroup2 controller missing from the host)/.test(
            name,
          ),
      ),
    ).toEqual([]);
  });
});
