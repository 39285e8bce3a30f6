import { inUserNamespace } from '@berth/sys';
import { describe, expect, it } from 'vitest';
import { defaultSlice, outerUid, systemdManager } from './manager.js';

describe('which systemd manager the driver asks', () => {
  it('maps a uid through uid_map to the id the manager sees', () => {
    const map = '         0       1001          1\n         1     100000      65536\n';
    expect(outerUid(0, map)).toBe(1001);
    expect(outerUid(1, map)).toBe(100000);
    expect(outerUid(65536, map)).toBe(165535);
    // unmapped: itself
    expect(outerUid(70000, map)).toBe(70000);
    expect(outerUid(5, '0 0 4294967295\n')).toBe(5);
  });

  it("as the host's root: the system manager, whatever XDG_RUNTIME_DIR says; a user's with the user's runtime dir in a user namespace", () => {
    if ((process.getuid?.() ?? 0) !== 0) return;
    const env = { XDG_RUNTIME_DIR: '/run/user/1234', USER: 'someone' };
    if (!inUserNamespace()) {
      // sudo -E keeps a user's XDG_RUNTIME_DIR: still the system's manager, as runc decides
      expect(systemdManager(env)).toEqual({ kind: 'system', socket: '/run/systemd/private', uid: 0 });
      expect(defaultSlice(systemdManager(env))).toBe('system.slice');
    } else {
      expect(systemdManager(env).kind).toBe('user');
      expect(systemdManager(env).socket).toBe('/run/user/1234/systemd/private');
    }
    // $USER root, or no runtime dir: the system's
    expect(systemdManager({ ...env, USER: 'root' }).kind).toBe('system');
    expect(systemdManager({ USER: 'someone' }).kind).toBe('system');
    expect(defaultSlice({ kind: 'user', socket: '/x', uid: 1 })).toBe('user.slice');
  });
});
