// Shared by the client tests: berth driven by real podman and real containerd.
// The image comes from berth itself (the built-in busybox, written by
// `berth save` as an OCI archive), so no registry and no internet are needed.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Sandbox } from '../helpers.js';

/** berth's installed command: what podman and containerd are given as the OCI runtime. */
export const BERTH_BIN = fileURLToPath(new URL('../../bin/berth.cjs', import.meta.url));

/** What a client command printed, and its exit status. */
export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A client's command line (docker, podman, ctr): `run` gives the result, `ok` the output of a
 * command that must succeed. A command that hangs is killed outright after 90 s (ctr and docker
 * pass SIGTERM on to the container).
 */
export function clientCommand(
  bin: string,
  options: { prefix?: () => string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): {
  run: (args: string[], input?: string) => CommandResult;
  ok: (args: string[], input?: string) => string;
} {
  const run = (args: string[], input?: string): CommandResult => {
    const r = spawnSync(bin, [...(options.prefix?.() ?? []), ...args], {
      encoding: 'utf8',
      timeout: 90_000,
      killSignal: 'SIGKILL',
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(input !== undefined ? { input } : { stdio: ['ignore', 'pipe', 'pipe'] }),
    });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const ok = (args: string[], input?: string): string => {
    const r = run(args, input);
    if (r.status !== 0) throw new Error(`${bin} ${args.join(' ')}: ${r.status}\n${r.stderr}`);
    return r.stdout;
  };
  return { run, ok };
}

/** A name unique to this test process, added to `names` (what the test removes at the end). */
export function uniqueName(names: Set<string>, prefix: string): string {
  const n = `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 7)}`;
  names.add(n);
  return n;
}

/** The image ref the archive holds. */
export const IMAGE = 'localhost/busybox:latest';

/** Writes the built-in busybox image as an OCI archive (via `berth save`) and returns its path. */
export function imageArchive(sb: Sandbox): string {
  sb.image();
  const file = join(sb.dir, 'busybox.oci.tar');
  if (!existsSync(file)) {
    const r = sb.berth(['save', '-o', file, IMAGE]);
    if (r.status !== 0) throw new Error(`berth save: ${r.stderr}`);
  }
  return file;
}

/** The host's cgroup file of `controller` for a process, from the host's layout (v1, v2 or hybrid). */
export function cgroupFile(pid: number, controller: string, v1: string, v2: string): string {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const membership = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  for (const line of mounts) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const [fstype, , superOpts] = post.split(' ');
    if (fstype !== 'cgroup' || !superOpts?.split(',').includes(controller)) continue;
    const entry = membership.find((m) => m.split(':')[1]?.split(',').includes(controller));
    if (entry) return join(pre.split(' ')[4]!, entry.split(':').slice(2).join(':'), v1);
  }
  for (const line of mounts) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post || post.split(' ')[0] !== 'cgroup2') continue;
    const mountPoint = pre.split(' ')[4]!;
    const entry = membership.find((m) => m.startsWith('0::'));
    const controllers = readFileSync(join(mountPoint, 'cgroup.controllers'), 'utf8').split(/\s+/);
    if (entry && controllers.includes(controller)) return join(mountPoint, entry.slice(3), v2);
  }
  throw new Error(`no ${controller} controller for pid ${pid}`);
}

export function cgroupValue(pid: number, controller: string, v1: string, v2: string): string {
  return readFileSync(cgroupFile(pid, controller, v1, v2), 'utf8').trim();
}

/** Network interfaces of the host (to assert that none leaked). */
export function links(): string[] {
  const r = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter(Boolean)
    .sort();
}

/**
 * Runs argv on a new pseudo-terminal of 33 rows and 111 columns (python3 plays
 * the terminal); `input` is typed into it.
 */
export function onTerminal(
  argv: string[],
  input: string,
  env: NodeJS.ProcessEnv = process.env,
): { status: number | null; stdout: string; stderr: string } {
  const script = `
import os, pty, sys, time, select, fcntl, termios, struct
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 111, 0, 0))
data = os.environ.get('TERMINAL_INPUT', '').encode()
out = b''
sent = False
deadline = time.time() + 50
while time.time() < deadline:
    r, _, _ = select.select([fd], [], [], 0.2)
    if not sent and (out or time.time() > deadline - 45):
        time.sleep(0.5)
        os.write(fd, data)
        sent = True
    if r:
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
  const r = spawnSync('python3', ['-c', script, ...argv], {
    encoding: 'utf8',
    env: { ...env, TERMINAL_INPUT: input },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
