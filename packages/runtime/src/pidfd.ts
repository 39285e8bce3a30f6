import { type BerthError, launch } from '@berth/sys';

/**
 * Signals the container's process through a pidfd, only if it is still the
 * process that started at `startTime`: a pid the kernel gave to another
 * process since is never signalled. Returns false when the process is gone.
 * (The launcher does it: no FFI to load on the CLI's path.)
 */
export async function signalProcess(
  pid: number,
  startTime: number | undefined,
  signal: number,
): Promise<boolean> {
  const l = launch([{ op: 'pidfdKill', pid, startTime: startTime ?? 0, signal }], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await l.expect('eof');
    return true;
  } catch (e) {
    if ((e as BerthError).errno === 'ESRCH') return false;
    throw e;
  } finally {
    await l.exited.catch(() => 0);
  }
}
