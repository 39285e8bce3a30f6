import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveInRoot } from './resolve.js';

const root = mkdtempSync(join(tmpdir(), 'berth-resolve-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
mkdirSync(join(root, 'usr/lib'), { recursive: true });
symlinkSync('usr/lib', join(root, 'lib'));
symlinkSync('/etc', join(root, 'abs')); // absolute: means the container's /etc
symlinkSync('../../../../..', join(root, 'up'));
symlinkSync('loop2', join(root, 'loop1'));
symlinkSync('loop1', join(root, 'loop2'));

describe('resolveInRoot', () => {
  it('follows links inside the root', () => {
    expect(resolveInRoot(root, '/lib/x')).toBe(join(root, 'usr/lib/x'));
  });
  it('keeps absolute link targets inside the root', () => {
    expect(resolveInRoot(root, '/abs/passwd')).toBe(join(root, 'etc/passwd'));
  });
  it('never climbs out with ..', () => {
    expect(resolveInRoot(root, '/../../etc')).toBe(join(root, 'etc'));
    expect(resolveInRoot(root, '/up/etc/shadow')).toBe(join(root, 'etc/shadow'));
  });
  it('reports link loops', () => {
    expect(() => resolveInRoot(root, '/loop1/x')).toThrow(/too many levels of symbolic links/);
  });
});

describe('resolveInRoot with layer views', () => {
  it('follows a link found in a lower layer when the root itself is still empty', () => {
    const top = mkdtempSync(join(tmpdir(), 'berth-view-top-'));
    const lower = mkdtempSync(join(tmpdir(), 'berth-view-lower-'));
    const empty = mkdtempSync(join(tmpdir(), 'berth-view-root-'));
    try {
      mkdirSync(join(top, 'var'));
      mkdirSync(join(lower, 'var'));
      symlinkSync('/run', join(lower, 'var/run'));
      expect(resolveInRoot(empty, '/var/run/x', [top, lower])).toBe(join(empty, 'run/x'));
      // the top layer's own entry hides the lower one's link
      mkdirSync(join(top, 'var/run'));
      expect(resolveInRoot(empty, '/var/run/x', [top, lower])).toBe(join(empty, 'var/run/x'));
    } finally {
      for (const d of [top, lower, empty]) rmSync(d, { recursive: true, force: true });
    }
  });
});
