// One error hierarchy: every package's error is a BerthError with code, op and path.
import { CgroupError } from '@berth/cgroups';
import { ImageError } from '@berth/image';
import { ImageRootfsError } from '@berth/rootfs';
import { parseSpec, SpecError } from '@berth/spec';
import { BerthError, SysError } from '@berth/sys';
import { describe, expect, it } from 'vitest';

describe('errors', () => {
  it('are all BerthErrors, with code, op and path', () => {
    const spec = (() => {
      try {
        parseSpec('{"ociVersion": 1}', '/b/config.json');
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    const errors: [BerthError, string, string, string | undefined][] = [
      [spec as SpecError, 'EINVALIDSPEC', 'validate', '/b/config.json'],
      [
        new CgroupError({ code: 'EPATH', op: 'resolve', path: '/x', message: 'bad' }),
        'EPATH',
        'resolve',
        '/x',
      ],
      [
        new ImageError('EREF', 'bad ref', { op: 'parse reference', path: 'a@b' }),
        'EREF',
        'parse reference',
        'a@b',
      ],
      [new ImageRootfsError('EUNSAFE', 'bad', { op: 'unpack', path: '/l' }), 'EUNSAFE', 'unpack', '/l'],
      [new SysError('mount', 2, '/m'), 'ESYSCALL', 'mount', '/m'],
    ];
    for (const [err, code, op, path] of errors) {
      expect(err).toBeInstanceOf(BerthError);
      expect(err).toBeInstanceOf(Error);
      expect({ code: err.code, op: err.op, path: err.path }).toEqual({ code, op, path });
      expect(err.toJSON()).toMatchObject({ code, message: err.message });
    }
    expect(spec).toBeInstanceOf(SpecError);
    expect((spec as SpecError).problems.length).toBeGreaterThan(0);
  });
});
