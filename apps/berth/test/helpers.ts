import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
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
import { Cgroup, type CgroupLayout, discoverHierarchy } from '@berth/cgroups';

// biome-ignore lint/suspicious/noExplicitAny: tests edit config.json freely
type Config = Record<string, any>;

/** The CLI bundle under test ($BERTH_TEST_CLI: another build of it, e.g. a copy kept stable while dist/ is rebuilt). */
export const CLI =
  process.env['BERTH_TEST_CLI'] ?? fileURLToPath(new URL('../dist/cli.cjs', import.meta.url));

/** This host's cgroup hierarchies, read from the host (v1, hybrid or v2), once. */
const hierarchy = await discoverHierarchy();
/** The cgroup layout of this host. */
export const cgroupLayout: CgroupLayout = hierarchy.layout;
/** Every hierarchy a container's cgroup can have a directory in: each v1 mount and the cgroup2 one. */
const hierarchyMounts = [
  ...new Set([...Object.values(hierarchy.v1), ...(hierarchy.unified ? [hierarchy.unified] : [])]),
];

/** The cgroupsPath a container of these tests gets (runtime's default). */
export const cgroupsPathOf = (id: string): string => `/berth/${id}`;

/** The container's cgroup through the cgroups API (its `paths` say where each controller is), or undefined. */
export async function containerCgroup(id: string): Promise<Cgroup | undefined> {
  try {
    return await Cgroup.load(cgroupsPathOf(id));
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOTFOUND') return undefined;
    throw e;
  }
}

/** A private --root and image store for one test file: parallel-safe, removed at the end. */
/**
 * How long one CLI command may take before the test gives up on it: 60 s, or
 * $BERTH_TEST_COMMAND_TIMEOUT ms (the guest test host sets more: under TCG a
 * container start can take seconds).
 */
const COMMAND_TIMEOUT = Number(process.env['BERTH_TEST_COMMAND_TIMEOUT'] ?? 60_000);

export class Sandbox {
  readonly dir = mkdtempSync(join(tmpdir(), 'berth-cli-test-'));
  readonly root = join(this.dir, 'run');
  readonly store = join(this.dir, 'store');
  private n = 0;
  readonly ids = new Set<string>();

  /** A unique container id. */
  id(prefix = 't'): string {
    const id = `${prefix}-${process.pid}-${++this.n}-${Math.random().toString(36).slice(2, 7)}`;
    this.ids.add(id);
    return id;
  }

  /**
   * Cgroup directories of this sandbox's containers that still exist, in every
   * hierarchy this host has (v1 controllers and cgroup2; default cgroupsPath /berth/ID).
   */
  cgroups(): string[] {
    const left: string[] = [];
    for (const mount of hierarchyMounts) {
      for (const id of this.ids) {
        const dir = join(mount, cgroupsPathOf(id));
        if (existsSync(dir)) left.push(dir);
      }
    }
    return left;
  }

  berth(args: string[], input?: string): SpawnSyncReturns<string> {
    return spawnSync(process.execPath, [CLI, '--root', this.root, ...args], {
      encoding: 'utf8',
      env: { ...process.env, BERTH_STORE: this.store },
      ...(input !== undefined ? { input } : { stdio: ['ignore', 'pipe', 'pipe'] }),
      timeout: COMMAND_TIMEOUT,
    });
  }

  /**
   * For commands that leave a container running (create, run -d): its process
   * inherits berth's stdout and stderr, so they go to files, not pipes a
   * synchronous spawn would wait on until the container exits.
   */
  detached(args: string[]): { status: number | null; stdout: string; stderr: string } {
    const out = join(this.dir, `out-${++this.n}`);
    const err = `${out}.err`;
    const fo = openSync(out, 'w');
    const fe = openSync(err, 'w');
    try {
      const r = spawnSync(process.execPath, [CLI, '--root', this.root, ...args], {
        env: { ...process.env, BERTH_STORE: this.store },
        stdio: ['ignore', fo, fe],
        timeout: COMMAND_TIMEOUT,
      });
      return { status: r.status, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
    } finally {
      closeSync(fo);
      closeSync(fe);
    }
  }

  /** Starts berth without waiting (for run in the foreground). */
  spawn(args: string[]) {
    return spawn(process.execPath, [CLI, '--root', this.root, ...args], {
      env: { ...process.env, BERTH_STORE: this.store },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  /** A bundle: a copy of the built-in busybox rootfs and the default config with `edit` applied. */
  bundle(edit: (config: Config) => void = () => {}): string {
    const b = mkdtempSync(join(this.dir, 'bundle-'));
    const image = this.image();
    cpSync(image, join(b, 'rootfs'), { recursive: true, verbatimSymlinks: true });
    const r = this.berth(['spec', '-b', b]);
    if (r.status !== 0) throw new Error(r.stderr);
    const config = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    config.process.terminal = false;
    edit(config);
    writeFileSync(join(b, 'config.json'), JSON.stringify(config, null, 2));
    return b;
  }

  /** The built-in image's rootfs (made on first use by `berth run busybox`). */
  image(): string {
    const dir = join(this.store, 'builtin');
    if (!existsSync(dir)) {
      const r = this.berth(['run', '--rm', 'busybox', 'true']);
      if (r.status !== 0) throw new Error(r.stderr);
    }
    const name = readdirSync(dir).find((n) => n.startsWith('busybox-') && !n.includes('.tmp'))!;
    return join(dir, name, 'rootfs');
  }

  /** Mounts under this sandbox that are still in /proc/mounts: must be none after each test. */
  mounts(): string[] {
    return readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(this.dir));
  }

  /** Container state directories left under --root, and lock files left in its `@locks` (as `@locks/ID`). */
  states(): string[] {
    return leftInRoot(this.root);
  }

  cleanup(): void {
    for (const id of this.states()) if (!id.startsWith('@locks/')) this.berth(['delete', '--force', id]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return !/\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

/**
 * A python3 program that runs its arguments on a new pty, prints what the pty
 * showed and exits with the program's status: `python3 -c PTY_RUN CMD...`.
 */
export const PTY_RUN = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b''
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors='replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`;

/**
 * What a state root holds besides its (empty) lock directory: container directories, and any
 * lock file left in `@locks` (as `@locks/ID`). A deleted container leaves neither.
 */
export function leftInRoot(root: string): string[] {
  if (!existsSync(root)) return [];
  const locks = join(root, '@locks');
  return [
    ...readdirSync(root).filter((n) => n !== '@locks'),
    ...(existsSync(locks) ? readdirSync(locks).map((n) => `@locks/${n}`) : []),
  ];
}
