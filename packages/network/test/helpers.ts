import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A network namespace this test made: a `sleep` in `unshare -n`, killed by `close()`. */
export interface TestNetns {
  pid: number;
  close(): Promise<void>;
  /** Runs a command in the namespace (the host's mounts and files). */
  run(cmd: string[], timeoutMs?: number): string;
  spawn(cmd: string[]): ChildProcess;
}

export async function makeNetns(): Promise<TestNetns> {
  const child = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' });
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => resolve(child.pid!));
  });
  // unshare execs sleep in the same process: wait until its namespace differs from ours
  const self = execFileSync('readlink', ['/proc/self/ns/net']).toString();
  for (let i = 0; i < 200; i++) {
    try {
      if (execFileSync('readlink', [`/proc/${pid}/ns/net`]).toString() !== self) break;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const children: ChildProcess[] = [];
  return {
    pid,
    run: (cmd, timeoutMs = 10_000) =>
      execFileSync('nsenter', ['-t', String(pid), '-n', '--', ...cmd], { timeout: timeoutMs }).toString(),
    spawn: (cmd) => {
      const c = spawn('nsenter', ['-t', String(pid), '-n', '--', ...cmd], { stdio: 'ignore' });
      children.push(c);
      return c;
    },
    close: async () => {
      for (const c of children) c.kill('SIGKILL');
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

/** A unique /24 from 10.213.0.0/16, a unique short name, a temporary directory. */
export function uniqueSubnet(): { cidr: `${number}.${number}.${number}.${number}/${number}`; third: number } {
  const used = execFileSync('ip', ['-4', 'route', 'show']).toString();
  let third = 1 + (randomBytes(1)[0]! % 250);
  while (used.includes(`10.213.${third}.`)) third = 1 + (randomBytes(1)[0]! % 250);
  return { cidr: `10.213.${third}.0/24` as `${number}.${number}.${number}.${number}/${number}`, third };
}

export function uniqueName(prefix: string): string {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-net-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Host links whose names start with `prefix`. */
export function hostLinks(prefix: string): string[] {
  return readdirSync('/sys/class/net').filter((n) => n.startsWith(prefix));
}
