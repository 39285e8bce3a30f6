import { resolve } from 'node:path';
import { ProcessLock } from '@berth/sys';

/** Whether a live process (this one included) holds the lock named by `path`. */
export async function lockOwnerAlive(path: string): Promise<boolean> {
  return ProcessLock.isHeld(resolve(path));
}

/**
 * Runs `fn` holding the lock named by `path`: two `berth pull`s of the same
 * layer must not append to one partial file. The lock is @berth/sys's
 * ProcessLock, flock(2) on the file `path` in the store (whose directories only
 * its owner can write): released by the kernel when a pull is killed, never
 * taken over, and removed by its holder when the download is done.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const lock = await ProcessLock.acquire(resolve(path), {
    timeoutMs: Number.POSITIVE_INFINITY,
    what: `layer download ${path}`,
    ...(signal ? { signal } : {}),
  });
  try {
    return await fn();
  } finally {
    lock.release({ remove: true }); // nothing left on disk
  }
}
