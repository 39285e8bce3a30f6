import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { BerthError } from '@berth/sys';

/**
 * Runs `fn` holding a lock that the kernel releases when its holder dies,
 * however it dies: a listening Unix socket in the abstract namespace named
 * after `key` (a directory and a name). Binding is atomic; nothing is left on
 * disk, so a killed create never leaves a stale lock.
 */
export async function withNetLock<T>(key: string, fn: () => Promise<T>, timeoutMs = 180_000): Promise<T> {
  const name = `\0berth-net/${createHash('sha256').update(key).digest('hex').slice(0, 32)}`;
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    const server = createServer();
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      server.once('error', resolve);
      server.listen(name, () => resolve(undefined));
    });
    if (!err) {
      server.unref();
      try {
        return await fn();
      } finally {
        server.close();
      }
    }
    server.close();
    if (err.code !== 'EADDRINUSE') throw err;
    if (Date.now() > deadline)
      throw new BerthError(`network state ${key} is locked by another berth command`, {
        code: 'ELOCKED',
        path: key,
      });
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 20);
  }
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
