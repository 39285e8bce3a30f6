import { describe, expect, it } from 'vitest';
import { DEFAULT_UNPACK_LIMITS, xattrPolicy } from './unpack.js';

describe('xattrPolicy', () => {
  it('applies user, file capabilities and ACLs; rejects overlay attributes; skips the rest', () => {
    expect(
      Object.fromEntries(
        [
          'user.mime_type',
          'security.capability',
          'system.posix_acl_access',
          'system.posix_acl_default',
          'trusted.overlay.opaque',
          'trusted.overlay.redirect',
          'trusted.overlay.metacopy',
          'user.overlay.origin',
          'security.selinux',
          'security.ima',
          'trusted.md5sum',
          'system.nfs4_acl',
          'weird.namespace',
        ].map((n) => [n, xattrPolicy(n)]),
      ),
    ).toEqual({
      'user.mime_type': 'apply',
      'security.capability': 'apply',
      'system.posix_acl_access': 'apply',
      'system.posix_acl_default': 'apply',
      'trusted.overlay.opaque': 'reject',
      'trusted.overlay.redirect': 'reject',
      'trusted.overlay.metacopy': 'reject',
      'user.overlay.origin': 'reject',
      'security.selinux': 'skip',
      'security.ima': 'skip',
      'trusted.md5sum': 'skip',
      'system.nfs4_acl': 'skip',
      'weird.namespace': 'skip',
    });
  });

  it('has limits a real image never reaches', () => {
    expect(DEFAULT_UNPACK_LIMITS).toEqual({
      maxEntries: 4_000_000,
      maxEntrySize: 64 * 2 ** 30,
      maxTotalSize: 256 * 2 ** 30,
      maxCompressionRatio: 2000,
      ratioFloor: 2 ** 30,
    });
  });
});
