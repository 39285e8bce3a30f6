import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ImageError } from './errors.js';

/** Temp file + fsync + rename: a reader sees the old file or the new one, never half of one. */
export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new ImageError('ESTORE', `cannot write ${path}`, { op: 'write file', path, cause: err });
  }
}

export function randomSuffix(): string {
  return randomBytes(6).toString('hex');
}
