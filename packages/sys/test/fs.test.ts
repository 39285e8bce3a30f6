// Integration: the fd-relative file system calls of @berth/sys, for real (needs root for chown and mknod).
import {
  closeSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  fchmodat,
  fchownat,
  fgetxattr,
  flistxattr,
  fsetxattr,
  hasErrno,
  lgetxattr,
  linkat,
  llistxattr,
  lsetxattr,
  makedev,
  mkdirat,
  mknodat,
  O,
  openat,
  openat2,
  RESOLVE,
  S_IFCHR,
  SysError,
  splitDev,
  symlinkat,
  unlinkat,
  utimensat,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-fs-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sub(name: string): { path: string; fd: number } {
  const path = join(dir, name);
  mkdirSync(path);
  return { path, fd: openat(AT_FDCWD, path, O.PATH | O.DIRECTORY) };
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

describe('fd-relative calls', () => {
  it('openat2 with RESOLVE_BENEATH|NO_SYMLINKS refuses symlinks and .. that leave the directory', () => {
    const { path, fd } = sub('beneath');
    mkdirSync(join(path, 'a'));
    writeFileSync(join(path, 'a/f'), 'inside');
    symlinkSync('/etc', join(path, 'out'));
    symlinkSync('a', join(path, 'in'));
    const how = { flags: O.RDONLY, resolve: RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS };
    const f = openat2(fd, 'a/f', how);
    expect(readFileSync(f, 'utf8')).toBe('inside');
    closeSync(f);
    expect(
      hasErrno(
        thrown(() => openat2(fd, 'out/passwd', how)),
        'ELOOP',
      ),
    ).toBe(true);
    expect(
      hasErrno(
        thrown(() => openat2(fd, 'in/f', how)),
        'ELOOP',
      ),
    ).toBe(true);
    expect(
      hasErrno(
        thrown(() => openat2(fd, '../x', how)),
        'EXDEV',
      ),
    ).toBe(true);
    // RESOLVE_IN_ROOT: an absolute symlink is resolved inside the directory
    symlinkSync('/a/f', join(path, 'abs'));
    const r = openat2(fd, 'abs', { flags: O.RDONLY, resolve: RESOLVE.IN_ROOT });
    expect(readFileSync(r, 'utf8')).toBe('inside');
    closeSync(r);
    closeSync(fd);
  });

  it('creates, links, changes and removes by name in a directory fd, never following a symlink', () => {
    const { path, fd } = sub('at');
    mkdirat(fd, 'd', 0o700);
    expect(lstatSync(join(path, 'd')).isDirectory()).toBe(true);
    const f = openat(fd, 'f', O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600);
    writeSync(f, 'data');
    closeSync(f);
    symlinkat('f', fd, 's');
    expect(readlinkSync(join(path, 's'))).toBe('f');
    // O_CREAT|O_EXCL on a symlink: EEXIST, the target is never opened
    expect(
      hasErrno(
        thrown(() => openat(fd, 's', O.WRONLY | O.CREAT | O.EXCL, 0o600)),
        'EEXIST',
      ),
    ).toBe(true);
    linkat(fd, 's', fd, 'hard-to-symlink', 0);
    expect(lstatSync(join(path, 'hard-to-symlink')).isSymbolicLink()).toBe(true);
    fchownat(fd, 's', 4321, 4321, AT_SYMLINK_NOFOLLOW);
    expect(lstatSync(join(path, 's')).uid).toBe(4321);
    expect(lstatSync(join(path, 'f')).uid).toBe(0);
    // a symlink has no mode of its own: EOPNOTSUPP (95), never a chmod of its target
    const err = thrown(() => fchmodat(fd, 's', 0o777, AT_SYMLINK_NOFOLLOW));
    expect(err).toBeInstanceOf(SysError);
    expect(hasErrno(err, 'ENOTSUP')).toBe(true);
    expect(lstatSync(join(path, 'f')).mode & 0o777).toBe(0o600);
    utimensat(fd, 's', 1000.5, 2000.25, AT_SYMLINK_NOFOLLOW);
    expect(lstatSync(join(path, 's')).mtimeMs).toBe(2000250);
    expect(lstatSync(join(path, 'f')).mtimeMs).not.toBe(2000250);
    mknodat(fd, 'null', S_IFCHR | 0o666, 1, 3);
    expect(lstatSync(join(path, 'null')).rdev).toBe(Number(makedev(1, 3)));
    expect(splitDev(lstatSync(join(path, 'null')).rdev)).toEqual({ major: 1, minor: 3 });
    unlinkat(fd, 's', 0);
    unlinkat(fd, 'd', AT_REMOVEDIR);
    expect(
      hasErrno(
        thrown(() => unlinkat(fd, 'd', AT_REMOVEDIR)),
        'ENOENT',
      ),
    ).toBe(true);
    closeSync(fd);
  });

  it('sets, reads and lists xattrs by fd and by path without following', () => {
    const { path, fd } = sub('xattr');
    writeFileSync(join(path, 'f'), '');
    symlinkSync('f', join(path, 's'));
    const f = openat(fd, 'f', O.RDONLY);
    fsetxattr(f, 'user.a', Buffer.from('one'));
    expect(fgetxattr(f, 'user.a')?.toString()).toBe('one');
    expect(fgetxattr(f, 'user.none')).toBeUndefined();
    expect(flistxattr(f)).toContain('user.a');
    expect(fstatSync(f).isFile()).toBe(true);
    closeSync(f);
    lsetxattr(join(path, 's'), 'trusted.b', Buffer.from('two'));
    expect(lgetxattr(join(path, 's'), 'trusted.b')?.toString()).toBe('two');
    expect(llistxattr(join(path, 'f'))).not.toContain('trusted.b');
    closeSync(fd);
  });
});
