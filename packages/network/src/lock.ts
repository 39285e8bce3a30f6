import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { withProcessLock } from '@berth/sys';

/**
 * Runs `fn` holding a lock that the kernel releases when its holder dies,
 * however it dies: `@berth/sys`'s ProcessLock, a Unix socket bound in the
 * abstract namespace, named after `key` (a directory and a name) as this
 * package always named it. Binding is atomic; nothing is left on disk, so a
 * killed create never leaves a stale lock.
 */
export function withNetLock<T>(key: string, fn: () => Promise<T>, timeoutMs = 180_000): Promise<T> {
  const name = `\0berth-net/${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
  return withProcessLock(key, fn, { name, timeoutMs, what: `network state ${key}` });
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
