import { CgroupError } from '../errors.js';
import { parseKeyValues, readOptional, sleep, writeCgroupFile } from '../fsutil.js';

/** cgroup.freeze is asynchronous: wait for cgroup.events to report `frozen 1`. */
export async function freezeV2(dir: string, timeoutMs = 10_000): Promise<void> {
  await writeCgroupFile(dir, 'cgroup.freeze', '1');
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    if (await isFrozenV2(dir)) return;
    if (Date.now() > deadline) {
      await writeCgroupFile(dir, 'cgroup.freeze', '0').catch(() => undefined);
      throw new CgroupError({
        code: 'ETIMEDOUT',
        op: 'freeze',
        path: dir,
        message: `freeze ${dir}: not frozen after ${timeoutMs} ms, thawed again`,
      });
    }
    await sleep(Math.min(1 + i, 20));
  }
}

export async function thawV2(dir: string): Promise<void> {
  await writeCgroupFile(dir, 'cgroup.freeze', '0');
}

export async function isFrozenV2(dir: string): Promise<boolean> {
  return parseKeyValues(await readOptional(dir, 'cgroup.events'))['frozen'] === 1;
}
