// Integration: the OCI lifecycle on a bundle, as containerd drives it (runs as root).
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, CLI, containerCgroup, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

const state = (id: string) => JSON.parse(sb.berth(['state', id]).stdout);

describe('create → start → state → kill → delete', () => {
  it('reports created, running, stopped and leaves nothing behind', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'echo started > /tmp/started; exec sleep 60'];
      c.hostname = 'lifecycle';
      c.root.readonly = false;
    });
    const id = sb.id('life');
    const pidFile = join(sb.dir, `${id}.pid`);
    const created = sb.detached(['create', '--bundle', bundle, '--pid-file', pidFile, id]);
    expect(created.stderr).toBe('');
    expect(created.status).toBe(0);
    const s1 = state(id);
    expect(s1).toMatchObject({
      ociVersion: '1.2.0',
      id,
      status: 'created',
      bundle,
      rootfs: join(bundle, 'rootfs'),
    });
    expect(Number(readFileSync(pidFile, 'utf8'))).toBe(s1.pid);
    expect(alive(s1.pid)).toBe(true);
    // the process waits for start: the user's program has not run yet
    expect(existsSync(join(bundle, 'rootfs/tmp/started'))).toBe(false);

    expect(sb.detached(['start', id])).toMatchObject({ status: 0, stderr: '' });
    expect(state(id).status).toBe('running');
    for (let i = 0; i < 100 && !existsSync(join(bundle, 'rootfs/tmp/started')); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(join(bundle, 'rootfs/tmp/started'))).toBe(true);
    expect(sb.berth(['start', id]).stderr).toMatch(/cannot start container .*: it is running/);

    const list = JSON.parse(sb.berth(['list', '--format', 'json']).stdout);
    expect(list.map((c: { id: string }) => c.id)).toContain(id);

    expect(sb.berth(['delete', id]).stderr).toMatch(
      /cannot delete container .* that is not stopped: running/,
    );
    expect(sb.berth(['kill', id, 'KILL']).status).toBe(0);
    for (let i = 0; i < 100 && alive(s1.pid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(state(id)).toMatchObject({ status: 'stopped', pid: 0 });
    expect(sb.berth(['kill', id]).stderr).toMatch(/container not running/); // containerd's shim looks for these words
    expect(sb.berth(['delete', id]).status).toBe(0);
    expect(sb.states()).toEqual([]);
    expect(sb.berth(['state', id]).stderr).toBe(`berth: container ${id} does not exist\n`);
  });

  it('delete of a created container kills its waiting process; --force kills a running one', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
    });
    const a = sb.id('del');
    expect(sb.detached(['create', '-b', bundle, a])).toMatchObject({ status: 0, stderr: '' });
    const pa = state(a).pid;
    expect(sb.berth(['delete', a]).status).toBe(0);
    expect(alive(pa)).toBe(false);

    const b = sb.id('force');
    expect(sb.detached(['run', '-d', '-b', bundle, b])).toMatchObject({ status: 0, stderr: '' });
    const pb = state(b).pid;
    expect(state(b).status).toBe('running');
    expect(sb.berth(['delete', '--force', b]).status).toBe(0);
    expect(alive(pb)).toBe(false);
    expect(sb.states()).toEqual([]);
    // --force on a container that does not exist is not an error (runc does the same)
    expect(sb.berth(['delete', '--force', b]).status).toBe(0);
  });

  it('kill --all signals every process of the container', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'sleep 60 & sleep 60 & wait'];
    });
    const id = sb.id('all');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = state(id).pid;
    for (let i = 0; i < 100; i++) {
      const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean);
      if (kids.length === 2) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(children).toHaveLength(2);
    expect(sb.berth(['kill', '--all', id, 'TERM']).status).toBe(0);
    for (let i = 0; i < 100 && children.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
    expect(children.some(alive)).toBe(false);
    for (let i = 0; i < 100 && state(id).status !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 20));
    // a stopped container: kill is an error, kill --all is not (runc's -a)
    expect(sb.berth(['kill', id, '0'])).toMatchObject({
      status: 1,
      stderr: expect.stringMatching(/container not running/),
    });
    expect(sb.berth(['kill', '--all', id, '0'])).toMatchObject({ status: 0, stderr: '' });
    expect(sb.berth(['delete', '-f', id]).status).toBe(0);
  });

  it('runs a bundle in the foreground the runc way and removes it after', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'ls /; cat /proc/1/cmdline | tr "\\0" " "; exit 3'];
      c.hostname = 'fg';
      c.root.readonly = true;
    });
    writeFileSync(join(bundle, 'rootfs/marker-file'), '');
    const r = sb.berth(['run', '-b', bundle, sb.id('fg')]);
    expect(r.status).toBe(3);
    expect(r.stdout).toContain('marker-file');
    expect(r.stdout).toContain('sh -c ls /');
    expect(sb.states()).toEqual([]);
  });

  it('applies masked and read-only paths, rlimits and capabilities from config.json', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = [
        'sh',
        '-c',
        'cat /proc/kcore | wc -c; ulimit -n; grep CapEff /proc/self/status; cat /proc/sys/net/ipv4/ping_group_range; echo x 2>/dev/null > /proc/sys/kernel/domainname || echo proc-sys-ro',
      ];
      c.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 321, hard: 321 }];
      // podman always sets this one: it must be written before /proc/sys turns read-only
      c.linux.sysctl = { 'net.ipv4.ping_group_range': '0 2147483647' };
    });
    const r = sb.berth(['run', '-b', bundle, sb.id('paths')]);
    expect(r.stdout.split('\n')).toEqual([
      '0',
      '321',
      'CapEff:\t0000000020000420',
      '0\t2147483647',
      'proc-sys-ro',
      '',
    ]);
  });

  it('warns about a capability the host cannot grant and runs without it', () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['true'];
      c.process.capabilities.bounding.push('CAP_SYS_RESOURCE');
    });
    const bnd = /CapBnd:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
    const hostHasIt = (BigInt(`0x${bnd}`) >> 24n) & 1n;
    const r = sb.berth(['run', '-b', bundle, sb.id('cap')]);
    expect(r.status).toBe(0);
    if (hostHasIt) expect(r.stderr).toBe('');
    else
      expect(r.stderr).toBe(
        "berth: warning: capability CAP_SYS_RESOURCE is not in this host's bounding set: the container runs without it\n",
      );
  });
});

describe('--preserve-fds', () => {
  /** berth with fds 3… open on files that say which they are, as containerd or podman pass them. */
  function withFds(count: number, args: string[]) {
    const fds: number[] = [];
    for (let i = 0; i < count; i++) {
      const f = join(sb.dir, `fd-${process.pid}-${i}`);
      writeFileSync(f, `passed ${3 + i}\n`);
      fds.push(openSync(f, 'r'));
    }
    try {
      return spawnSync(process.execPath, [CLI, '--root', sb.root, ...args], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe', ...fds],
        timeout: 60_000,
      });
    } finally {
      for (const fd of fds) closeSync(fd);
    }
  }

  it("hands the container the fds the caller passed, and refuses fds the caller did not pass (never berth's own)", () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'cat <&3; cat <&4'];
    });
    const ok = withFds(2, ['run', '--preserve-fds', '2', '-b', bundle, sb.id('pfd')]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('passed 3\npassed 4\n');
    expect(ok.status).toBe(0);
    // one fd passed, eight claimed: fds 4… in berth are its own (libuv's epoll fd, eventfds, signal pipe)
    const bad = withFds(1, ['run', '--preserve-fds', '8', '-b', bundle, sb.id('pfd')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/preserved fd 4 (is not open|was not passed by the caller)/);
    expect(sb.states()).toEqual([]);
  });

  it('refuses the same for exec, and the container is unaffected', async () => {
    const id = sb.id('pfdx');
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
    });
    expect(sb.detached(['run', '-d', '-b', bundle, id]).status).toBe(0);
    try {
      const bad = withFds(0, ['exec', '--preserve-fds', '6', id, 'sh', '-c', 'ls -l /proc/self/fd']);
      expect(bad.status).toBe(255); // exec's own failure, as runc's
      expect(bad.stderr).toMatch(/preserved fd 3 (is not open|was not passed by the caller)/);
      const ok = withFds(1, ['exec', '--preserve-fds', '1', id, 'sh', '-c', 'cat <&3']);
      expect(ok.stdout).toBe('passed 3\n');
      expect(JSON.parse(sb.berth(['state', id]).stdout).status).toBe('running');
    } finally {
      sb.berth(['delete', '--force', id]);
    }
    expect(sb.states()).toEqual([]);
  });
});

describe('a create that dies midway', () => {
  it('leaves what delete removes completely: state, cgroup, process', async () => {
    const hookPidFile = join(sb.dir, 'hook.pid');
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
      // a createRuntime hook that blocks: berth is killed while it runs
      c.hooks = {
        createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `echo $$ > ${hookPidFile}; exec sleep 60`] }],
      };
    });
    const id = sb.id('crash');
    const child = sb.spawn(['create', '-b', bundle, id]);
    child.stdout.resume();
    child.stderr.resume();
    const exited = new Promise((r) => child.on('exit', r));
    for (let i = 0; i < 500 && !existsSync(hookPidFile); i++) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(hookPidFile)).toBe(true);
    const record = JSON.parse(readFileSync(join(sb.root, id, 'state.json'), 'utf8'));
    expect(record.status).toBe('creating');
    expect(await containerCgroup(id)).toBeDefined();
    child.kill('SIGKILL');
    await exited;
    // the hook is a process of ours too (started by the berth we killed)
    process.kill(Number(readFileSync(hookPidFile, 'utf8')), 'SIGKILL');

    expect(JSON.parse(sb.berth(['state', id]).stdout).status).toBe('stopped');
    expect(sb.berth(['delete', id])).toMatchObject({ status: 0, stderr: '' });
    expect(sb.states()).toEqual([]);
    expect(await containerCgroup(id)).toBeUndefined();
    // the container's first process saw its runtime go and exited by itself
    expect(alive(record.pid)).toBe(false);
  });
});
