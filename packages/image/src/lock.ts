import { resolve } from 'node:path';
import { ProcessLock } from '@berth/sys';

/** The lock's key: the lock path names it (nothing is written there). */
const keyOf = (path: string) => `file:${resolve(path)}`;

/** Whether a live process (this one included) holds the lock named by `path`. */
export async function lockOwnerAlive(path: string): Promise<boolean> {
  return ProcessLock.isHeld(keyOf(path));
}

/**
 * Runs `fn` holding the lock named by `path`: two `berth pull`s of the same
 * layer must not append to one partial file. The lock is @berth/sys's
 * ProcessLock: taken atomically with its owner, released by the kernel when a
 * pull is killed (never taken over, so a waiter can never remove a live lock,
 * and a holder only ever releases its own).
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  const lock = await ProcessLock.acquire(keyOf(path), {
    timeoutMs: Number.POSITIVE_INFINITY,
    what: `layer download ${path}`,
    ...(signal ? { signal } : {}),
  });
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
