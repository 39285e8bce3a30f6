import { mkdtempSync, rmdirSync } from 'node:fs';
import { release } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { LaunchError } from './launcher.js';
import { MS } from './plan.js';

// a directory on a tmpfs of this test's own (mounted by nobody else: /dev/shm is a tmpfs on Linux)
const shm = mkdtempSync('/dev/shm/berth-idmap-hint-');
afterAll(() => rmdirSync(shm));

const tree = (source: string) =>
  ({
    op: 'idmapTree',
    source,
    slot: 0,
    recursive: false,
    idmapRecursive: false,
    flags: MS.RDONLY,
    tree: 0,
    describe: `prepare the idmapped mount of ${source} (mounts[3])`,
  }) as const;

describe('LaunchError', () => {
  it('names the file system and the kernel when a mount cannot be idmapped (EINVAL)', () => {
    const e = new LaunchError(tree(shm), 4, 'mount_setattr MOUNT_ATTR_IDMAP', 22);
    expect(e.message).toBe(
      `prepare the idmapped mount of ${shm} (mounts[3]): mount_setattr MOUNT_ATTR_IDMAP: EINVAL (invalid argument): Linux ${release()} cannot idmap a mount of ${shm} (tmpfs) (tmpfs can be idmapped from Linux 6.3)`,
    );
    expect(new LaunchError(tree('/proc'), 4, 'mount_setattr MOUNT_ATTR_IDMAP', 22).message).toMatch(
      /cannot idmap a mount of \/proc \(file system type 0x9fa0\)$/,
    );
  });

  it('adds nothing for another errno, another syscall, or a source that is gone', () => {
    expect(new LaunchError(tree(shm), 4, 'mount_setattr MOUNT_ATTR_IDMAP', 1).message).toMatch(
      /: EPERM \(operation not permitted\)$/,
    );
    expect(new LaunchError(tree(shm), 4, 'open_tree (idmapped mount source)', 22).message).toMatch(
      /: EINVAL \(invalid argument\)$/,
    );
    expect(new LaunchError(tree(`${shm}/missing`), 4, 'mount_setattr MOUNT_ATTR_IDMAP', 22).message).toMatch(
      /: EINVAL \(invalid argument\)$/,
    );
  });
});
