// The guest test host, shared by the runs that need a kernel this machine does not
// have (packages/vm/test/*-host.test.ts): a guest booted by @berth/vm (QEMU, TCG
// where /dev/kvm is missing) with Debian's kernel and the host's root filesystem
// shared read-only over virtio-9p, pivoted into, where vitest runs with the config
// a run names. Its JSON report comes back through a writable 9p share; the caller
// asserts the counts on the host. Needs root, qemu-system-x86 and musl-tools
// (scripts/setup.sh), and a built tree.
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
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PlanStep } from '@berth/sys';
import { expect } from 'vitest';
import { createVm, readBounded, runFiles, type Vm } from '../src/index.js';

export const REPO = fileURLToPath(new URL('../../..', import.meta.url)).replace(/\/$/, '');

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

function plan(cli: string, config: string, start?: string): PlanStep[] {
  const vitest = [
    process.execPath,
    join(REPO, 'node_modules/vitest/vitest.mjs'),
    'run',
    '--config',
    config,
    '--configLoader',
    'runner',
    '--reporter=default',
    '--reporter=json',
    '--outputFile.json=/mnt/report.json',
  ];
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
      path: start ? '/bin/sh' : process.execPath,
      argv: start ? ['/bin/sh', start, ...vitest] : vitest,
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

export interface Report {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  testResults: Array<{
    name: string;
    assertionResults: Array<{ fullName: string; status: string; failureMessages: string[] }>;
  }>;
}

export interface GuestRun {
  /** Names the run in ids, temporary directories and the timing line. */
  name: string;
  /** The vitest config the guest runs (its `include` says which test files). */
  config: string;
  /** Extra kernel command line words (e.g. the LSM to enable). */
  cmdline?: string[];
  memoryMiB?: number;
  /** Mount a cgroup2 hierarchy on /sys/fs/cgroup (the agent does it before the plan). */
  cgroup2?: boolean;
  /** A shell script (in the repository) that prepares the guest, then runs its arguments: vitest. */
  start?: string;
}

export interface GuestResult {
  report: Report;
  /** The files that ran, relative to the repository, sorted. */
  files: string[];
  /** Full names of the tests that neither passed nor failed. */
  skipped: string[];
  /** Timings in ms: boot (until the agent runs the plan), vitest, the whole run. */
  timings: { boot: number; vitest: number; total: number };
}

/**
 * Boots a guest, runs vitest there with `run.config`, and returns its report
 * once the guest has powered off. Asserts what every run must hold: a report
 * came back, no test failed, vitest exited 0, QEMU is gone and the VM's run
 * directory with it.
 */
export async function runInGuest(run: GuestRun): Promise<GuestResult> {
  const dir = mkdtempSync(join(tmpdir(), `berth-${run.name}-`));
  let vm: Vm | undefined;
  try {
    // a copy of the CLI the guest reads from the share (a rebuild on the host cannot pull it away
    // mid-run): its bundle, and beside it the second one (the image, network and VM code)
    const cli = process.env['BERTH_TEST_CLI'] ?? join(REPO, 'apps/berth/dist/cli.cjs');
    copyFileSync(cli, join(dir, 'cli.cjs'));
    copyFileSync(join(dirname(cli), 'more.cjs'), join(dir, 'more.cjs'));
    const log = openSync(join(dir, 'vitest.log'), 'w');
    const started = Date.now();
    try {
      vm = await createVm({
        id: `${run.name}-${process.pid}`,
        rootfs: '/',
        guestPath: HOST,
        readonly: true,
        steps: plan('/mnt/cli.cjs', run.config, run.start),
        runDir: join(dir, 'vm'),
        size: { vcpus: 2, memoryMiB: run.memoryMiB ?? 3072 },
        stdio: ['ignore', log, log],
        shares: [
          { path: dir, guestPath: OUT, readonly: false },
          { path: REPO, guestPath: REPO_SHARE, readonly: true },
        ],
        ...(run.cgroup2 ? { cgroup2: true } : {}),
        ...(run.cmdline ? { cmdline: run.cmdline } : {}),
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
      `${run.name} test host: ${s(ended - started)} (boot ${s(booted - started)}, vitest ${s(lastOutput - booted)}, exit ${s(ended - lastOutput)})\n${output.split('\n').slice(-30).join('\n')}`,
    );
    let report: Report;
    try {
      report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
    } catch (e) {
      throw new Error(
        `no report from the guest (${(e as Error).message}); exit ${JSON.stringify(status)}\n${output}\n${readBounded(runFiles(join(dir, 'vm')).status, 4096)}\n${readBounded(runFiles(join(dir, 'vm')).console, 2000, true)}`,
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
    // the whole log where something failed (the line above shows only its end)
    if (failed.length || status.code !== 0) console.log(output);
    expect(failed).toEqual([]);
    expect(status).toEqual({ code: 0 });
    return {
      report,
      files: report.testResults.map((f) => f.name.slice(REPO.length + 1)).sort(),
      skipped,
      timings: { boot: booted - started, vitest: lastOutput - booted, total: ended - started },
    };
  } finally {
    await vm?.delete();
    rmSync(dir, { recursive: true, force: true });
  }
}
