// Integration: berth exec joins a running container (runs as root).
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, CLI, containerCgroup, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

describe('berth exec', () => {
  it("runs in the container's namespaces and cgroup, with its settings, and returns the status", async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
      c.process.env.push('FROM_CONFIG=yes');
      c.hostname = 'exec-host';
    });
    const id = sb.id('exec');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const init = JSON.parse(sb.berth(['state', id]).stdout).pid as number;

    const r = sb.berth([
      'exec',
      '-e',
      'EXTRA=1',
      id,
      'sh',
      '-c',
      'echo $$ $(hostname) $FROM_CONFIG $EXTRA; grep -c . /proc/1/cmdline; exit 9',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(9);
    const [line] = r.stdout.split('\n');
    const [pid, host, fromConfig, extra] = line!.split(' ');
    expect(Number(pid)).toBeGreaterThan(1); // in the container's pid namespace, not its init
    expect([host, fromConfig, extra]).toEqual(['exec-host', 'yes', '1']);

    const user = sb.berth([
      'exec',
      '-u',
      '65534:65534',
      '--cwd',
      '/tmp',
      id,
      'sh',
      '-c',
      'id -u; id -g; pwd',
    ]);
    expect(user.stdout).toBe('65534\n65534\n/tmp\n');

    // detached, with a pid file: the process is in the container's cgroup and namespaces
    const pidFile = join(sb.dir, `${id}.exec.pid`);
    expect(sb.detached(['exec', '-d', '--pid-file', pidFile, id, 'sleep', '60'])).toMatchObject({
      status: 0,
      stderr: '',
    });
    const execPid = Number(readFileSync(pidFile, 'utf8'));
    expect(await (await containerCgroup(id))?.pids()).toContain(execPid);
    for (const ns of ['pid', 'mnt', 'uts', 'ipc', 'net']) {
      expect(readlinkSync(`/proc/${execPid}/ns/${ns}`)).toBe(readlinkSync(`/proc/${init}/ns/${ns}`));
    }
    // in every hierarchy: it joined the cgroup itself (clone3 into the cgroup2 one, `tasks` for v1)
    expect(readFileSync(`/proc/${execPid}/cgroup`, 'utf8')).toBe(
      readFileSync(`/proc/${init}/cgroup`, 'utf8'),
    );
    expect(JSON.parse(sb.berth(['ps', '--format', 'json', id]).stdout)).toEqual(
      expect.arrayContaining([init, execPid]),
    );

    // the whole process given as an OCI process object, as containerd and podman do
    const processFile = join(sb.dir, `${id}.process.json`);
    writeFileSync(
      processFile,
      JSON.stringify({
        args: ['sh', '-c', 'echo "$A"'],
        env: ['A=from-file', 'PATH=/bin'],
        cwd: '/',
        user: { uid: 0, gid: 0 },
      }),
    );
    expect(sb.berth(['exec', '--process', processFile, id]).stdout).toBe('from-file\n');

    expect(sb.berth(['exec', id, 'no-such-program']).stderr).toBe(
      'berth: find executable "no-such-program" in the container: ENOENT (no such file or directory)\n',
    );
    // --apparmor and --process-label are applied like config.json's, never ignored: where the LSM
    // is off (or the profile is not loaded) the exec fails, naming it, and the container runs on
    const aa = sb.berth(['exec', '--apparmor', 'berth-no-such-profile', id, 'true']);
    expect(aa.status).not.toBe(0);
    expect(aa.stderr).toMatch(/AppArmor/);
    const label = sb.berth(['exec', '--process-label', 'system_u:system_r:berth_no_such_t:s0', id, 'true']);
    expect(label.status).not.toBe(0);
    expect(label.stderr).toMatch(/SELinux|selinux/);
    expect(sb.berth(['exec', id, 'true']).status).toBe(0);

    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
    expect(alive(execPid)).toBe(false);
    expect(sb.berth(['exec', id, 'true'])).toMatchObject({
      status: 255,
      stderr: `berth: container ${id} does not exist\n`,
    });
  });

  it('joins every hierarchy of the cgroup of a container with its own cgroup namespace too', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
      // (`berth spec` lists one already where the host has only cgroup v2)
      c.linux.namespaces = [
        ...c.linux.namespaces.filter((n: { type: string }) => n.type !== 'cgroup'),
        { type: 'cgroup' },
      ];
    });
    const id = sb.id('exec-cgns');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const init = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
    const pidFile = join(sb.dir, `${id}.exec.pid`);
    expect(sb.detached(['exec', '-d', '--pid-file', pidFile, id, 'sleep', '60'])).toMatchObject({
      status: 0,
      stderr: '',
    });
    const execPid = Number(readFileSync(pidFile, 'utf8'));
    expect(readlinkSync(`/proc/${execPid}/ns/cgroup`)).toBe(readlinkSync(`/proc/${init}/ns/cgroup`));
    expect(readFileSync(`/proc/${execPid}/cgroup`, 'utf8')).toBe(
      readFileSync(`/proc/${init}/cgroup`, 'utf8'),
    );
    expect(sb.berth(['exec', id, 'cat', '/proc/self/cgroup']).stdout).toMatch(/:\/\n/);
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
    expect(alive(execPid)).toBe(false);
  });

  it('--cgroup runs in a sub-cgroup of the container (never out of it)', async () => {
    const id = sb.id('subcg');
    expect(sb.detached(['run', '-d', '--name', id, 'busybox', 'sleep', '60'])).toMatchObject({ status: 0 });
    const cg = (await containerCgroup(id))!;
    for (const dir of new Set(Object.values(cg.paths))) {
      mkdirSync(join(dir, 'sub'));
      // a v1 cpuset starts empty: a process can join it only once it has cpus and mems
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        if (existsSync(join(dir, f)) && !existsSync(join(dir, 'cgroup.controllers')))
          writeFileSync(join(dir, 'sub', f), readFileSync(join(dir, f), 'utf8').trim() || '0');
    }
    const r = sb.berth(['exec', '--cgroup', 'sub', id, 'cat', '/proc/self/cgroup']);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    // every hierarchy berth manages (a named one like name=systemd is not the container's)
    for (const l of lines.filter((x) => !x.includes(':name='))) expect(l).toMatch(/\/sub$/);
    // runc's words: a path that cannot be a sub-cgroup, and one that is not there
    for (const bad of ['../x', '/abs'])
      expect(sb.berth(['exec', '--cgroup', bad, id, 'true'])).toMatchObject({
        status: 255,
        stderr: expect.stringMatching(/^berth: exec --cgroup: bad sub cgroup path: /),
      });
    expect(sb.berth(['exec', '--cgroup', 'missing', id, 'true'])).toMatchObject({
      status: 255,
      stderr: expect.stringMatching(
        /^berth: exec --cgroup: sub cgroup missing does not exist: .*: no such file or directory\n$/,
      ),
    });
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
  });

  it('runs in a created container (as runc); a stopped one is refused with exit status 255', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['true'];
    });
    const id = sb.id('created');
    expect(sb.detached(['create', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    expect(sb.berth(['exec', id, 'sh', '-c', 'echo in-created; exit 3'])).toMatchObject({
      status: 3,
      stdout: 'in-created\n',
    });
    expect(JSON.parse(sb.berth(['state', id]).stdout).status).toBe('created');
    expect(sb.berth(['start', id]).status).toBe(0);
    for (let i = 0; i < 100 && JSON.parse(sb.berth(['state', id]).stdout).status !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 20));
    // runc's exit status for exec's own failure: never one the process could have returned
    expect(sb.berth(['exec', id, 'true'])).toMatchObject({
      status: 255,
      stderr: `berth: cannot exec in container ${id}: it is stopped\n`,
    });
    expect(sb.berth(['delete', id]).status).toBe(0);
  });

  it("run and exec get the cgroup's CPUs, not the affinity berth was started with (taskset)", () => {
    const mine = readFileSync('/proc/self/status', 'utf8').match(/Cpus_allowed_list:\s*(\S+)/)![1]!;
    const first = mine.split(/[-,]/)[0]!;
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'grep Cpus_allowed_list: /proc/self/status; sleep 60'];
    });
    const pinned = (args: string[]) =>
      spawnSync('taskset', ['-c', first, process.execPath, CLI, '--root', sb.root, ...args], {
        encoding: 'utf8',
        env: { ...process.env, BERTH_STORE: sb.store },
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 60_000,
      });
    const id = sb.id('affinity');
    const out = join(sb.dir, `${id}.out`);
    const r = spawnSync(
      'sh',
      [
        '-c',
        `taskset -c ${first} "$0" "$@" > ${out} 2>&1`,
        process.execPath,
        CLI,
        '--root',
        sb.root,
        'run',
        '-d',
        '-b',
        bundle,
        id,
      ],
      { encoding: 'utf8', env: { ...process.env, BERTH_STORE: sb.store }, timeout: 60_000 },
    );
    expect(r.status).toBe(0);
    for (let i = 0; i < 100 && !readFileSync(out, 'utf8').includes('Cpus'); i++) spawnSync('sleep', ['0.05']);
    expect(readFileSync(out, 'utf8').trim()).toBe(`Cpus_allowed_list:\t${mine}`);
    const e = pinned(['exec', id, 'grep', 'Cpus_allowed_list:', '/proc/self/status']);
    expect(e.stderr).toBe('');
    expect(e.stdout.trim()).toBe(`Cpus_allowed_list:\t${mine}`);
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
  });

  it("gives the process pipes, never the caller's own fds: what it leaves behind keeps no terminal nor host file (runc)", () => {
    const id = sb.id();
    const d = sb.detached(['run', '-d', '--name', id, '--network', 'none', 'busybox', 'sleep', '60']);
    expect(d.stderr).toBe('');
    expect(d.status).toBe(0);
    try {
      // the caller's stdout is a host file (`>> host.log`), its stdin another
      const log = join(sb.dir, `host-${id}.log`);
      const input = join(sb.dir, `input-${id}`);
      writeFileSync(log, 'earlier host line\n', { mode: 0o600 });
      writeFileSync(input, 'typed\n');
      const script =
        'read x; echo "got $x"; for f in 0 1 2; do readlink /proc/self/fd/$f; done; ' +
        // left behind: once exec has returned it tries the caller's file, through its fd
        '(sleep 1; echo late; cat /proc/self/fd/1 > /tmp/stolen 2>/dev/null; : > /proc/self/fd/1) & true';
      const forCommand = (args: string[]) => {
        const fds = [openSync(input, 'r'), openSync(log, 'a'), openSync(log, 'a')];
        try {
          return spawnSync(process.execPath, [CLI, '--root', sb.root, ...args], {
            stdio: [fds[0]!, fds[1]!, fds[2]!],
            env: { ...process.env, BERTH_STORE: sb.store },
            timeout: 30_000,
          });
        } finally {
          for (const fd of fds) closeSync(fd);
        }
      };
      for (const args of [
        ['exec', id, 'sh', '-c', script],
        ['run', '--rm', '-i', '--network', 'none', 'busybox', 'sh', '-c', script],
      ]) {
        writeFileSync(log, 'earlier host line\n');
        const r = forCommand(args);
        expect(r.status).toBe(0);
        execFileSync('sleep', ['1.5']);
        const lines = readFileSync(log, 'utf8').split('\n');
        expect(lines[0]).toBe('earlier host line');
        expect(lines[1]).toBe('got typed');
        // 0, 1 and 2 are pipes, not the caller's file
        for (const l of lines.slice(2, 5)) expect(l).toMatch(/^pipe:\[\d+\]$/);
        expect(lines).not.toContain('late');
      }
      // nothing of the host file reached the container either
      const stolen = sb.berth(['exec', id, 'sh', '-c', 'cat /tmp/stolen 2>/dev/null; true']);
      expect(stolen.stdout).not.toContain('earlier host line');
    } finally {
      sb.berth(['delete', '--force', id]);
    }
  });

  it('returns once the process exits, even while a process it left behind keeps writing to the pipe', () => {
    const id = sb.id();
    const d = sb.detached(['run', '-d', '--name', id, '--network', 'none', 'busybox', 'sleep', '60']);
    expect(d.status).toBe(0);
    const devnull = openSync('/dev/null', 'w');
    try {
      const started = Date.now();
      const r = spawnSync(
        process.execPath,
        [CLI, '--root', sb.root, 'exec', id, 'sh', '-c', 'yes & sleep 0.3; exit 5'],
        {
          stdio: ['ignore', devnull, 'pipe'],
          encoding: 'utf8',
          timeout: 30_000,
        },
      );
      expect(r.stderr).toBe('');
      expect(r.status).toBe(5);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      closeSync(devnull);
      sb.berth(['delete', '--force', id]);
    }
  });

  it('ps lists the processes of a container whose command lines fill more than 1 MiB of the host ps', () => {
    const id = sb.id();
    // a dozen processes with 100 KB command lines each (runc ps copes; a 1 MiB buffer did not)
    const start =
      'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sh -c "sleep 60; true" $(printf "%0100000d" 0) & done; sleep 60';
    const d = sb.detached(['run', '-d', '--name', id, '--network', 'none', 'busybox', 'sh', '-c', start]);
    expect(d.stderr).toBe('');
    expect(d.status).toBe(0);
    try {
      // (this test's own capture of the output needs room too)
      const ps = () =>
        spawnSync(process.execPath, [CLI, '--root', sb.root, 'ps', id], {
          encoding: 'utf8',
          maxBuffer: 1 << 26,
        });
      let r = ps();
      for (let i = 0; i < 50 && (r.stdout.match(/\n/g)?.length ?? 0) < 26; i++) {
        execFileSync('sleep', ['0.1']);
        r = ps();
      }
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/\bPID\b/);
      // the header, the first process (sh, or the last sleep it became), 12 shells and their sleeps
      expect(lines.length).toBeGreaterThanOrEqual(26);
      expect(r.stdout.length).toBeGreaterThan(1 << 20);
    } finally {
      sb.berth(['delete', '--force', id]);
    }
  });

  it('refuses a paused container (it would hang), with exit status 255', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
    });
    const id = sb.id('paused');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    expect(sb.berth(['pause', id]).status).toBe(0);
    expect(sb.berth(['exec', id, 'true'])).toMatchObject({
      status: 255,
      stderr: `berth: cannot exec in a paused container: ${id} is paused; resume it first\n`,
    });
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
  });
});
