// shiftOwners: a private copy of image layers given to a user namespace (the copy snapshotter
// with --uidmap), on a real file system: owners, set-id bits, hard links and file capabilities.
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lgetxattr, lsetxattr } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { capsForUserns, shiftOwners } from '../../src/image.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-shift-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** container id → host id for one range (what a --uidmap 0:BASE:SIZE gives). */
const range = (base: number, size: number) => (id: number) => (id < size ? base + id : undefined);

/** A revision 2 file capability set: CAP_NET_RAW (13) permitted and effective. */
function capsV2(): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000001, 0); // revision 2, effective
  b.writeUInt32LE(1 << 13, 4); // permitted[0]
  return b;
}

describe('capsForUserns', () => {
  it('makes a revision 2 set a revision 3 one for the namespace root, and maps a revision 3 root', () => {
    const v3 = capsForUserns(capsV2(), 200000, range(200000, 65536));
    expect(v3?.length).toBe(24);
    expect(v3?.readUInt32LE(0)).toBe(0x03000001);
    expect(v3?.readUInt32LE(4)).toBe(1 << 13);
    expect(v3?.readUInt32LE(20)).toBe(200000);
    // a revision 3 set names its root in the container's ids
    const own = Buffer.from(v3!);
    own.writeUInt32LE(0, 20);
    expect(capsForUserns(own, 200000, range(200000, 65536))?.readUInt32LE(20)).toBe(200000);
    own.writeUInt32LE(70000, 20); // no host id for that root
    expect(capsForUserns(own, 200000, range(200000, 65536))).toBeUndefined();
    expect(capsForUserns(Buffer.alloc(3), 200000, range(200000, 65536))).toBeUndefined();
    expect(capsForUserns(Buffer.alloc(20), 200000, range(200000, 65536))).toBeUndefined(); // revision 0
  });
});

describe('shiftOwners', () => {
  it('moves every owner into the range, keeps set-id bits, shifts a hard-linked inode once, never follows a link', async () => {
    const base = 300000;
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'bin'), { recursive: true });
    mkdirSync(join(tree, 'home/user'), { recursive: true });
    writeFileSync(join(tree, 'bin/su'), '#!/bin/sh\n');
    chmodSync(join(tree, 'bin/su'), 0o4755);
    writeFileSync(join(tree, 'bin/ping'), '#!/bin/sh\n');
    lsetxattr(join(tree, 'bin/ping'), 'security.capability', capsV2());
    writeFileSync(join(tree, 'home/user/file'), 'x\n');
    chownSync(join(tree, 'home/user'), 1000, 1000);
    chownSync(join(tree, 'home/user/file'), 1000, 100);
    linkSync(join(tree, 'home/user/file'), join(tree, 'home/link')); // the same inode twice
    writeFileSync(join(tree, 'big-id'), 'x\n');
    chownSync(join(tree, 'big-id'), 70000, 70000); // outside the maps
    // links out of the tree, as an image can hold: to a host file, and to a host directory
    // (never descended); their targets are never touched
    const outside = join(dir, 'outside');
    writeFileSync(outside, 'host\n');
    symlinkSync(outside, join(tree, 'escape'));
    const outsideDir = join(dir, 'outside-dir');
    mkdirSync(outsideDir);
    writeFileSync(join(outsideDir, 'secret'), 'host\n');
    chmodSync(join(outsideDir, 'secret'), 0o4755);
    symlinkSync(outsideDir, join(tree, 'escape-dir'));

    // a map whose host range overlaps its container range: shifting twice would show
    await shiftOwners(tree, { uid: range(base, 65536), gid: range(base + 100000, 65536) });

    const owner = (p: string) => {
      const st = lstatSync(join(tree, p));
      return [st.uid, st.gid];
    };
    expect(owner('.')).toEqual([base, base + 100000]);
    expect(owner('bin/su')).toEqual([base, base + 100000]);
    expect(lstatSync(join(tree, 'bin/su')).mode & 0o7777).toBe(0o4755);
    expect(owner('home/user')).toEqual([base + 1000, base + 100000 + 1000]);
    expect(owner('home/user/file')).toEqual([base + 1000, base + 100000 + 100]);
    expect(owner('home/link')).toEqual([base + 1000, base + 100000 + 100]);
    expect(owner('big-id')).toEqual([70000, 70000]);
    expect(owner('escape')).toEqual([base, base + 100000]);
    expect([lstatSync(outside).uid, lstatSync(outside).gid]).toEqual([0, 0]);
    expect(owner('escape-dir')).toEqual([base, base + 100000]);
    for (const p of [outsideDir, join(outsideDir, 'secret')])
      expect([lstatSync(p).uid, lstatSync(p).gid]).toEqual([0, 0]);
    expect(lstatSync(join(outsideDir, 'secret')).mode & 0o7777).toBe(0o4755);
    // ping's capability set survives the chown, for the namespace's root
    const caps = lgetxattr(join(tree, 'bin/ping'), 'security.capability');
    expect(caps?.readUInt32LE(0)).toBe(0x03000001);
    expect(caps?.readUInt32LE(20)).toBe(base);
  });

  it('shifts ids that are inside the host range only once (a map onto low ids)', async () => {
    const tree = join(dir, 'low');
    mkdirSync(join(tree, 'a'), { recursive: true });
    writeFileSync(join(tree, 'a/f'), 'x\n');
    linkSync(join(tree, 'a/f'), join(tree, 'g'));
    // 0 → 1000: a second pass would move 1000 to 2000
    await shiftOwners(tree, { uid: range(1000, 65536), gid: range(1000, 65536) });
    expect(lstatSync(join(tree, 'a/f')).uid).toBe(1000);
    expect(lstatSync(join(tree, 'g')).uid).toBe(1000);
    expect(lstatSync(join(tree, 'a')).uid).toBe(1000);
  });
});
