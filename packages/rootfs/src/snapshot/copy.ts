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

/** The file capability attribute (a capability set of an executable, vfs_cap_data in the kernel). */
const CAPS_XATTR = 'security.capability';
const VFS_CAP_REVISION_MASK = 0xff000000;
const VFS_CAP_REVISION_2 = 0x02000000;
const VFS_CAP_REVISION_3 = 0x03000000;

/**
 * A file capability set for a user namespace whose root is `hostRoot`: revision 3, with that
 * root id (a revision 2 set holds only in the host's own user namespace, so the container's root
 * would get nothing from it). A revision 3 set's root is mapped with `uid`; undefined where the
 * value is not one the kernel would take, or its root has no host id.
 */
export function capsForUserns(
  value: Buffer,
  hostRoot: number,
  uid: (id: number) => number | undefined,
): Buffer | undefined {
  if (value.length < 4) return undefined;
  const magic = value.readUInt32LE(0);
  const revision = (magic & VFS_CAP_REVISION_MASK) >>> 0;
  if (revision === VFS_CAP_REVISION_2 && value.length === 20) {
    const out = Buffer.alloc(24);
    value.copy(out, 0, 0, 20);
    out.writeUInt32LE(((magic & ~VFS_CAP_REVISION_MASK) | VFS_CAP_REVISION_3) >>> 0, 0);
    out.writeUInt32LE(hostRoot, 20);
    return out;
  }
  if (revision === VFS_CAP_REVISION_3 && value.length === 24) {
    const root = uid(value.readUInt32LE(20));
    if (root === undefined) return undefined;
    const out = Buffer.from(value);
    out.writeUInt32LE(root, 20);
    return out;
  }
  return undefined;
}

/** How shiftOwners maps ids: a container id → its host id, undefined outside the maps. */
export interface OwnerShift {
  uid(id: number): number | undefined;
  gid(id: number): number | undefined;
}

/**
 * Gives a private tree (a merged copy of image layers, see mergeLayers) to a user namespace:
 * each file's ids, which are the container's, become the host ids the maps give them, as
 * containers/storage does where the layers cannot be idmapped. Links are not followed. chown
 * clears set-user-ID and set-group-ID bits and file capabilities: the mode is set again, and a
 * capability set is written again for the container's root (see capsForUserns). An id outside
 * the maps is left as it is: the container sees it as the overflow id, as through an idmapped
 * mount. Only for a tree nobody else writes while this runs (a container not yet started).
 */
export async function shiftOwners(dir: string, shift: OwnerShift): Promise<void> {
  const hostRoot = shift.uid(0);
  const seen = new Set<string>(); // hard links: an inode is shifted once, whatever its names
  const visit = async (path: string): Promise<void> => {
    const st = await lstat(path);
    if (!st.isDirectory() && st.nlink > 1) {
      const key = `${st.dev}:${st.ino}`;
      if (seen.has(key)) return;
      seen.add(key);
    }
    const caps = st.isFile() ? getXattr(path, CAPS_XATTR) : undefined;
    const uid = shift.uid(st.uid) ?? st.uid;
    const gid = shift.gid(st.gid) ?? st.gid;
    if (uid !== st.uid || gid !== st.gid) {
      await lchown(path, uid, gid);
      if (!st.isSymbolicLink() && (st.mode & 0o6000) !== 0) await chmod(path, st.mode & 0o7777);
      if (caps !== undefined && hostRoot !== undefined) {
        const value = capsForUserns(caps, hostRoot, shift.uid);
        if (value !== undefined) lsetxattr(path, CAPS_XATTR, value);
      }
    }
    if (st.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name));
  };
  await visit(dir);
}
