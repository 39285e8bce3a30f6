import { describe, expect, it } from 'vitest';
import { SysError } from './errors.js';
import { RecordingSys } from './sys.js';

describe('RecordingSys', () => {
  it('records calls in order', () => {
    const sys = new RecordingSys();
    sys.mount('proc', '/proc', 'proc', 0);
    sys.umount('/proc', 2);
    expect(sys.calls).toEqual([
      { call: 'mount', args: ['proc', '/proc', 'proc', 0, null] },
      { call: 'umount', args: ['/proc', 2] },
    ]);
  });

  it('fails the matching call with a typed error, once', () => {
    const sys = new RecordingSys().failOn('mount', 16, (a) => a[1] === '/b');
    sys.mount(null, '/a', null, 0);
    expect(() => sys.mount(null, '/b', null, 0)).toThrow(SysError);
    expect(() => sys.mount(null, '/b', null, 0)).not.toThrow();
  });
});
