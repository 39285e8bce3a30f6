import { describe, expect, it } from 'vitest';
import { BerthError, errnoName, errnoNumber, errnoOfError, hasErrno, SysError, strerror } from './errors.js';

describe('errno mapping', () => {
  it('names errno numbers and back', () => {
    expect(errnoName(1)).toBe('EPERM');
    expect(errnoName(-2)).toBe('ENOENT');
    expect(errnoName(9999)).toBe('E9999');
    expect(errnoNumber('EBUSY')).toBe(16);
    expect(strerror(13)).toBe('permission denied');
  });

  it('builds a typed error with the operation, path and errno', () => {
    const e = new SysError('mount', 1, '/proc');
    expect(e).toBeInstanceOf(BerthError);
    expect(e.message).toBe('mount /proc: EPERM (operation not permitted)');
    expect(e.toJSON()).toEqual({
      code: 'ESYSCALL',
      message: 'mount /proc: EPERM (operation not permitted)',
      op: 'mount',
      path: '/proc',
      errno: 'EPERM',
    });
  });
});

describe('one errno table', () => {
  it('prints 95 as EOPNOTSUPP and matches it by either name', () => {
    expect(errnoName(95)).toBe('EOPNOTSUPP');
    expect(strerror(95)).toBe('operation not supported');
    expect(errnoName(11)).toBe('EAGAIN');
    const sys = new SysError('setxattr user.x', 95, '/f');
    expect(sys.errno).toBe('EOPNOTSUPP');
    expect(hasErrno(sys, 'ENOTSUP')).toBe(true);
    expect(hasErrno(sys, 'EOPNOTSUPP')).toBe(true);
    // Node's own errors name 95 ENOTSUP
    const node = Object.assign(new Error('x'), { code: 'ENOTSUP', errno: -95 });
    expect(hasErrno(node, 'EOPNOTSUPP')).toBe(true);
    expect(hasErrno({ errno: 'EWOULDBLOCK' }, 'EAGAIN')).toBe(true);
    expect(hasErrno(new BerthError('x', { code: 'EMOUNT', errno: 'ENOENT' }), 'ENOENT', 'EPERM')).toBe(true);
    expect(hasErrno(new Error('plain'), 'ENOENT')).toBe(false);
    expect(errnoOfError(undefined)).toBeUndefined();
  });
});
