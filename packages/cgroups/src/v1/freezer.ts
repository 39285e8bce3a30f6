import { CgroupError } from '../errors.js';
import { readCgroupFile, sleep, writeCgroupFile } from '../fsutil.js';

/**
 * FREEZING is transient: a task in an uninterruptible sleep can hold it there,
 * so keep re-asking (as runc does) until the state reads FROZEN.
 */
export async function freezeV1(dir: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    if (i % 10 === 0) await writeCgroupFile(dir, 'freezer.state', 'FROZEN');
    const state = (await readCgroupFile(dir, 'freezer.state')).trim();
    if (state === 'FROZEN') return;
    if (Date.now() > deadline) {
      await writeCgroupFile(dir, 'freezer.state', 'THAWED').catch(() => undefined);
      throw new CgroupError({
        code: 'ETIMEDOUT',
        op: 'freeze',
        path: dir,
        message: `freeze ${dir}: still ${state} after ${timeoutMs} ms, thawed again`,
      });
    }
    await sleep(Math.min(1 + i, 20));
  }
}

export async function thawV1(dir: string): Promise<void> {
  await writeCgroupFile(dir, 'freezer.state', 'THAWED');
}

export async function isFrozenV1(dir: string): Promise<boolean> {
  return (await readCgroupFile(dir, 'freezer.state')).trim() === 'FROZEN';
}
