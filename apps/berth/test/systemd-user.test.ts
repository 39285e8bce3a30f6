// Integration (root): the systemd cgroup driver (`--systemd-cgroup`) with a user's systemd, as
// rootless podman uses it on a cgroup v2 host: podman runs its runtime as root in the user's
// user namespace, and the container's scope is the user manager's (user@UID.service), not the
// system's. This machine has no systemd, so the test runs one user manager of its own: a user
// made for the test, `systemd --user` with a target that starts nothing, in a pid, mount and
// cgroup namespace of its own with cgroup2 on /sys/fs/cgroup (a cgroup of this test's, the
// namespace's root, delegated to the user) and a private /run (its XDG_RUNTIME_DIR, and the
// /run/systemd/system that tells a manager it may run). No system manager runs there.
// berth runs as root in a user namespace mapped to the user (`unshare --map-root-user`), in a
// scope of the user manager's (`systemd-run --user --scope`), as podman runs it.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cgroup } from '@berth/cgroups';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, Sandbox } from './helpers.js';
import { type TestUser, TestUsers, UsersCli } from './users.js';

const sandbox = new Sandbox();
const users = new TestUsers();
// where the test's scripts live: every user may search it, only root write it
const work = mkdtempSync(join(tmpdir(), 'berth-systemd-user-test-'));
chmodSync(work, 0o755);
const cgroupsPath = `/berth-systemd-user-test-${process.pid}`;
let cgroup: Cgroup | undefined;
let outer: ReturnType<typeof spawn> | undefined;
let user: TestUser;
let cli: UsersCli;
/** the user manager's pid as this test sees it */
let managerPid = 0;
/** the test's cgroup2 directory: the namespace's /sys/fs/cgroup */
let unified = '';

const TIMEOUT = Number(process.env['BERTH_TEST_COMMAND_TIMEOUT'] ?? 60_000);
const runtimeDir = () => `/run/user/${user.uid}`;

let outputs = 0;
/**
 * `argv` as the user in the namespaces, its process first put in the user manager's own cgroup
 * (a process of the user's session, which the manager may move into scopes of its own). Output
 * through files: a container a command leaves running holds what it inherited.
 */
function asUser(argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const out = join(work, `out-${++outputs}`);
  const fo = openSync(out, 'w');
  const fe = openSync(`${out}.err`, 'w');
  try {
    const r = spawnSync(
      'nsenter',
      [
        '-t',
        String(managerPid),
        '-m',
        '-p',
        '-C',
        '--',
        'sh',
        '-c',
        'echo $$ > /sys/fs/cgroup/user/init.scope/cgroup.procs && exec "$@"',
        'sh',
        'setpriv',
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        '--init-groups',
        '--',
        'env',
        '-i',
        `HOME=${user.home}`,
        `USER=${user.name}`,
        `XDG_RUNTIME_DIR=${runtimeDir()}`,
        'PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin',
        ...argv,
      ],
      { stdio: ['ignore', fo, fe], timeout: TIMEOUT, cwd: user.home },
    );
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

/** berth as root in a user namespace mapped to the user, in a scope of the user manager's. */
const berth = (args: string[]) =>
  asUser([
    'systemd-run',
    '--user',
    '--scope',
    '--quiet',
    '--',
    'unshare',
    '--map-root-user',
    '--',
    cli.bin,
    '--systemd-cgroup',
    ...args,
  ]);

/** `systemctl --user show UNIT -p …` as a record. */
function show(unit: string, ...props: string[]): Record<string, string> {
  const r = asUser(['systemctl', '--user', 'show', unit, ...props.flatMap((p) => ['-p', p])]);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

/**
 * A bundle of the user's (container root is the user): no cgroup namespace, no resources, and
 * no `gid=5` for devpts (a namespace that maps only the user has no group 5: `berth spec --rootless`).
 */
// biome-ignore lint/suspicious/noExplicitAny: tests edit config.json freely
function bundle(edit: (c: Record<string, any>) => void): string {
  const b = join(user.home, `bundle-${++outputs}`);
  cpSync(
    sandbox.bundle((c) => {
      delete c.linux.resources;
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'cgroup');
      for (const m of c.mounts)
        if (m.type === 'devpts') m.options = m.options.filter((o: string) => o !== 'gid=5');
      edit(c);
    }),
    b,
    { recursive: true, verbatimSymlinks: true },
  );
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, b]);
  return b;
}

beforeAll(async () => {
  user = users.make(false);
  // where the namespace sees it (its /run is its own) and berth trusts its launcher (not in /tmp)
  cli = new UsersCli(user, '/var/lib');
  cgroup = await Cgroup.create(cgroupsPath);
  unified = cgroup.paths['unified'] ?? '';
  expect(unified).not.toBe('');
  // a target that starts nothing: the manager runs, and no unit of the user's with it
  const units = join(user.home, '.config', 'systemd', 'user');
  spawnSync('mkdir', ['-p', units]);
  writeFileSync(join(units, 'berth-test.target'), '[Unit]\nDescription=berth test\nDefaultDependencies=no\n');
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, join(user.home, '.config')]);
  writeFileSync(
    join(work, 'boot.sh'),
    `set -e
# over whatever is there (a cgroup2 mount is refused on top of its own root: EBUSY)
mount -t tmpfs -o mode=0755 tmpfs /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# a /run of its own: the user's runtime dir, and /run/systemd/system, without which a user
# manager refuses to start ("the system has not been booted with systemd"); the host's /run
# must not say that systemd runs
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system ${runtimeDir()}
chown ${user.uid}:${user.gid} ${runtimeDir()}
chmod 0700 ${runtimeDir()}
# the namespace's cgroup tree below /user is the user's, as systemd delegates user@UID.service
mkdir /sys/fs/cgroup/user
chown -R ${user.uid}:${user.gid} /sys/fs/cgroup/user
echo $$ > /sys/fs/cgroup/user/cgroup.procs
setpriv --reuid=${user.uid} --regid=${user.gid} --init-groups -- env -i HOME=${user.home} USER=${user.name} XDG_RUNTIME_DIR=${runtimeDir()} PATH=/usr/bin:/bin /lib/systemd/systemd --user --unit=berth-test.target --log-target=console &
wait
`,
  );
  // the shell joins the cgroup, then unshare makes the namespaces and forks the script as their PID 1
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
  const deadline = Date.now() + 60_000;
  for (;;) {
    // unshare → the script (PID 1 there) → setpriv, which becomes systemd
    const script = spawnSync('pgrep', ['-P', String(outer.pid)], { encoding: 'utf8' }).stdout.trim();
    const manager = script ? spawnSync('pgrep', ['-P', script], { encoding: 'utf8' }).stdout.trim() : '';
    if (manager && existsSync(`/proc/${manager}/root${runtimeDir()}/systemd/private`)) {
      managerPid = Number(manager);
      break;
    }
    if (Date.now() > deadline || outer.exitCode !== null)
      throw new Error(
        `the user manager did not start in its namespace:\n${readFileSync(join(work, 'systemd.log'), 'utf8').slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}, 120_000);

afterAll(async () => {
  try {
    if (managerPid) for (const id of sandbox.ids) berth(['delete', '-f', id]);
    if (outer?.pid) {
      // the script is PID 1 of its namespace: the kernel takes everything in it along
      const script = spawnSync('pgrep', ['-P', String(outer.pid)], { encoding: 'utf8' }).stdout.trim();
      try {
        if (script) process.kill(Number(script), 'SIGKILL');
      } catch {}
      await new Promise((r) =>
        outer!.exitCode !== null || outer!.signalCode !== null ? r(0) : outer!.once('exit', r),
      );
    }
    // the user manager's slices and scopes, then the test's own cgroup
    if (cgroup) await cgroup.delete();
    expect(existsSync(unified)).toBe(false);
  } finally {
    cli?.remove();
    sandbox.cleanup();
    rmSync(work, { recursive: true, force: true });
    expect(users.remove()).toEqual([]);
  }
}, 120_000);

describe("the systemd cgroup driver with a user's systemd (rootless podman's)", () => {
  it("makes the container's scope in the user manager's user.slice; state in $XDG_RUNTIME_DIR; ps, pause, resume; delete stops it", () => {
    const id = sandbox.id('sdu');
    const b = bundle((c) => {
      c.process.args = ['sleep', '300'];
    });
    const r = berth(['run', '-d', '-b', b, id]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const unit = `berth-${id}.scope`;
    // the user manager's unit, delegated, in its own user.slice (below user@UID.service on a host)
    expect(show(unit, 'ActiveState', 'Delegate', 'ControlGroup', 'Slice')).toEqual({
      ActiveState: 'active',
      Delegate: 'yes',
      ControlGroup: `/user/user.slice/${unit}`,
      Slice: 'user.slice',
    });
    const dir = join(unified, 'user', 'user.slice', unit);
    expect(statSync(dir).uid).toBe(user.uid);
    const state = JSON.parse(berth(['state', id]).stdout);
    expect(state.status).toBe('running');
    // the container's process is in the scope (the pid as this test sees it: the state's is the namespace's)
    const procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
    expect(procs).toHaveLength(1);
    expect(alive(procs[0]!)).toBe(true);
    expect(readFileSync(`/proc/${procs[0]}/cmdline`, 'utf8')).toBe('sleep\u0000300\u0000');
    // root in the user's namespace keeps its state in the user's runtime dir (runc: $XDG_RUNTIME_DIR/runc)
    expect(existsSync(`/proc/${managerPid}/root${runtimeDir()}/berth/${id}/state.json`)).toBe(true);
    expect(berth(['ps', id]).stdout).toMatch(/sleep 300/);
    expect(berth(['pause', id]).status).toBe(0);
    expect(readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim()).toBe('1');
    expect(JSON.parse(berth(['state', id]).stdout).status).toBe('paused');
    expect(berth(['resume', id]).status).toBe(0);
    expect(readFileSync(join(dir, 'cgroup.freeze'), 'utf8').trim()).toBe('0');
    const d = berth(['delete', '-f', id]);
    expect(d.stderr).toBe('');
    expect(d.status).toBe(0);
    expect(alive(procs[0]!)).toBe(false);
    expect(show(unit, 'LoadState').LoadState).toBe('not-found');
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(`/proc/${managerPid}/root${runtimeDir()}/berth/${id}`)).toBe(false);
  });

  it("takes podman's cgroupsPath (user.slice:libpod:ID) and runs a container to its exit status", () => {
    const id = sandbox.id('sdu');
    const b = bundle((c) => {
      c.linux.cgroupsPath = `user.slice:libpod:${id}`;
      c.process.args = ['sh', '-c', 'cat /proc/self/cgroup; exit 5'];
    });
    const r = berth(['run', '-b', b, id]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(5);
    expect(r.stdout).toMatch(new RegExp(`^0::/user/user\\.slice/libpod-${id}\\.scope$`, 'm'));
    expect(show(`libpod-${id}.scope`, 'LoadState').LoadState).toBe('not-found');
  });

  it('says which manager it looked for when none runs there', () => {
    const id = sandbox.id('sdu');
    const b = bundle(() => {});
    // a runtime dir of the user's where no manager listens
    const r = asUser([
      'sh',
      '-c',
      `mkdir -p "$HOME/.rt-none" && XDG_RUNTIME_DIR="$HOME/.rt-none" exec unshare --map-root-user -- ${cli.bin} --root "$HOME/.rt-none/berth" --systemd-cgroup run -b ${b} ${id}`,
    ]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(
      `the user's systemd is not running (no ${user.home}/.rt-none/systemd/private)`,
    );
    expect(existsSync(join(user.home, '.rt-none', 'berth', id))).toBe(false);
  });
});
