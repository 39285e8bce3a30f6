import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { isErrno } from './errors.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

export async function lockOwnerAlive(path: string): Promise<boolean> {
  try {
    const pid = Number.parseInt(await readFile(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 && alive(pid);
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return false;
    throw err;
  }
}

/**
 * A lock file holding the owner's pid: two `berth pull`s of the same layer must not append to one partial
 * file, and a lock left by a killed pull is taken over instead of blocking forever.
 */
export async function withFileLock<T>(path: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
  for (;;) {
    signal?.throwIfAborted();
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
      if (!(await lockOwnerAlive(path))) {
        await rm(path, { force: true });
        continue;
      }
      await sleep(100);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}
