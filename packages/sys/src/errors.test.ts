import { describe, expect, it } from 'vitest';
import { BerthError, errnoName, errnoNumber, SysError, strerror } from './errors.js';

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
