import type { Stats } from 'node:fs';
import {
  chmod,
  constants,
  copyFile,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  readdir,
  readlink,
  rm,
  symlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import { lgetxattr, llistxattr, lsetxattr, mknod } from '../layers/libc.js';
import { OVERLAY_OPAQUE_XATTR } from '../layers/unpack.js';

function devParts(rdev: number): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

async function copyMeta(src: string, dst: string, st: Stats): Promise<void> {
  if (process.getuid?.() === 0) await lchown(dst, st.uid, st.gid);
  if (!st.isSymbolicLink()) await chmod(dst, st.mode & 0o7777);
  for (const name of llistxattr(src)) {
    // overlay's own markers describe the layer, not the file
    if (name.startsWith('trusted.overlay.')) continue;
    const value = lgetxattr(src, name);
    if (value !== undefined) lsetxattr(dst, name, value);
  }
  await lutimes(dst, st.atime, st.mtime);
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  return lstat(p).catch(() => undefined);
}

async function mergeDir(src: string, dst: string, inodes: Map<string, string>): Promise<void> {
  for (const name of await readdir(src)) {
    const s = join(src, name);
    const d = join(dst, name);
    const st = await lstat(s);
    if (st.isCharacterDevice() && st.rdev === 0) {
      // an overlay whiteout: the name disappears from the merged tree
      await rm(d, { recursive: true, force: true });
      continue;
    }
    if (st.isDirectory()) {
      const old = await lstatOrUndefined(d);
      const opaque = lgetxattr(s, OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
      if (old !== undefined && (!old.isDirectory() || opaque)) await rm(d, { recursive: true, force: true });
      if (old === undefined || !old.isDirectory() || opaque) await mkdir(d);
      await mergeDir(s, d, inodes);
      await copyMeta(s, d, st);
      continue;
    }
    await rm(d, { recursive: true, force: true });
    const key = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? inodes.get(key) : undefined;
    if (first !== undefined) {
      try {
        await link(first, d);
        continue;
      } catch {
        // the first path was replaced by a later layer: fall through to a copy
      }
    }
    if (st.isFile()) await copyFile(s, d, constants.COPYFILE_FICLONE);
    else if (st.isSymbolicLink()) await symlink(await readlink(s), d);
    else {
      const { major, minor } = devParts(st.rdev);
      mknod(d, st.mode, major, minor);
    }
    if (st.nlink > 1) inodes.set(key, d);
    await copyMeta(s, d, st);
  }
}

/**
 * The fallback where overlayfs is unavailable (nested in another overlay, some rootless setups): layers are
 * copied into one tree bottom-up, with overlay whiteouts and opaque markers applied as they are met.
 */
export async function mergeLayers(layers: string[], target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const layer of layers) {
    const st = await lstat(layer);
    await mergeDir(layer, target, new Map());
    await copyMeta(layer, target, st);
  }
}
