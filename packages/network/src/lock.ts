import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inUserNamespace, lockFile, withProcessLock } from '@berth/sys';

/**
 * Where the network's locks are: /run/berth-net for the host's root; for anyone else (no /run to
 * write), `$XDG_RUNTIME_DIR/berth-net`. A directory only its user can enter (see `lockFile`).
 */
export function netLockDir(): string {
  if (process.geteuid?.() === 0 && !inUserNamespace()) return '/run/berth-net';
  return join(process.env['XDG_RUNTIME_DIR'] || tmpdir(), 'berth-net');
}

/**
 * Runs `fn` holding a lock that the kernel releases when its holder dies,
 * however it dies: `@berth/sys`'s ProcessLock, flock(2) on a file named after
 * `key` (a directory and a name) in `netLockDir()`, which no other user and no
 * container can enter: nobody can take the lock first and hold networking up.
 */
export function withNetLock<T>(key: string, fn: () => Promise<T>, timeoutMs = 180_000): Promise<T> {
  return withProcessLock(lockFile(netLockDir(), key), fn, {
    timeoutMs,
    what: `network state ${key}`,
    path: key,
  });
}

/** /proc/PID/stat's start time (field 22), or undefined when the process is gone. */
export function startTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[19]);
  } catch {
    return undefined;
  }
}

/** Whether the process that `pid` and `start` named is still alive. */
export function holderAlive(pid: number, start?: number): boolean {
  const now = startTime(pid);
  return now !== undefined && (start === undefined || now === start);
}
