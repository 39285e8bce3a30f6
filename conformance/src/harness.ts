// The conformance harness: drives a runc-compatible runtime *binary given by
// path* (RUNTIME, default berth's CLI) through create/start/state/kill/delete
// against real bundles whose rootfs holds the static checker, and reads what
// the checker saw. Nothing here knows berth: the same suite runs against runc
// and crun.
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'vitest';
import { EXPECTED_FAILURES } from './expected.js';

// biome-ignore lint/suspicious/noExplicitAny: configs are edited freely by tests
export type Config = Record<string, any>;

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** The runtime under test: RUNTIME=/path/to/binary, default berth's CLI. */
export const RUNTIME = process.env['RUNTIME'] || here('../../apps/berth/bin/berth.cjs');
/** The checker binary copied into every rootfs. */
export const CHECKER = here('../dist/checker');

/** berth, runc, crun, … (from `RUNTIME --version`, or RUNTIME_NAME). */
export const RUNTIME_NAME: string = (() => {
  if (process.env['RUNTIME_NAME']) return process.env['RUNTIME_NAME'];
  const r = spawnSync(RUNTIME, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  const word = (r.stdout ?? '').trim().split(/\s+/)[0]?.toLowerCase();
  return word || 'unknown';
})();

/**
 * One test per requirement: `req('C-PROC-ENV', 'env is the process environment', fn)`.
 * A requirement the runtime under test is known to fail (src/expected.ts, each
 * with its reason) runs as an expected failure: it still runs, and the suite
 * goes red the day it starts passing, so the list stays true.
 */
export function req(id: string, title: string, fn: () => Promise<void> | void, timeout?: number): void {
  const known = EXPECTED_FAILURES[RUNTIME_NAME]?.[id];
  const name = `${id}: ${title}${known ? ` [expected failure on ${RUNTIME_NAME}: ${known}]` : ''}`;
  if (known) test.fails(name, fn, timeout);
  else test(name, fn, timeout);
}

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Host facts the tests compare with. */
export const host = {
  ns(type: string): string {
    return spawnSync('readlink', [`/proc/self/ns/${type}`], { encoding: 'utf8' }).stdout.trim();
  },
  /** The cgroup file of a controller for a process, from the host's own layout (v1, v2 or hybrid). */
  cgroupFile(pid: number, controller: string, v1: string, v2: string): string | undefined {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
    const membership = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
    for (const line of mounts) {
      const [pre, post] = line.split(' - ');
      if (!pre || !post) continue;
      const [fstype, , superOpts] = post.split(' ');
      const mountPoint = pre.split(' ')[4]!;
      if (fstype === 'cgroup' && superOpts?.split(',').includes(controller)) {
        const entry = membership.find((m) => m.split(':')[1]?.split(',').includes(controller));
        if (entry) return join(mountPoint, entry.split(':').slice(2).join(':'), v1);
      }
    }
    for (const line of mounts) {
      const [pre, post] = line.split(' - ');
      if (!pre || !post || post.split(' ')[0] !== 'cgroup2') continue;
      const mountPoint = pre.split(' ')[4]!;
      const entry = membership.find((m) => m.startsWith('0::'));
      if (!entry) continue;
      const dir = join(mountPoint, entry.slice(3));
      const controllers = existsSync(join(mountPoint, 'cgroup.controllers'))
        ? readFileSync(join(mountPoint, 'cgroup.controllers'), 'utf8').split(/\s+/)
        : [];
      if (controllers.includes(controller)) return join(dir, v2);
    }
    return undefined;
  },
  /** Every cgroup directory (in every mounted hierarchy) named by cgroupsPath. */
  cgroupDirs(cgroupsPath: string): string[] {
    const dirs: string[] = [];
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [pre, post] = line.split(' - ');
      if (!pre || !post) continue;
      const fstype = post.split(' ')[0];
      if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
      const dir = join(pre.split(' ')[4]!, cgroupsPath);
      if (existsSync(dir)) dirs.push(dir);
    }
    return dirs;
  },
};

export interface Report {
  // biome-ignore lint/suspicious/noExplicitAny: the checker's JSON
  [key: string]: any;
}

/** A mountinfo line, parsed. */
export interface MountInfo {
  id: number;
  parent: number;
  root: string;
  mountPoint: string;
  options: string[];
  optional: string[];
  fstype: string;
  source: string;
  superOptions: string[];
}

export function mountinfo(text: string): MountInfo[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const [pre, post] = line.split(' - ') as [string, string];
      const f = pre.split(' ');
      const [fstype, source, superOpts] = post.split(' ');
      return {
        id: Number(f[0]),
        parent: Number(f[1]),
        root: f[3]!,
        mountPoint: f[4]!.replace(/\\040/g, ' '),
        options: f[5]!.split(','),
        optional: f.slice(6),
        fstype: fstype!,
        source: source!,
        superOptions: (superOpts ?? '').split(','),
      };
    });
}

/** The last mount at a path (the one a lookup sees). */
export function mountAt(report: Report, path: string): MountInfo | undefined {
  return mountinfo(report['mountinfo'] as string)
    .filter((m) => m.mountPoint === path)
    .at(-1);
}

let counter = 0;

/** A private runtime root and bundles for one test file; removed at the end. */
export class Suite {
  readonly dir = mkdtempSync(join(tmpdir(), 'berth-conformance-'));
  readonly root = join(this.dir, 'state');
  readonly ids = new Set<string>();
  /** Ids made since the last settle(). */
  private recent = new Set<string>();
  /** cgroupsPath of the bundles made since the last settle(). */
  private recentCgroups: string[] = [];

  /** A unique container id. */
  id(prefix = 'c'): string {
    const id = `${prefix}-${process.pid}-${++counter}-${Math.random().toString(36).slice(2, 7)}`;
    this.ids.add(id);
    this.recent.add(id);
    return id;
  }

  /** Runs `RUNTIME --root ROOT args…`; stdout and stderr go to files (a container may inherit them). */
  async runtime(
    args: string[],
    opts: { input?: string; timeout?: number; env?: NodeJS.ProcessEnv } = {},
  ): Promise<Result> {
    const base = join(this.dir, `out-${++counter}`);
    const fo = openSync(base, 'w');
    const fe = openSync(`${base}.err`, 'w');
    try {
      const child = spawn(RUNTIME, ['--root', this.root, ...args], {
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', fo, fe],
        env: opts.env ?? process.env,
      });
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      const status = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 30_000);
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          resolve(code ?? (signal ? 128 : null));
        });
      });
      return { status, stdout: readFileSync(base, 'utf8'), stderr: readFileSync(`${base}.err`, 'utf8') };
    } finally {
      closeSync(fo);
      closeSync(fe);
    }
  }

  /** A bundle: rootfs with the checker, and the base config with `edit` applied. */
  bundle(edit: (config: Config, bundle: string) => void = () => {}): string {
    const b = mkdtempSync(join(this.dir, 'bundle-'));
    const rootfs = join(b, 'rootfs');
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'etc', 'bin', 'data'])
      mkdirSync(join(rootfs, d), { recursive: true });
    chmodSync(join(rootfs, 'tmp'), 0o1777);
    copyFileSync(CHECKER, join(rootfs, 'checker'));
    chmodSync(join(rootfs, 'checker'), 0o755);
    writeFileSync(join(rootfs, 'etc', 'hostname'), 'from-the-rootfs\n');
    const config = baseConfig(
      `/berthconf-${++counter}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`,
    );
    edit(config, b);
    if (typeof config['linux']?.['cgroupsPath'] === 'string')
      this.recentCgroups.push(config['linux']['cgroupsPath']);
    writeFileSync(join(b, 'config.json'), JSON.stringify(config, null, 2));
    return b;
  }

  config(bundle: string): Config {
    return JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  }

  async state(id: string): Promise<Config | undefined> {
    const r = await this.runtime(['state', id]);
    if (r.status !== 0) return undefined;
    return JSON.parse(r.stdout);
  }

  async waitFor(id: string, status: string, ms = 20_000): Promise<Config> {
    const end = Date.now() + ms;
    for (;;) {
      const s = await this.state(id);
      if (s?.['status'] === status) return s;
      if (Date.now() > end) throw new Error(`container ${id} did not become ${status}: ${JSON.stringify(s)}`);
      await new Promise((r) => setTimeout(r, 40));
    }
  }

  /** Creates, starts, waits for the exit, deletes: the checker's JSON lines and the results of each step. */
  async run(
    bundle: string,
    opts: { keep?: boolean } = {},
  ): Promise<{ id: string; lines: Report[]; report: Report; create: Result }> {
    const id = this.id();
    const created = await this.createLogged(id, bundle);
    if (created.status !== 0) throw new Error(`create failed (${created.status}): ${created.stderr}`);
    const pid = (await this.state(id))?.['pid'] as number | undefined;
    const started = await this.runtime(['start', id]);
    if (started.status !== 0) throw new Error(`start failed (${started.status}): ${started.stderr}`);
    if (pid) await exited(pid);
    await this.waitFor(id, 'stopped');
    const lines = this.output(id);
    if (!opts.keep) await this.delete(id);
    return { id, lines, report: lines[0] ?? {}, create: created };
  }

  private outputs = new Map<string, string>();

  /** create, with the container's stdout kept for output(); `prefix` wraps the runtime's command line. */
  async createLogged(
    id: string,
    bundle: string,
    extra: string[] = [],
    prefix: string[] = [],
  ): Promise<Result> {
    const base = join(this.dir, `ctr-${id}`);
    const fo = openSync(base, 'w');
    const fe = openSync(`${base}.err`, 'w');
    try {
      const argv = [RUNTIME, '--root', this.root, 'create', '--bundle', bundle, ...extra, id];
      const [cmd, ...args] = [...prefix, ...argv];
      const child = spawn(cmd!, args, {
        stdio: ['ignore', fo, fe],
        // a marker the container must not see (its env is process.env, nothing else)
        env: { ...process.env, CONFORMANCE_LEAK: '1' },
      });
      const status = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          resolve(code ?? (signal ? 128 : null));
        });
      });
      this.outputs.set(id, base);
      return { status, stdout: readFileSync(base, 'utf8'), stderr: readFileSync(`${base}.err`, 'utf8') };
    } finally {
      closeSync(fo);
      closeSync(fe);
    }
  }

  /** The JSON lines the container printed so far. */
  output(id: string): Report[] {
    const base = this.outputs.get(id);
    if (!base) return [];
    return readFileSync(base, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  }

  /** What the container wrote to stderr (the runtime's create messages included). */
  errors(id: string): string {
    const base = this.outputs.get(id);
    return base ? readFileSync(`${base}.err`, 'utf8') : '';
  }

  async delete(id: string, force = false): Promise<Result> {
    return this.runtime(['delete', ...(force ? ['--force'] : []), id]);
  }

  /**
   * Container state directories left under --root (must be none after each test); berth's lock
   * directory `@locks` stays, but a lock file left in it counts (as `@locks/ID`).
   */
  states(): string[] {
    if (!existsSync(this.root)) return [];
    return readdirSync(this.root)
      .filter((n) => !n.startsWith('.'))
      .flatMap((n) => (n === '@locks' ? readdirSync(join(this.root, n)).map((l) => `@locks/${l}`) : [n]));
  }

  /** Mounts under this suite's directory that are still there. */
  mounts(): string[] {
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(this.dir));
  }

  /**
   * After each test: force-deletes what the test left, then returns what
   * still leaked: state directories, mounts under the suite's directory, and
   * the cgroups of the test's bundles (a failed create must leave none either).
   */
  async settle(): Promise<{ states: string[]; mounts: string[]; cgroups: string[] }> {
    for (const id of this.states()) if (this.ids.has(id)) await this.delete(id, true);
    // only this test's: what an earlier test leaked was reported by that test
    const states = this.states().filter((id) => this.recent.has(id));
    this.recent.clear();
    const cgroups = this.recentCgroups.flatMap((p) => host.cgroupDirs(p));
    this.recentCgroups = [];
    // what leaked is reported once, then removed (rmdir: empty cgroups only)
    for (const dir of [...cgroups].reverse()) spawnSync('rmdir', [dir]);
    return { states, mounts: this.mounts(), cgroups };
  }

  async cleanup(): Promise<void> {
    for (const id of this.states()) await this.runtime(['delete', '--force', id]);
    for (const m of this.mounts().reverse()) spawnSync('umount', ['-l', m]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Waits (cheaply, without asking the runtime) until a process has exited. */
export async function exited(pid: number, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    let stat = '';
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    } catch {
      return;
    }
    if (/\) [ZX] /.test(stat) || Date.now() > end) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A config like `runc spec` writes, with the checker as the process and a unique cgroupsPath. */
export function baseConfig(cgroupsPath: string): Config {
  const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: ['/checker', 'report'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: 'conformance',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      {
        destination: '/sys/fs/cgroup',
        type: 'cgroup',
        source: 'cgroup',
        options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
      },
    ],
    linux: {
      cgroupsPath,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [
        { type: 'pid' },
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** Capability names to the bit mask /proc/PID/status prints (hex, 16 digits). */
export const CAP_BITS: Record<string, number> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
};

export function capMask(names: string[]): string {
  let m = 0n;
  for (const n of names) m |= 1n << BigInt(CAP_BITS[n]!);
  return m.toString(16).padStart(16, '0');
}
