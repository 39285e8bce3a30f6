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
import { AT_FDCWD, hasErrno, lgetxattr, llistxattr, lsetxattr, mknodat, splitDev } from '@berth/sys';
import { OVERLAY_OPAQUE_XATTR } from '../layers/unpack.js';

/**
 * Reads an xattr; a file system without xattr support (ENOTSUP, which Linux also names EOPNOTSUPP) has none.
 */
function getXattr(path: string, name: string): Buffer | undefined {
  try {
    return lgetxattr(path, name);
  } catch (err) {
    if (hasErrno(err, 'ENOTSUP')) return undefined;
    throw err;
  }
}

function listXattrs(path: string): string[] {
  try {
    return llistxattr(path);
  } catch (err) {
    if (hasErrno(err, 'ENOTSUP')) return [];
    throw err;
  }
}

async function copyMeta(src: string, dst: string, st: Stats): Promise<void> {
  if (process.getuid?.() === 0) await lchown(dst, st.uid, st.gid);
  if (!st.isSymbolicLink()) await chmod(dst, st.mode & 0o7777);
  for (const name of listXattrs(src)) {
    // overlay's own markers describe the layer, not the file
    if (name.startsWith('trusted.overlay.')) continue;
    const value = getXattr(src, name);
    if (value === undefined) continue;
    try {
      lsetxattr(dst, name, value);
    } catch (err) {
      // the copy target has no xattr support (ramfs, some FUSE and network file systems): the tree is still
      // the image's, as containers/storage does it
      if (!hasErrno(err, 'ENOTSUP')) throw err;
    }
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
      const opaque = getXattr(s, OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
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
    // EXCL: the name was just removed, so nothing is there to write through
    if (st.isFile()) await copyFile(s, d, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL);
    else if (st.isSymbolicLink()) await symlink(await readlink(s), d);
    else {
      const { major, minor } = splitDev(st.rdev);
      mknodat(AT_FDCWD, d, st.mode, major, minor);
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
