// Integration (root): the systemd cgroup driver (`--systemd-cgroup`) against a real systemd.
// This machine's PID 1 is not systemd, so each run starts one: Debian's /lib/systemd/systemd
// as PID 1 of a pid, mount and cgroup namespace of its own (as in a systemd container), with
// a private /run, cgroup2 mounted on /sys/fs/cgroup (a cgroup of this test's, the namespace's
// root) and a target that starts nothing. berth then runs in its namespaces (nsenter) and
// talks to it over /run/systemd/private, as on a systemd host. On a hybrid host that cgroup2
// lists no memory, pids or cpu controller: the limits test runs in the cgroup v2 test guest.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cgroup, discoverHierarchy, startScope } from '@berth/cgroups';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, Sandbox } from './helpers.js';

const sandbox = new Sandbox();
const work = mkdtempSync(join(tmpdir(), 'berth-systemd-test-'));
const cgroupsPath = `/berth-systemd-test-${process.pid}`;
let cgroup: Cgroup | undefined;
let outer: ReturnType<typeof spawn> | undefined;
/** systemd's pid as this test sees it (PID 1 in its namespace) */
let systemdPid = 0;
/** the sandbox's cgroup2 directory: the namespace's /sys/fs/cgroup */
let unified = '';

const hierarchy = await discoverHierarchy();
/** the controllers this host's cgroup2 root offers (none of this test's doing) */
const rootControllers = hierarchy.unified
  ? readFileSync(join(hierarchy.unified, 'cgroup.controllers'), 'utf8').split(/\s+/)
  : [];

const TIMEOUT = Number(process.env['BERTH_TEST_COMMAND_TIMEOUT'] ?? 60_000);
/** systemd's start, under TCG in the guest too */
const BOOT_TIMEOUT = 100_000;

let outputs = 0;
/**
 * A command in systemd's mount, pid and cgroup namespaces. Its output goes through files: a
 * container that a command leaves running (create, run -d) holds what it inherited.
 */
function inside(argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const out = join(work, `out-${++outputs}`);
  const fo = openSync(out, 'w');
  const fe = openSync(`${out}.err`, 'w');
  try {
    const r = spawnSync('nsenter', ['-t', String(systemdPid), '-m', '-p', '-C', '--', ...argv], {
      stdio: ['ignore', fo, fe],
      timeout: TIMEOUT,
    });
    return {
      status: r.status,
      stdout: readFileSync(out, 'utf8'),
      stderr: readFileSync(`${out}.err`, 'utf8'),
    };
  } finally {
    closeSync(fo);
    closeSync(fe);
  }
}

/**
 * The CLI with the systemd driver, where systemd is, started as containerd's shim or conmon
 * is on a systemd host: in a unit of its own (a scope, by systemd-run).
 */
const berth = (args: string[]) =>
  inside([
    'systemd-run',
    '--scope',
    '--quiet',
    '--',
    process.execPath,
    CLI,
    '--root',
    join(work, 'run'),
    '--systemd-cgroup',
    ...args,
  ]);

/** A command that must succeed; its stderr says why where it did not (the guest's log is all CI shows). */
const ok = (r: { status: number | null; stderr: string }) => expect(r.status, r.stderr).toBe(0);

/** `systemctl show UNIT -p …` as a record. */
function show(unit: string, ...props: string[]): Record<string, string> {
  const r = inside(['systemctl', 'show', unit, ...props.flatMap((p) => ['-p', p])]);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/**
 * A bundle as the sandbox makes it, without linux.resources and without a cgroup namespace
 * (`berth spec` adds one on a cgroup2-only host): the container sees its cgroup's full path,
 * and its /sys/fs/cgroup is its own cgroup, on every host.
 */
// biome-ignore lint/suspicious/noExplicitAny: tests edit config.json freely
function bundle(edit: (c: Record<string, any>) => void): string {
  return sandbox.bundle((c) => {
    delete c.linux.resources;
    c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'cgroup');
    edit(c);
  });
}

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.trim());

beforeAll(async () => {
  // a cgroup of this test's, made as berth makes a container's (every controller offered above it
  // on a cgroup2-only host); its cgroup2 directory becomes the namespace's cgroup root
  cgroup = await Cgroup.create(cgroupsPath);
  unified = cgroup.paths['unified'] ?? '';
  expect(unified).not.toBe('');
  writeFileSync(
    join(work, 'boot.sh'),
    `set -e
# over whatever is there (a cgroup2 mount is refused on top of its own root: EBUSY)
mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system
printf '[Unit]\\nDescription=berth test\\nDefaultDependencies=no\\n' > /run/systemd/system/berth-test.target
exec env container=berth-test /lib/systemd/systemd --unit=berth-test.target --log-target=console
`,
  );
  // the shell joins the cgroup, then unshare makes the namespaces and forks systemd as their PID 1
  const log = openSync(join(work, 'systemd.log'), 'w');
  outer = spawn(
    'sh',
    [
      '-c',
      `echo $$ > ${unified}/cgroup.procs && exec unshare --pid --mount --cgroup --fork --mount-proc sh ${join(work, 'boot.sh')}`,
    ],
    { stdio: ['ignore', log, log] },
  );
  closeSync(log);
  const deadline = Date.now() + BOOT_TIMEOUT;
  for (;;) {
    const child = spawnSync('pgrep', ['-P', String(outer.pid)], { encoding: 'utf8' }).stdout.trim();
    if (child) {
      systemdPid = Number(child);
      if (existsSync(`/proc/${systemdPid}/root/run/systemd/private`)) {
        // unshare, systemd's parent, waits in the namespace's root cgroup, which then has a process
        // of its own and could give its children no controller (a host's root cgroup may): it goes
        // back to this test's cgroup, and systemd enables controllers at its next unit
        const own = /^0::(.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1] ?? '/';
        writeFileSync(join(hierarchy.unified ?? '', own, 'cgroup.procs'), String(outer.pid));
        break;
      }
    }
    if (Date.now() > deadline || outer.exitCode !== null)
      throw new Error(
        `systemd did not start in its namespace:\n${readFileSync(join(work, 'systemd.log'), 'utf8').slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  for (const id of sandbox.ids) berth(['delete', '-f', id]);
  if (outer?.pid) {
    try {
      // PID 1 of its namespace: the kernel takes everything in it along
      process.kill(systemdPid, 'SIGKILL');
    } catch {}
    await new Promise((r) =>
      outer!.exitCode !== null || outer!.signalCode !== null ? r(0) : outer!.once('exit', r),
    );
  }
  // systemd's slices and scopes, then the test's own cgroup; nothing of the host's was touched
  if (cgroup) await cgroup.delete();
  expect(existsSync(unified)).toBe(false);
  sandbox.cleanup();
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('the systemd cgroup driver', () => {
  it('run -d makes a delegated transient scope holding the container process alone; delete -f stops it', () => {
    const id = sandbox.id('sd');
    const b = bundle((c) => {
      c.process.args = ['sleep', '300'];
    });
    const r = berth(['run', '-d', '-b', b, id]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const unit = `berth-${id}.scope`;
    expect(show(unit, 'ActiveState', 'Delegate', 'ControlGroup', 'Slice')).toEqual({
      ActiveState: 'active',
      Delegate: 'yes',
      ControlGroup: `/system.slice/${unit}`,
      Slice: 'system.slice',
    });
    // the launcher the scope was made with has left it: only the container's process is there
    const state = JSON.parse(berth(['state', id]).stdout);
    const dir = join(unified, 'system.slice', unit);
    const procs = lines(join(dir, 'cgroup.procs'));
    expect(procs).toHaveLength(1);
    // its pid here, in systemd's namespace (where berth ran), and in its own
    expect(readFileSync(`/proc/${procs[0]}/status`, 'utf8')).toMatch(
      new RegExp(`^NSpid:\\s+${procs[0]}\\s+${state.pid}\\s+1$`, 'm'),
    );
    const ns = inside(['cat', `/proc/${state.pid}/cgroup`]).stdout;
    expect(ns).toMatch(new RegExp(`^0::/system\\.slice/${unit.replace(/\./g, '\\.')}$`, 'm'));
    expect(berth(['ps', id]).stdout).toMatch(/sleep 300/);
    // exec joins the scope; pause freezes it (systemd follows), resume thaws it
    expect(berth(['exec', id, 'grep', '^0::', '/proc/self/cgroup']).stdout.trim()).toBe(
      `0::/system.slice/${unit}`,
    );
    ok(berth(['pause', id]));
    expect(readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim()).toBe('1');
    expect(JSON.parse(berth(['state', id]).stdout).status).toBe('paused');
    ok(berth(['resume', id]));
    expect(readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim()).toBe('0');

    const d = berth(['delete', '-f', id]);
    expect(d.stderr).toBe('');
    expect(d.status).toBe(0);
    expect(show(unit, 'LoadState').LoadState).toBe('not-found');
    expect(existsSync(dir)).toBe(false);
  });

  it('a foreground run: the launcher leaves the scope, the exit status passes, the unit goes with the container', () => {
    const id = sandbox.id('sd');
    const b = bundle((c) => {
      // without a cgroup namespace the container's /sys/fs/cgroup is its own cgroup: its
      // cgroup.procs lists the launcher too (as pid 0, outside the container's pid namespace)
      // unless it left
      c.process.args = [
        'sh',
        '-c',
        'grep ^0:: /proc/self/cgroup; echo procs; cat /sys/fs/cgroup/cgroup.procs; exit 7',
      ];
    });
    const r = berth(['run', '-b', b, id]);
    const [self, marker, ...procs] = r.stdout.trim().split('\n');
    expect(self).toBe(`0::/system.slice/berth-${id}.scope`);
    expect(marker).toBe('procs');
    // sh and cat (grep, before, has exited); the launcher would be a 0 here
    expect(procs).toEqual(['1', '3']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(7);
    expect(show(`berth-${id}.scope`, 'LoadState').LoadState).toBe('not-found');
    expect(existsSync(join(unified, 'system.slice', `berth-${id}.scope`))).toBe(false);
  });

  it('a cgroupsPath of slice:prefix:name: that slice, that unit name; a failed create leaves no unit', () => {
    const id = sandbox.id('sd');
    const unit = `tst-${id}.scope`;
    const b = bundle((c) => {
      c.process.args = ['sleep', '300'];
      c.linux.cgroupsPath = `berth_test.slice:tst:${id}`;
    });
    ok(berth(['create', '-b', b, id]));
    expect(show(unit, 'ActiveState', 'ControlGroup')).toEqual({
      ActiveState: 'active',
      ControlGroup: `/berth_test.slice/${unit}`,
    });
    // the same unit again, while it runs: refused before systemd is asked (its cgroup has a
    // process), and the running one is left as it was
    const again = sandbox.id('sd');
    const r = berth(['create', '-b', b, again]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/the container's cgroup is not empty: berth_test\.slice:tst:/);
    expect(show(unit, 'ActiveState').ActiveState).toBe('active');
    ok(berth(['delete', '-f', id]));
    expect(show(unit, 'LoadState').LoadState).toBe('not-found');

    // an executable the rootfs lacks: the create fails after the scope was made, and takes it along
    const bad = bundle((c) => {
      c.process.args = ['/nonexistent'];
    });
    const badId = sandbox.id('sd');
    const f = berth(['create', '-b', bad, badId]);
    expect(f.status).not.toBe(0);
    expect(f.stderr).toMatch(/nonexistent/);
    expect(show(`berth-${badId}.scope`, 'LoadState').LoadState).toBe('not-found');
    expect(existsSync(join(unified, 'system.slice', `berth-${badId}.scope`))).toBe(false);
  });

  // a hybrid host's cgroup2 may list none of these (this development VM's lists hugetlb alone);
  // a cgroup2-only host, such as CI's cgroup v2 test guest, lists them all
  const limitsHere = ['memory', 'pids', 'cpu'].every((c) => rootControllers.includes(c));
  (limitsHere ? it : it.skip)(
    `limits become the unit’s properties as well as the files, and update changes both${limitsHere ? '' : ' [skipped: this host lacks a controller on cgroup2: hybrid hosts may bind every controller to v1]'}`,
    () => {
      const id = sandbox.id('sd');
      const b = bundle((c) => {
        c.process.args = ['sleep', '300'];
        c.linux.resources = {
          memory: { limit: 64 * 1024 * 1024 },
          pids: { limit: 40 },
          cpu: { shares: 512, quota: 25000, period: 100000 },
        };
      });
      const r = berth(['run', '-d', '-b', b, id]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const unit = `berth-${id}.scope`;
      const dir = join(unified, 'system.slice', unit);
      expect(show(unit, 'MemoryMax', 'TasksMax', 'CPUQuotaPerSecUSec', 'CPUQuotaPeriodUSec')).toEqual({
        MemoryMax: String(64 * 1024 * 1024),
        TasksMax: '40',
        CPUQuotaPerSecUSec: '250ms',
        CPUQuotaPeriodUSec: '100ms',
      });
      expect(readFileSync(join(dir, 'memory.max'), 'utf8').trim()).toBe(String(64 * 1024 * 1024));
      expect(readFileSync(join(dir, 'pids.max'), 'utf8').trim()).toBe('40');
      expect(readFileSync(join(dir, 'cpu.max'), 'utf8').trim()).toBe('25000 100000');

      ok(berth(['update', '--memory', '128m', '--pids-limit', '60', id]));
      expect(show(unit, 'MemoryMax', 'TasksMax')).toEqual({
        MemoryMax: String(128 * 1024 * 1024),
        TasksMax: '60',
      });
      expect(readFileSync(join(dir, 'memory.max'), 'utf8').trim()).toBe(String(128 * 1024 * 1024));
      // a reload makes systemd write its values again: they are the container's
      ok(inside(['systemctl', 'daemon-reload']));
      expect(readFileSync(join(dir, 'memory.max'), 'utf8').trim()).toBe(String(128 * 1024 * 1024));
      expect(readFileSync(join(dir, 'pids.max'), 'utf8').trim()).toBe('60');
      const del = berth(['delete', '-f', id]);
      expect(del.stderr).toBe('');
      expect(del.status).toBe(0);
      expect(existsSync(dir)).toBe(false);
    },
  );
});

describe('where the driver cannot be used', () => {
  it('a host whose systemd does not run says so, and makes nothing', () => {
    // outside the namespaces: this machine's PID 1 is not systemd (on a systemd host, skip)
    if (existsSync('/run/systemd/system')) return;
    const id = sandbox.id('sd');
    const b = bundle(() => {});
    const r = spawnSync(
      process.execPath,
      [CLI, '--root', sandbox.root, '--systemd-cgroup', 'create', '-b', b, id],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/systemd is not running \(no \/run\/systemd\/system\)/);
    expect(existsSync(join(sandbox.root, id))).toBe(false);
  });

  it('a v1 or hybrid layout is refused before systemd is asked (it would reset the v1 device rules)', async () => {
    for (const layout of ['v1', 'hybrid'] as const)
      await expect(
        startScope({ cgroupsPath: 'system.slice:berth:x', pid: process.pid, layout }),
      ).rejects.toThrow(/needs a cgroup v2 \(unified\) host; this one is (v1|hybrid)/);
  });
});
