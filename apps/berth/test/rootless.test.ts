// Integration: berth run by an unprivileged user (rootless). The test runs as root: it makes
// users of its own (useradd), gives one of them /etc/subuid and /etc/subgid ranges, runs the CLI
// as them (setpriv), and removes the users and their ranges afterwards, also on failure.
import { execFileSync, type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leftInRoot } from './helpers.js';
import { RANGE, type TestUser, TestUsers, UsersCli } from './users.js';

const NODE_MODULES = fileURLToPath(new URL('../../../node_modules', import.meta.url));
const users = new TestUsers();
let cliCopy = '';
let nodePath = '';
let usersCli: UsersCli | undefined;

/**
 * Runs `berth ARGS` as `user` (setpriv: no session, no environment but what is given). With
 * `cgroupProcs`, the process first moves itself (still as root) into that cgroup.
 */
function berthAs(
  user: TestUser,
  args: string[],
  env: Record<string, string> = {},
  cgroupProcs?: string,
): SpawnSyncReturns<string> {
  const vars = {
    HOME: user.home,
    PATH: '/usr/local/bin:/usr/bin:/bin',
    XDG_RUNTIME_DIR: user.runtimeDir,
    NODE_PATH: nodePath,
    ...env,
  };
  const argv = [
    'setpriv',
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    '--init-groups',
    '--',
    'env',
    '-i',
    ...Object.entries(vars)
      .filter(([, v]) => v !== '')
      .map(([k, v]) => `${k}=${v}`),
    process.execPath,
    cliCopy,
    ...args,
  ];
  const [cmd, ...rest] = cgroupProcs
    ? ['sh', '-c', 'echo $$ > "$0" && exec "$@"', cgroupProcs, ...argv]
    : argv;
  if (!args.includes('-d'))
    return spawnSync(cmd!, rest, { encoding: 'utf8', cwd: user.home, timeout: 120_000 });
  // a detached container keeps berth's stdout and stderr: files, not pipes, so this returns
  const out = join(outDir, `out-${++outs}`);
  const fo = openSync(out, 'w');
  const fe = openSync(`${out}.err`, 'w');
  try {
    const r = spawnSync(cmd!, rest, { stdio: ['ignore', fo, fe], cwd: user.home, timeout: 120_000 });
    return {
      ...r,
      stdout: readFileSync(out, 'utf8'),
      stderr: readFileSync(`${out}.err`, 'utf8'),
    } as SpawnSyncReturns<string>;
  } finally {
    closeSync(fo);
    closeSync(fe);
  }
}
const outDir = mkdtempSync(join(tmpdir(), 'berth-rootless-test-'));
let outs = 0;

/** Processes whose real uid is the user's or in its subordinate range (the container's). */
function processesOf(user: TestUser): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${p}/status`, 'utf8');
    } catch {
      continue;
    }
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    const sub = user.subStart !== undefined && uid >= user.subStart && uid < user.subStart + RANGE;
    if (uid === user.uid || sub) pids.push(Number(p));
  }
  return pids;
}

/** What must hold after every container of the user is gone. */
function expectNothingLeft(user: TestUser): void {
  expect(leftInRoot(join(user.runtimeDir, 'berth'))).toEqual([]);
  const containers = join(user.home, '.local', 'share', 'berth', 'containers');
  expect(existsSync(containers) ? readdirSync(containers) : []).toEqual([]);
  expect(
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(user.home)),
  ).toEqual([]);
  // a process berth killed may take a moment to be reaped
  const until = Date.now() + 5000;
  while (processesOf(user).length && Date.now() < until)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  expect(
    processesOf(user).map((p) => `${p} ${readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`),
  ).toEqual([]);
}

let ranged: TestUser;
let single: TestUser;

beforeAll(() => {
  ranged = users.make(true);
  single = users.make(false);
  usersCli = new UsersCli(ranged);
  cliCopy = usersCli.cli;
  nodePath = usersCli.nodePath;
}, 60_000);

afterAll(() => {
  rmSync(outDir, { recursive: true, force: true });
  usersCli?.remove();
  expect(users.remove()).toEqual([]);
});

describe('berth without root', () => {
  it('runs the built-in busybox image, container root mapped to the user and the subordinate range', () => {
    const keep = join(ranged.home, 'keep.txt');
    writeFileSync(keep, 'mine\n', { mode: 0o640 });
    chownSync(keep, ranged.uid, ranged.gid);
    const before = lstatSync(keep);
    const r = berthAs(ranged, [
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'id; cat /proc/self/uid_map /proc/self/gid_map',
    ]);
    expect(r.stderr).not.toMatch(/error|EACCES|EPERM/);
    expect(r.status, r.stderr).toBe(0);
    const [id, ...maps] = r.stdout.trim().split('\n');
    expect(id).toMatch(/^uid=0\(root\) gid=0\(root\)/);
    const lines = maps.map((l) => l.trim().split(/\s+/).map(Number));
    const expected = [
      [0, ranged.uid, 1],
      [1, ranged.subStart!, RANGE],
    ];
    expect(lines).toEqual([
      ...expected,
      ...expected.map(([c, h, s]) => [c, h === ranged.uid ? ranged.gid : h, s]),
    ]);
    // the state, the store and the image belong to the user, in the XDG places, mode 0700
    for (const d of [join(ranged.runtimeDir, 'berth'), join(ranged.home, '.local', 'share', 'berth')]) {
      const st = statSync(d);
      expect([st.uid, st.mode & 0o777]).toEqual([ranged.uid, 0o700]);
    }
    // the user's own files are untouched
    const after = lstatSync(keep);
    expect([after.uid, after.gid, after.mode, after.mtimeMs]).toEqual([
      before.uid,
      before.gid,
      before.mode,
      before.mtimeMs,
    ]);
    expect(readFileSync(keep, 'utf8')).toBe('mine\n');
    expectNothingLeft(ranged);
  });

  it('writes files of container users as the mapped host ids', () => {
    const vol = join(ranged.home, 'vol');
    mkdirSync(vol);
    chownSync(vol, ranged.uid, ranged.gid);
    chmodSync(vol, 0o777);
    const asRoot = berthAs(ranged, [
      'run',
      '--rm',
      '-v',
      `${vol}:/vol`,
      'busybox',
      'sh',
      '-c',
      'echo a > /vol/a',
    ]);
    expect(asRoot.status).toBe(0);
    const as1000 = berthAs(ranged, [
      'run',
      '--rm',
      '-u',
      '1000:1000',
      '-v',
      `${vol}:/vol`,
      'busybox',
      'sh',
      '-c',
      'id -u; echo b > /vol/b',
    ]);
    expect(as1000.status).toBe(0);
    expect(as1000.stdout).toBe('1000\n');
    // container root is the user; container id N >= 1 is host id subStart + N - 1
    expect([statSync(join(vol, 'a')).uid, statSync(join(vol, 'a')).gid]).toEqual([ranged.uid, ranged.gid]);
    expect([statSync(join(vol, 'b')).uid, statSync(join(vol, 'b')).gid]).toEqual([
      ranged.subStart! + 999,
      ranged.subStart! + 999,
    ]);
    expectNothingLeft(ranged);
  });

  it('without subordinate ids maps only the user itself (written by berth, setgroups denied)', () => {
    const r = berthAs(single, [
      'run',
      '--rm',
      'busybox',
      'sh',
      '-c',
      'cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups',
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/).join(' ')),
    ).toEqual([`0 ${single.uid} 1`, `0 ${single.gid} 1`, 'deny']);
    expectNothingLeft(single);
  });

  it('refuses what only root may do, with a message saying so, and leaves nothing behind', () => {
    const cases: Array<[string[], RegExp]> = [
      [['run', '--rm', '--network', 'bridge', 'busybox', 'true'], /--network bridge needs root/],
      [
        ['run', '--rm', '-p', '8080:80', 'busybox', 'true'],
        /--publish needs a bridge network, which needs root/,
      ],
    ];
    // limits need a delegated cgroup v2 subtree, which nobody gave this user
    cases.push([
      ['run', '--rm', '--memory', '64m', 'busybox', 'true'],
      /^berth: linux\.resources\.memory: berth without root can only apply cgroup limits in a cgroup v2 subtree delegated to the user, and (this host has no cgroup v2 hierarchy|no cgroup v2 subtree is delegated to you)/m,
    ]);
    for (const [args, message] of cases) {
      const r = berthAs(ranged, args);
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr).toMatch(message);
    }
    // a bundle written for root (no user namespace) is refused, naming the JSON path
    const bundle = join(ranged.home, 'bundle');
    mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(bundle, 'rootfs', 'bin', 'busybox'));
    execFileSync('chown', ['-R', `${ranged.uid}:${ranged.gid}`, bundle]);
    chmodSync(join(bundle, 'rootfs', 'bin', 'busybox'), 0o755);
    expect(berthAs(ranged, ['spec', '-b', bundle]).status).toBe(0);
    const asRoot = berthAs(ranged, ['run', '-b', bundle, `rl-${process.pid}`]);
    expect(asRoot.status).toBe(1);
    expect(asRoot.stderr).toMatch(/^berth: linux\.namespaces: berth without root needs a user namespace/m);
    expectNothingLeft(ranged);
    // state needs XDG_RUNTIME_DIR (or /run/user/UID): a clear error without it
    const noRuntime = berthAs(ranged, ['list'], { XDG_RUNTIME_DIR: '' });
    expect(noRuntime.status).toBe(1);
    expect(noRuntime.stderr).toMatch(/XDG_RUNTIME_DIR is not set .*set XDG_RUNTIME_DIR/);
    // an image store that is not the user's is refused, naming it
    const rootOwned = join(ranged.home, 'not-mine');
    mkdirSync(rootOwned, { mode: 0o755 });
    const foreign = berthAs(ranged, ['run', '--rm', 'busybox', 'true'], { BERTH_STORE: rootOwned });
    expect(foreign.status).toBe(1);
    expect(foreign.stderr).toContain(
      `refusing to use ${rootOwned}: it belongs to uid 0, not to you (uid ${ranged.uid})`,
    );
  });

  it('keeps a detached container in the user state: list, ps, exec, kill, delete', () => {
    const id = `rl-${process.pid}-d`;
    const r = berthAs(ranged, ['run', '-d', '--name', id, 'busybox', 'sleep', '300']);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(ranged.runtimeDir, 'berth', id, 'state.json'))).toBe(true);
    try {
      const list = berthAs(ranged, ['list', '--format', 'json']);
      expect(list.status, list.stderr).toBe(0);
      const [entry] = JSON.parse(list.stdout) as Array<{
        id: string;
        pid: number;
        status: string;
        owner: string;
      }>;
      expect(entry).toMatchObject({ id, status: 'running', owner: ranged.name });
      // without a cgroup, ps reads the container's pid namespace
      const ps = berthAs(ranged, ['ps', '--format', 'json', id]);
      expect(ps.status, ps.stderr).toBe(0);
      expect(JSON.parse(ps.stdout)).toEqual([entry!.pid]);
      const exec = berthAs(ranged, ['exec', id, 'cat', '/proc/self/uid_map']);
      expect(exec.status, exec.stderr).toBe(0);
      expect(exec.stdout.trim().split('\n')[0]!.trim().split(/\s+/).map(Number)).toEqual([0, ranged.uid, 1]);
      expect(berthAs(ranged, ['kill', id, 'KILL']).status).toBe(0);
    } finally {
      const del = berthAs(ranged, ['delete', '-f', id]);
      expect(del.status, del.stderr).toBe(0);
    }
    expectNothingLeft(ranged);
  });

  it('uses a cgroup v2 subtree delegated to the user: ps, pause, resume, limits where the controller is there', () => {
    // the host's cgroup2 mount (/sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified on hybrid ones)
    const mount = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' - ')[1]?.startsWith('cgroup2 '))
      ?.split(' ')[4];
    expect(mount, 'a cgroup2 hierarchy').toBeDefined();
    // delegated as systemd and admins do: the directory and its interface files chowned to the user
    const deleg = join(mount!, `berthrl-${process.pid}-${randomBytes(3).toString('hex')}`);
    const shell = join(deleg, 'shell');
    const delegate = (dir: string) => {
      mkdirSync(dir);
      for (const f of ['', 'cgroup.procs', 'cgroup.threads', 'cgroup.subtree_control'])
        chownSync(join(dir, f), ranged.uid, ranged.gid);
    };
    const id = `rl-${process.pid}-cg`;
    try {
      delegate(deleg);
      delegate(shell);
      const procs = join(shell, 'cgroup.procs');
      const r = berthAs(ranged, ['run', '-d', '--name', id, 'busybox', 'sleep', '300'], {}, procs);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toBe(''); // no "running without a cgroup" warning
      const cg = join(deleg, `berth-${id}`);
      const pids = readFileSync(join(cg, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean);
      expect(pids.length).toBe(1);
      expect(statSync(cg).uid).toBe(ranged.uid);
      const ps = berthAs(ranged, ['ps', '--format', 'json', id]);
      expect(ps.status, ps.stderr).toBe(0);
      expect(JSON.parse(ps.stdout)).toEqual(pids.map(Number));
      expect(berthAs(ranged, ['pause', id]).status).toBe(0);
      expect(readFileSync(join(cg, 'cgroup.freeze'), 'utf8').trim()).toBe('1');
      expect(JSON.parse(berthAs(ranged, ['state', id]).stdout).status).toBe('paused');
      expect(berthAs(ranged, ['resume', id]).status).toBe(0);
      expect(readFileSync(join(cg, 'cgroup.freeze'), 'utf8').trim()).toBe('0');
      const del = berthAs(ranged, ['delete', '-f', id]);
      expect(del.status, del.stderr).toBe(0);
      expect(existsSync(cg)).toBe(false);
      // a limit: applied where the hierarchy has the controller, else refused naming the field
      const hasPids = readFileSync(join(mount!, 'cgroup.subtree_control'), 'utf8')
        .split(/\s+/)
        .includes('pids');
      const limited = berthAs(
        ranged,
        [
          'run',
          '--rm',
          '--pids-limit',
          '7',
          'busybox',
          'sh',
          '-c',
          'cat /sys/fs/cgroup/pids.max 2>/dev/null || true',
        ],
        {},
        procs,
      );
      if (hasPids) {
        expect(limited.status, limited.stderr).toBe(0);
        expect(limited.stdout.trim()).toBe('7');
      } else {
        expect(limited.status).toBe(1);
        expect(limited.stderr).toMatch(
          /^berth: linux\.resources\.pids: cannot apply it in the delegated cgroup .*pids/m,
        );
      }
      expect(readdirSync(deleg).filter((n) => n.startsWith('berth-'))).toEqual([]);
      expectNothingLeft(ranged);
    } finally {
      for (const d of [join(deleg, `berth-${id}`), shell, deleg]) {
        try {
          rmdirSync(d);
        } catch {
          // not there
        }
      }
    }
    expect(existsSync(deleg)).toBe(false);
  });

  it("runs a launcher of the user's own, never one another user could replace", () => {
    const dist = join(realpathSync(join(NODE_MODULES, '@berth', 'sys')), 'dist');
    const launcher = JSON.parse(readFileSync(join(dist, 'launcher.json'), 'utf8')).launchers.x86_64?.file as
      | string
      | undefined;
    const built = join(dist, launcher ?? 'berth-launcher');
    // the user's copy, in the user's own directory: run
    const mine = join(ranged.home, 'my-launcher');
    mkdirSync(mine, { mode: 0o755 });
    chownSync(mine, ranged.uid, ranged.gid);
    copyFileSync(built, join(mine, 'launcher'));
    chownSync(join(mine, 'launcher'), ranged.uid, ranged.gid);
    chmodSync(join(mine, 'launcher'), 0o755);
    const ok = berthAs(ranged, ['run', '--rm', 'busybox', 'true'], {
      BERTH_LAUNCHER: join(mine, 'launcher'),
    });
    expect(ok.status, ok.stderr).toBe(0);
    // writable by others (or owned by another user): refused, naming it
    chmodSync(join(mine, 'launcher'), 0o757);
    const loose = berthAs(ranged, ['run', '--rm', 'busybox', 'true'], {
      BERTH_LAUNCHER: join(mine, 'launcher'),
    });
    expect(loose.status).toBe(1);
    expect(loose.stderr).toContain(`BERTH_LAUNCHER=${join(mine, 'launcher')}: refusing to run a launcher`);
    chmodSync(join(mine, 'launcher'), 0o755);
    chownSync(join(mine, 'launcher'), single.uid, single.gid);
    const foreign = berthAs(ranged, ['run', '--rm', 'busybox', 'true'], {
      BERTH_LAUNCHER: join(mine, 'launcher'),
    });
    expect(foreign.status).toBe(1);
    expect(foreign.stderr).toMatch(/refusing to run a launcher .*someone other than you or root/);
    expectNothingLeft(ranged);
  });

  it('runs a bundle of `berth spec --rootless` (runc --rootless: a single-id mapping)', () => {
    const bundle = join(ranged.home, 'rl-bundle');
    mkdirSync(join(bundle, 'rootfs', 'bin'), { recursive: true });
    copyFileSync('/bin/busybox', join(bundle, 'rootfs', 'bin', 'busybox'));
    chmodSync(join(bundle, 'rootfs', 'bin', 'busybox'), 0o755);
    execFileSync('chown', ['-R', `${ranged.uid}:${ranged.gid}`, bundle]);
    expect(berthAs(ranged, ['spec', '--rootless', '-b', bundle]).status).toBe(0);
    const config = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    config.process.terminal = false;
    config.process.args = ['/bin/busybox', 'cat', '/proc/self/uid_map'];
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
    const id = `rl-${process.pid}-b`;
    const r = berthAs(ranged, ['run', '-b', bundle, id]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim().split(/\s+/).map(Number)).toEqual([0, ranged.uid, 1]);
    expectNothingLeft(ranged);
  });
});
