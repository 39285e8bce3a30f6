// Integration (root): the lifecycle where containerd, podman and the OCI spec drive a
// runtime — the start race, namespaces joined by path, fifo devices, the session
// keyring, hooks, and config.json changed after create. Each through the CLI on a real bundle.
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, CLI, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

const state = (id: string) => JSON.parse(sb.berth(['state', id]).stdout);

/** berth without waiting synchronously (parallel loops); stdout and stderr go to files. */
function berthAsync(args: string[]): Promise<{ status: number | null; stderr: string }> {
  const err = join(sb.dir, `async-${process.pid}-${Math.random().toString(36).slice(2)}.err`);
  const fe = openSync(err, 'w');
  const child = spawn(process.execPath, [CLI, '--root', sb.root, ...args], {
    env: { ...process.env, BERTH_STORE: sb.store },
    stdio: ['ignore', 'ignore', fe],
  });
  closeSync(fe);
  return new Promise((resolve) => {
    child.on('exit', (status) => {
      const stderr = readFileSync(err, 'utf8');
      unlinkSync(err);
      resolve({ status, stderr });
    });
  });
}

describe('start of a process that exits at once', () => {
  // runc's exec-fifo rule: start succeeds once the process was released to exec,
  // however soon the program then exits (containerd calls create, then start, for every task)
  const bundle = () =>
    sb.bundle((c) => {
      c.process.args = ['/bin/true'];
    });

  async function loop(b: string, n: number, prefix: string): Promise<string[]> {
    const failures: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = sb.id(prefix);
      const created = await berthAsync(['create', '-b', b, id]);
      if (created.status !== 0) failures.push(`create ${id}: ${created.stderr}`);
      else {
        const started = await berthAsync(['start', id]);
        if (started.status !== 0) failures.push(`start ${id}: ${started.stderr}`);
      }
      const deleted = await berthAsync(['delete', '--force', id]);
      if (deleted.status !== 0) failures.push(`delete ${id}: ${deleted.stderr}`);
    }
    return failures;
  }

  it('create + start of /bin/true never fails, in a loop', async () => {
    expect(await loop(bundle(), 30, 'race')).toEqual([]);
    expect(sb.states()).toEqual([]);
  }, 240_000);

  it('nor in parallel loops', async () => {
    const b = bundle();
    const results = await Promise.all([loop(b, 10, 'para'), loop(b, 10, 'parb'), loop(b, 10, 'parc')]);
    expect(results.flat()).toEqual([]);
    expect(sb.states()).toEqual([]);
  }, 240_000);

  it('a container whose process died before start still fails to start, naming why', async () => {
    const id = sb.id('dead');
    expect(sb.detached(['create', '-b', bundle(), id])).toMatchObject({ status: 0, stderr: '' });
    const pid = state(id).pid;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 10));
    expect(sb.berth(['start', id]).stderr).toMatch(/cannot start container .*: it has stopped/);
    expect(sb.berth(['delete', id]).status).toBe(0);
  });
});

/** Persistent namespaces made by unshare(1), bind-mounted on files in a private tmpfs; removed by `close`. */
class PersistentNamespaces {
  readonly dir = mkdtempSync(join(tmpdir(), 'berth-ns-test-'));
  private readonly files: string[] = [];
  private holder: ReturnType<typeof spawn> | undefined;

  constructor() {
    run('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=700', 'berth-ns-test', this.dir]);
    // a mount namespace file must not be on a mount its namespace would copy back
    run('mount', ['--make-private', this.dir]);
  }

  /** unshare --KIND=FILE for each kind (no pid: it needs a live process, see `pid`). */
  make(kinds: string[]): Record<string, string> {
    const out: Record<string, string> = {};
    const args: string[] = [];
    for (const kind of kinds) {
      const file = join(this.dir, `${kind}-${this.files.length}`);
      writeFileSync(file, '');
      this.files.push(file);
      out[kind] = file;
      args.push(`--${kind}=${file}`);
    }
    run('unshare', [...args, 'true']);
    return out;
  }

  /** A persistent pid namespace: its init (sleep) lives until `close`. */
  async pid(): Promise<string> {
    const file = join(this.dir, `pid-${this.files.length}`);
    writeFileSync(file, '');
    this.files.push(file);
    this.holder = spawn('unshare', [`--pid=${file}`, '--fork', '--kill-child', 'sleep', '600'], {
      stdio: 'ignore',
    });
    for (let i = 0; i < 200; i++) {
      if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${file} `)) return file;
      await new Promise((r) => setTimeout(r, 10));
    }
    throw new Error('unshare --pid did not bind its namespace');
  }

  close(): void {
    for (const f of this.files) spawnSync('umount', [f]);
    if (this.holder?.pid) {
      try {
        process.kill(this.holder.pid, 'SIGKILL'); // --kill-child: its sleep goes too
      } catch {
        // gone
      }
    }
    spawnSync('umount', [this.dir]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

const inode = (file: string) => String(statSync(file).ino);
const PROC: Record<string, string> = {
  mount: 'mnt',
  uts: 'uts',
  ipc: 'ipc',
  net: 'net',
  cgroup: 'cgroup',
  time: 'time',
  pid: 'pid',
};
const OCI: Record<string, string> = { net: 'network' };

/** Runs a bundle whose namespaces of `joined` kinds (unshare names) are the given files; returns the ns inodes it saw. */
function runJoined(
  joined: Record<string, string>,
  edit: NonNullable<Parameters<Sandbox['bundle']>[0]> = () => {},
) {
  const bundle = sb.bundle((c) => {
    const list = c.linux.namespaces as Array<{ type: string; path?: string }>;
    for (const [kind, file] of Object.entries(joined)) {
      const type = OCI[kind] ?? kind;
      const entry = list.find((n) => n.type === type);
      if (entry) entry.path = file;
      else list.push({ type, path: file });
    }
    c.process.args = [
      'sh',
      '-c',
      'for n in mnt uts ipc net cgroup time pid; do echo "$n $(readlink /proc/self/ns/$n)"; done; hostname',
    ];
    edit(c);
  });
  const r = sb.berth(['run', '-b', bundle, sb.id('join')]);
  const seen: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\w+) \w+:\[(\d+)\]$/.exec(line);
    if (m) seen[m[1]!] = m[2]!;
  }
  return { ...r, seen, hostname: r.stdout.trim().split('\n').at(-1) };
}

describe('namespaces joined by path', () => {
  it('each kind alone: the container is in the namespace the file holds', async () => {
    const ns = new PersistentNamespaces();
    try {
      for (const kind of ['mount', 'uts', 'ipc', 'net', 'cgroup', 'time']) {
        const files = ns.make([kind]);
        const r = runJoined(files);
        expect(r.stderr, kind).toBe('');
        expect(r.status, kind).toBe(0);
        expect(r.seen[PROC[kind]!], kind).toBe(inode(files[kind]!));
        // and only that one: the others are new (or, for time, the host's)
        if (kind !== 'net') expect(r.seen['net']).not.toBe(String(statSync('/proc/self/ns/net').ino));
      }
      const pidFile = await ns.pid();
      const r = runJoined({ pid: pidFile });
      expect(r.stderr).toBe('');
      expect(r.seen['pid']).toBe(inode(pidFile));
    } finally {
      ns.close();
    }
    expect(sb.states()).toEqual([]);
  }, 120_000);

  it('all together, the mount namespace included (the rootfs is set up inside it)', async () => {
    const ns = new PersistentNamespaces();
    try {
      const files = { ...ns.make(['mount', 'uts', 'ipc', 'net', 'cgroup', 'time']), pid: await ns.pid() };
      const r = runJoined(files, (c) => {
        c.hostname = 'joined-all';
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      for (const [kind, file] of Object.entries(files)) expect(r.seen[PROC[kind]!], kind).toBe(inode(file));
      expect(r.hostname).toBe('joined-all');
      // the container's root is now the joined mount namespace's; the host's mounts are untouched
      const inside = spawnSync('nsenter', [`--mount=${files.mount}`, '--', '/bin/busybox', 'true'], {
        encoding: 'utf8',
      });
      expect(inside.status).toBe(0);
    } finally {
      ns.close();
    }
  }, 120_000);

  it('a hostname in a joined uts namespace changes that namespace, not the host', () => {
    const ns = new PersistentNamespaces();
    const host = spawnSync('hostname', { encoding: 'utf8' }).stdout.trim();
    try {
      const files = ns.make(['mount', 'uts']);
      const r = runJoined(files, (c) => {
        c.hostname = 'joined-uts';
      });
      expect(r.stderr).toBe('');
      expect(r.hostname).toBe('joined-uts');
      const there = spawnSync('nsenter', [`--uts=${files.uts}`, 'hostname'], { encoding: 'utf8' });
      expect(there.stdout.trim()).toBe('joined-uts');
      expect(spawnSync('hostname', { encoding: 'utf8' }).stdout.trim()).toBe(host);
    } finally {
      ns.close();
    }
  }, 60_000);

  it("refuses berth's own mount or uts namespace, and leaves nothing behind", () => {
    const hostname = spawnSync('hostname', { encoding: 'utf8' }).stdout.trim();
    const own = runJoined({ mount: '/proc/self/ns/mnt' });
    expect(own.status).toBe(1);
    expect(own.stderr).toMatch(
      /linux\.namespaces\[\d\]\.path: \/proc\/self\/ns\/mnt is berth's own mount namespace/,
    );
    const uts = runJoined({ uts: '/proc/self/ns/uts' }, (c) => {
      c.hostname = 'must-not-happen';
    });
    expect(uts.status).toBe(1);
    expect(uts.stderr).toMatch(/hostname: .*\/proc\/self\/ns\/uts is berth's own uts namespace/);
    expect(spawnSync('hostname', { encoding: 'utf8' }).stdout.trim()).toBe(hostname);
    expect(sb.states()).toEqual([]);
  });
});

describe('linux.devices of type p', () => {
  it('a fifo is made in the container and needs no device-cgroup rule', () => {
    const bundle = sb.bundle((c) => {
      c.linux.devices = [{ type: 'p', path: '/dev/berth-fifo', fileMode: 0o600, uid: 0, gid: 0 }];
      c.process.args = ['sh', '-c', 'test -p /dev/berth-fifo && stat -c %a /dev/berth-fifo'];
    });
    const r = sb.berth(['run', '-b', bundle, sb.id('fifo')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('600');
  });
});

describe('session keyring', () => {
  /** A static program that prints its session keyring: `ID DESCRIPTION`. */
  function keyid(dir: string): string {
    const src = join(sb.dir, 'keyid.c');
    writeFileSync(
      src,
      `#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/keyctl.h>
int main(void) {
  long id = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
  char d[256] = "";
  if (id >= 0 && syscall(SYS_keyctl, KEYCTL_DESCRIBE, id, d, sizeof d - 1) < 0) d[0] = 0;
  printf("%ld %s\\n", id, d);
  return id < 0;
}
`,
    );
    const out = join(dir, 'keyid');
    run('cc', ['-static', '-O2', '-o', out, src]);
    return out;
  }

  it('each container has its own; --no-new-keyring keeps the host’s; exec joins the container’s', async () => {
    const bundle = sb.bundle((c) => {
      c.process.args = ['/keyid'];
    });
    const hostOut = spawnSync(keyid(join(bundle, 'rootfs')), { encoding: 'utf8' }).stdout.trim();
    const host = hostOut.split(' ')[0];
    const a = sb.id('keya');
    const b = sb.id('keyb');
    const ra = sb.berth(['run', '-b', bundle, a]);
    const rb = sb.berth(['run', '-b', bundle, b]);
    expect(ra.stderr).toBe('');
    expect(rb.stderr).toBe('');
    const [ida, desca] = ra.stdout.trim().split(' ');
    const [idb, descb] = rb.stdout.trim().split(' ');
    expect(new Set([host, ida, idb]).size).toBe(3);
    // runc's name and permissions: possessor all, owner view/read/search/link
    expect(desca).toBe(`keyring;0;0;3f1b0000;_ses.${a}`);
    expect(descb).toBe(`keyring;0;0;3f1b0000;_ses.${b}`);
    const same = sb.berth(['run', '--no-new-keyring', '-b', bundle, sb.id('keyhost')]);
    expect(same.stdout.trim()).toBe(hostOut);

    const c = sb.id('keyexec');
    const running = sb.bundle((cfg) => {
      cfg.process.args = ['sh', '-c', '/keyid > /tmp/keyring; exec sleep 60'];
      cfg.root.readonly = false;
    });
    keyid(join(running, 'rootfs'));
    expect(sb.detached(['run', '-d', '-b', running, c])).toMatchObject({ status: 0, stderr: '' });
    let first = '';
    for (let i = 0; i < 200 && !first; i++) {
      await new Promise((r) => setTimeout(r, 10));
      first = existsSync(join(running, 'rootfs/tmp/keyring'))
        ? readFileSync(join(running, 'rootfs/tmp/keyring'), 'utf8').trim()
        : '';
    }
    const exec = sb.berth(['exec', c, '/keyid']);
    expect(exec.stderr).toBe('');
    expect(exec.stdout.trim()).toBe(first);
    expect(first.split(' ')[0]).not.toBe(host);
    expect(sb.berth(['delete', '--force', c]).status).toBe(0);
  }, 60_000);
});

describe('hooks', () => {
  /** A host-side hook that saves its stdin and its namespaces to DIR/KIND.json and DIR/KIND.ns, then exits with CODE. */
  function hookScript(): { path: string; out: string } {
    const out = mkdtempSync(join(sb.dir, 'hooks-'));
    const path = join(out, 'hook.sh');
    writeFileSync(
      path,
      `#!/bin/sh
cat > "${out}/$1.json"
readlink /proc/self/ns/mnt /proc/self/ns/pid > "${out}/$1.ns"
[ -n "$3" ] && echo "$3" >&2
exit "$2"
`,
      { mode: 0o755 },
    );
    return { path, out };
  }
  const hook = (path: string, kind: string, code = 0, message = '') => [
    { path, args: ['hook.sh', kind, String(code), message] },
  ];
  /** startContainer hooks run after pivot_root: their path is inside the container. */
  const IN_CONTAINER =
    '#!/bin/sh\ncat > /tmp/startContainer.json\nreadlink /proc/self/ns/mnt > /tmp/startContainer.ns\nexit "$1"\n';

  it('each hook gets the state on stdin; createContainer and startContainer run in the container', async () => {
    const { path, out } = hookScript();
    const bundle = sb.bundle((c) => {
      c.root.readonly = false;
      c.annotations = { 'org.example.hook': 'yes' };
      c.process.args = ['sh', '-c', 'readlink /proc/self/ns/mnt > /tmp/container.ns; exec sleep 60'];
      c.hooks = {
        prestart: hook(path, 'prestart'),
        createRuntime: hook(path, 'createRuntime'),
        createContainer: hook(path, 'createContainer'),
        startContainer: [{ path: '/start-hook.sh', args: ['start-hook.sh', '0'] }],
        poststart: hook(path, 'poststart'),
        poststop: hook(path, 'poststop'),
      };
    });
    writeFileSync(join(bundle, 'rootfs/start-hook.sh'), IN_CONTAINER, { mode: 0o755 });
    const id = sb.id('hooks');
    expect(sb.detached(['create', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = state(id).pid;
    const read = (kind: string) => JSON.parse(readFileSync(join(out, `${kind}.json`), 'utf8'));
    const base = { ociVersion: '1.2.0', id, pid, bundle, annotations: { 'org.example.hook': 'yes' } };
    for (const kind of ['prestart', 'createRuntime', 'createContainer'])
      expect(read(kind), kind).toEqual({ ...base, status: 'creating' });
    expect(existsSync(join(out, 'poststart.json'))).toBe(false);
    expect(sb.detached(['start', id])).toMatchObject({ status: 0, stderr: '' });
    expect(read('poststart')).toEqual({ ...base, status: 'running' });
    const rootfs = join(bundle, 'rootfs');
    expect(JSON.parse(readFileSync(join(rootfs, 'tmp/startContainer.json'), 'utf8'))).toEqual({
      ...base,
      status: 'created',
    });
    for (let i = 0; i < 200 && !existsSync(join(rootfs, 'tmp/container.ns')); i++)
      await new Promise((r) => setTimeout(r, 10));
    const containerNs = readFileSync(join(rootfs, 'tmp/container.ns'), 'utf8').trim();
    const hostNs = spawnSync('readlink', ['/proc/self/ns/mnt'], { encoding: 'utf8' }).stdout.trim();
    expect(containerNs).not.toBe(hostNs);
    // createContainer: the container's mount and pid namespaces; prestart: the runtime's
    expect(readFileSync(join(out, 'createContainer.ns'), 'utf8').split('\n')[0]).toBe(containerNs);
    expect(readFileSync(join(out, 'prestart.ns'), 'utf8').split('\n')[0]).toBe(hostNs);
    expect(readFileSync(join(rootfs, 'tmp/startContainer.ns'), 'utf8').trim()).toBe(containerNs);
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
    expect(read('poststop')).toEqual({ ...base, status: 'stopped' });
  }, 60_000);

  it("a host hook runs in the bundle directory, with the runtime's environment unless it has an env of its own", () => {
    const out = mkdtempSync(join(sb.dir, 'hook-env-'));
    const script = (name: string) => ['sh', '-c', `{ pwd; env; } > ${out}/${name}`];
    const bundle = sb.bundle((c) => {
      c.process.args = ['true'];
      c.hooks = {
        prestart: [{ path: '/bin/sh', args: script('inherit') }],
        poststop: [{ path: '/bin/sh', args: script('own'), env: ['ONLY=this'] }],
      };
    });
    process.env['BERTH_HOOK_TEST'] = 'from-the-runtime';
    try {
      expect(sb.berth(['run', '-b', bundle, sb.id('hook-env')])).toMatchObject({ status: 0, stderr: '' });
    } finally {
      delete process.env['BERTH_HOOK_TEST'];
    }
    const inherit = readFileSync(join(out, 'inherit'), 'utf8').split('\n');
    expect(inherit[0]).toBe(bundle);
    expect(inherit).toContain('BERTH_HOOK_TEST=from-the-runtime');
    const own = readFileSync(join(out, 'own'), 'utf8').split('\n');
    expect(own[0]).toBe(bundle);
    expect(own).toContain('ONLY=this');
    expect(own.some((l) => l.startsWith('BERTH_HOOK_TEST='))).toBe(false);
  });

  it("a startContainer hook gets the process's env under its own, and no fd of the runtime's", () => {
    const bundle = sb.bundle((c) => {
      c.root.readonly = false;
      c.process.args = ['true'];
      c.process.env = [...c.process.env, 'ONE=two', 'FOO=process'];
      c.hooks = {
        startContainer: [
          {
            path: '/bin/sh',
            args: ['sh', '-c', 'echo "$ONE $FOO $HOME" > /tmp/hook.out; ls /proc/self/fd >> /tmp/hook.out'],
            env: ['FOO=hook', 'PATH=/bin'],
          },
        ],
      };
    });
    mkdirSync(join(bundle, 'rootfs/etc'), { recursive: true });
    writeFileSync(join(bundle, 'rootfs/etc/passwd'), 'root:x:0:0:root:/home/root-of-hook:/bin/sh\n');
    expect(sb.berth(['run', '-b', bundle, sb.id('hook-fds')])).toMatchObject({ status: 0, stderr: '' });
    const [env, ...fds] = readFileSync(join(bundle, 'rootfs/tmp/hook.out'), 'utf8').trim().split('\n');
    // HOME as the process gets it (the user's in the container's /etc/passwd) when no env sets it
    expect(env).toBe('two hook /home/root-of-hook');
    // stdin, stdout, stderr, and the directory ls reads
    expect(fds.map(Number).filter((fd) => fd > 3)).toEqual([]);
  });

  it('kill 0 tells whether the process exists; KILL without a pid namespace of its own kills every process', async () => {
    const bundle = sb.bundle((c) => {
      c.linux.namespaces = c.linux.namespaces.filter((n: { type: string }) => n.type !== 'pid');
      c.process.args = ['sleep', '60'];
    });
    const id = sb.id('hostpid');
    expect(sb.detached(['run', '-d', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pidFile = join(sb.dir, `${id}.exec.pid`);
    expect(sb.detached(['exec', '-d', '--pid-file', pidFile, id, 'sleep', '60'])).toMatchObject({
      status: 0,
    });
    const execPid = Number(readFileSync(pidFile, 'utf8'));
    const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
    expect(sb.berth(['kill', id, '0'])).toMatchObject({ status: 0, stderr: '' });
    expect(alive(pid)).toBe(true);
    expect(sb.berth(['kill', id, 'KILL'])).toMatchObject({ status: 0, stderr: '' });
    for (let i = 0; i < 100 && (alive(pid) || alive(execPid)); i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(alive(pid)).toBe(false);
    expect(alive(execPid)).toBe(false); // in the host's pid namespace: not ended with the first one
    expect(sb.berth(['kill', id, '0']).status).toBe(1);
    // and once the first process is gone, KILL still reaches what is left in its cgroup
    const later = join(sb.dir, `${id}.later.pid`);
    const c2 = sb.id('hostpid2');
    expect(sb.detached(['run', '-d', '-b', bundle, c2])).toMatchObject({ status: 0 });
    expect(sb.detached(['exec', '-d', '--pid-file', later, c2, 'sleep', '60'])).toMatchObject({ status: 0 });
    const laterPid = Number(readFileSync(later, 'utf8'));
    process.kill(JSON.parse(sb.berth(['state', c2]).stdout).pid as number, 'SIGKILL');
    for (let i = 0; i < 100 && JSON.parse(sb.berth(['state', c2]).stdout).status !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(sb.berth(['kill', c2, 'KILL'])).toMatchObject({ status: 0, stderr: '' });
    for (let i = 0; i < 100 && alive(laterPid); i++) await new Promise((r) => setTimeout(r, 20));
    expect(alive(laterPid)).toBe(false);
    expect(sb.berth(['kill', c2, 'KILL']).status).toBe(1); // nothing left: not running
    expect(sb.berth(['delete', c2]).status).toBe(0);
    expect(sb.berth(['delete', id]).status).toBe(0);
  });

  it('a failing poststop hook is a warning; the lifecycle goes on', async () => {
    const { path, out } = hookScript();
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
      c.hooks = {
        poststart: hook(path, 'poststart'),
        poststop: [...hook(path, 'poststop', 4), ...hook(path, 'poststop2')],
      };
    });
    const id = sb.id('warn');
    expect(sb.detached(['create', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    expect(sb.detached(['start', id])).toMatchObject({ status: 0, stderr: '' });
    expect(state(id).status).toBe('running');
    const deleted = sb.berth(['delete', '--force', id]);
    expect(deleted.status).toBe(0);
    expect(deleted.stderr).toMatch(
      /warning: error running poststop hook #0: hooks\.poststop\[0\] .*exit status 4/,
    );
    // the remaining hooks run too
    expect(existsSync(join(out, 'poststop2.json'))).toBe(true);
    expect(sb.states()).toEqual([]);
  });

  it('a failing poststart hook is an error: the container is stopped and destroyed, then poststop runs', async () => {
    const { path, out } = hookScript();
    const bundle = sb.bundle((c) => {
      c.process.args = ['sleep', '60'];
      c.hooks = {
        poststart: [...hook(path, 'poststart', 3, 'poststart says no'), ...hook(path, 'poststart2')],
        poststop: hook(path, 'poststop'),
      };
    });
    const id = sb.id('pstart');
    expect(sb.detached(['create', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = state(id).pid;
    const started = sb.detached(['start', id]);
    expect(started.status).toBe(1);
    expect(started.stderr).toMatch(/hooks\.poststart\[0\] .*exit status 3: poststart says no/);
    expect(alive(pid)).toBe(false);
    // runtime.md: the lifecycle goes on at destroy: no further poststart hook, the poststop ones run
    expect(existsSync(join(out, 'poststart2.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(out, 'poststop.json'), 'utf8'))).toMatchObject({
      id,
      status: 'stopped',
    });
    expect(sb.states()).toEqual([]);

    // the same in one `run`: an error, nothing left
    const runId = sb.id('pstart-run');
    const ran = sb.berth(['run', '-b', bundle, runId]);
    expect(ran.status).not.toBe(0);
    expect(ran.stderr).toMatch(/hooks\.poststart\[0\] .*exit status 3/);
    expect(sb.states()).toEqual([]);
  }, 60_000);

  for (const kind of ['prestart', 'createRuntime', 'createContainer'] as const) {
    it(`a failing ${kind} hook stops and undoes the create`, () => {
      const { path, out } = hookScript();
      const bundle = sb.bundle((c) => {
        c.process.args = ['true'];
        c.hooks = { [kind]: hook(path, kind, 7, `${kind} refuses`), poststop: hook(path, 'poststop') };
      });
      const id = sb.id(`fail-${kind}`);
      const r = sb.detached(['create', '-b', bundle, id]);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`hooks\\.${kind}\\[0\\] .*exit status 7: ${kind} refuses`));
      const seen = JSON.parse(readFileSync(join(out, `${kind}.json`), 'utf8'));
      expect(alive(seen.pid)).toBe(false);
      expect(sb.states()).toEqual([]);
      expect(sb.berth(['state', id]).stderr).toMatch(/does not exist/);
      // the spec's lifecycle goes on at destroy, then poststop
      expect(JSON.parse(readFileSync(join(out, 'poststop.json'), 'utf8'))).toMatchObject({
        id,
        status: 'stopped',
      });
    });
  }

  it('a failing startContainer hook fails start, stops the container and destroys it', () => {
    const { path, out } = hookScript();
    const bundle = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'touch /started; exec sleep 60'];
      c.root.readonly = false;
      c.hooks = {
        startContainer: [{ path: '/start-hook.sh', args: ['start-hook.sh', '5'] }],
        poststart: hook(path, 'poststart'),
        poststop: hook(path, 'poststop'),
      };
    });
    writeFileSync(join(bundle, 'rootfs/start-hook.sh'), IN_CONTAINER, { mode: 0o755 });
    const id = sb.id('failstart');
    expect(sb.detached(['create', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = state(id).pid;
    const r = sb.detached(['start', id]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/hooks\.startContainer\[0\] \/start-hook\.sh: exit status 5/);
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(bundle, 'rootfs/started'))).toBe(false);
    expect(existsSync(join(out, 'poststart.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(out, 'poststop.json'), 'utf8'))).toMatchObject({
      id,
      status: 'stopped',
    });
    expect(sb.states()).toEqual([]);
  });

  it('run (foreground) runs createContainer and startContainer hooks too', () => {
    const { path, out } = hookScript();
    const bundle = sb.bundle((c) => {
      c.root.readonly = false;
      c.process.args = ['cat', '/tmp/startContainer.json'];
      c.hooks = {
        createContainer: hook(path, 'createContainer'),
        startContainer: [{ path: '/start-hook.sh', args: ['start-hook.sh', '0'] }],
      };
    });
    writeFileSync(join(bundle, 'rootfs/start-hook.sh'), IN_CONTAINER, { mode: 0o755 });
    const id = sb.id('runhooks');
    const r = sb.berth(['run', '-b', bundle, id]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ id, status: 'created' });
    expect(JSON.parse(readFileSync(join(out, 'createContainer.json'), 'utf8'))).toMatchObject({
      id,
      status: 'creating',
    });
  });
});

describe('config.json changed after create', () => {
  it('does not affect the container: start and exec use what create saw', async () => {
    const { out, path } = (() => {
      const dir = mkdtempSync(join(sb.dir, 'cfg-'));
      const p = join(dir, 'hook.sh');
      writeFileSync(p, `#!/bin/sh\ntouch "${dir}/$1"\n`, { mode: 0o755 });
      return { out: dir, path: p };
    })();
    const bundle = sb.bundle((c) => {
      c.root.readonly = false;
      c.process.env = [...c.process.env, 'WHICH=original'];
      c.process.args = ['sh', '-c', 'echo "$WHICH" > /which; exec sleep 60'];
      c.hooks = { poststart: [{ path, args: ['hook.sh', 'original-poststart'] }] };
    });
    const id = sb.id('cfg');
    expect(sb.detached(['create', '-b', bundle, id])).toMatchObject({ status: 0, stderr: '' });
    const file = join(bundle, 'config.json');
    const changed = JSON.parse(readFileSync(file, 'utf8'));
    changed.process.env = changed.process.env.map((e: string) =>
      e === 'WHICH=original' ? 'WHICH=changed' : e,
    );
    changed.process.args = ['sh', '-c', 'echo changed > /which; exec sleep 60'];
    changed.hooks = { poststart: [{ path, args: ['hook.sh', 'changed-poststart'] }] };
    writeFileSync(file, JSON.stringify(changed));
    expect(sb.detached(['start', id])).toMatchObject({ status: 0, stderr: '' });
    const which = join(bundle, 'rootfs/which');
    for (let i = 0; i < 200 && !existsSync(which); i++) await new Promise((r) => setTimeout(r, 10));
    expect(readFileSync(which, 'utf8').trim()).toBe('original');
    expect(existsSync(join(out, 'original-poststart'))).toBe(true);
    expect(existsSync(join(out, 'changed-poststart'))).toBe(false);
    // exec's base process (env) is the one of create, even with config.json gone
    rmSync(file);
    const exec = sb.berth(['exec', id, 'sh', '-c', 'echo "$WHICH"']);
    expect(exec.stderr).toBe('');
    expect(exec.stdout.trim()).toBe('original');
    expect(sb.berth(['delete', '--force', id]).status).toBe(0);
  }, 60_000);
});
