// Hostile layers, each built here as a tar, unpacked as `berth run IMAGE` unpacks image layers. Every test
// asserts that a host file outside the layer keeps its owner, mode, times, xattrs and content, and that
// nothing was written outside. Needs root (owners, devices, trusted.* xattrs).
import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { llistxattr } from '@berth/sys';
import { afterAll, describe, expect, it } from 'vitest';
import { tarBuffer } from '../../../image/test/helpers/image.js';
import { ImageRootfsError, type UnpackOptions, unpackLayer } from '../../src/image.js';

type Entry = Parameters<typeof tarBuffer>[0][number];

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const d of dirs) expect(existsSync(d)).toBe(false);
});

const VICTIM_TIME = 1_600_000_000;

interface Host {
  root: string;
  layer: string;
  /** a directory outside the layer, with one file in it */
  outside: string;
  /** the host file the attacks aim at */
  victim: string;
}

function host(): Host {
  const root = mkdtempSync(join(tmpdir(), 'berth-attack-'));
  dirs.push(root);
  const outside = join(root, 'outside');
  mkdirSync(outside, { mode: 0o755 });
  const victim = join(outside, 'victim');
  writeFileSync(victim, 'host data\n', { mode: 0o644 });
  chmodSync(victim, 0o644);
  chownSync(victim, 0, 0);
  utimesSync(victim, VICTIM_TIME, VICTIM_TIME);
  utimesSync(outside, VICTIM_TIME, VICTIM_TIME);
  return { root, layer: join(root, 'layer'), outside, victim };
}

function fingerprint(h: Host): unknown {
  const files = readdirSync(h.outside).sort();
  const st = lstatSync(h.victim);
  const dir = lstatSync(h.outside);
  return {
    files,
    victim: {
      type: st.isFile(),
      mode: (st.mode & 0o7777).toString(8),
      owner: `${st.uid}:${st.gid}`,
      mtime: st.mtimeMs,
      // any chown, chmod, utimes or setxattr moves ctime, even one that sets the same value
      ctime: st.ctimeMs,
      content: readFileSync(h.victim, 'utf8'),
      xattrs: llistxattr(h.victim),
    },
    dir: {
      mode: (dir.mode & 0o7777).toString(8),
      owner: `${dir.uid}:${dir.gid}`,
      mtime: dir.mtimeMs,
      ctime: dir.ctimeMs,
      xattrs: llistxattr(h.outside),
    },
  };
}

/** Unpacks the entries (OUTSIDE and VICTIM in link names become the host paths) and checks the host. */
async function attack(entries: Entry[], options: UnpackOptions = {}): Promise<{ err: unknown; h: Host }> {
  const h = host();
  const before = fingerprint(h);
  const tar = await tarBuffer(
    entries.map((e) => ({
      ...e,
      ...(e.linkname !== undefined
        ? { linkname: e.linkname.replace('OUTSIDE', h.outside).replace('VICTIM', h.victim) }
        : {}),
    })),
  );
  const err = await unpackLayer(tar, h.layer, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(fingerprint(h)).toEqual(before);
  return { err, h };
}

const evilDir: Entry = { name: 'd', type: 'dir', mode: 0o6777, uid: 4242, gid: 4242, mtime: 1234 };

describe('a directory entry followed by a symlink of the same name (the reported bug)', () => {
  it('never applies the directory owner, mode or times to the symlink target', async () => {
    const { err, h } = await attack([evilDir, { name: 'd', type: 'symlink', linkname: 'VICTIM' }]);
    expect(err).toBeUndefined();
    expect(readlinkSync(join(h.layer, 'd'))).toBe(h.victim);
  });

  it('nor through a symlink that replaces it deeper in the layer', async () => {
    const { err } = await attack([
      { name: 'a', type: 'dir' },
      { ...evilDir, name: 'a/d' },
      { name: 'a', type: 'symlink', linkname: 'OUTSIDE' },
    ]);
    expect(err).toBeUndefined();
  });

  it('nor with xattrs on the directory', async () => {
    const { err } = await attack(
      [
        { ...evilDir, xattrs: { 'user.evil': 'x', 'security.capability': Buffer.alloc(20) } },
        { name: 'd', type: 'symlink', linkname: 'OUTSIDE' },
      ],
      { whiteouts: 'apply' },
    );
    expect(err).toBeUndefined();
  });

  it('applies the metadata of the last of two directory entries', async () => {
    const h = host();
    await unpackLayer(
      await tarBuffer([evilDir, { name: 'd', type: 'dir', mode: 0o750, uid: 7, gid: 8, mtime: 99 }]),
      h.layer,
    );
    const st = lstatSync(join(h.layer, 'd'));
    expect([(st.mode & 0o7777).toString(8), st.uid, st.gid, st.mtimeMs]).toEqual(['750', 7, 8, 99_000]);
  });
});

describe('symlink parents', () => {
  const kinds: Entry[] = [
    { name: 'l/pwned', type: 'file', body: Buffer.from('x') },
    { name: 'l/sub/pwned', type: 'file', body: Buffer.from('x') },
    { name: 'l/pwned', type: 'dir' },
    { name: 'l/pwned', type: 'symlink', linkname: '/' },
    { name: 'l/pwned', type: 'fifo' },
    { name: 'l/pwned', type: 'char', devmajor: 1, devminor: 3 },
    { name: 'l/victim', type: 'file', body: Buffer.from('overwritten\n') },
    { name: 'l/victim', type: 'link', linkname: 'x' },
    { name: 'x', type: 'link', linkname: 'l/victim' },
  ];
  for (const entry of kinds) {
    it(`refuses ${entry.type} ${entry.name} ${entry.linkname ?? ''} below a symlink to outside`, async () => {
      const { err } = await attack([
        { name: 'x', type: 'file', body: Buffer.from('in the layer') },
        { name: 'l', type: 'symlink', linkname: 'OUTSIDE' },
        entry,
      ]);
      expect(err).toBeInstanceOf(ImageRootfsError);
      expect(err).toMatchObject({ code: 'EUNSAFE' });
      expect((err as Error).message).toMatch(/parent l is a symlink/);
    });
  }

  it('refuses a relative symlink parent that climbs out', async () => {
    const { err } = await attack([
      { name: 'up', type: 'symlink', linkname: '../outside' },
      { name: 'up/victim', type: 'file', body: Buffer.from('overwritten\n') },
    ]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
  });
});

describe('hard links', () => {
  it('resolves an absolute target inside the layer, never on the host', async () => {
    const { err } = await attack([{ name: 'h', type: 'link', linkname: 'VICTIM' }]);
    expect(err).toMatchObject({ code: 'EUNPACK' });
    expect((err as Error).message).toMatch(/hard link target .* is not a file earlier in the layer/);
  });

  it('refuses a target that climbs out with ..', async () => {
    const { err } = await attack([{ name: 'h', type: 'link', linkname: '../outside/victim' }]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
  });

  it('links a symlink itself, never its target, and a later file replaces the link', async () => {
    const { err, h } = await attack([
      { name: 's', type: 'symlink', linkname: 'VICTIM' },
      { name: 'h', type: 'link', linkname: 's' },
      { name: 'h', type: 'file', body: Buffer.from('overwritten\n'), mode: 0o4777 },
    ]);
    expect(err).toBeUndefined();
    expect(readFileSync(join(h.layer, 'h'), 'utf8')).toBe('overwritten\n');
    expect(lstatSync(join(h.layer, 's')).isSymbolicLink()).toBe(true);
  });

  it('a file entry never writes through an earlier hard link of the same name', async () => {
    const { err, h } = await attack([
      { name: 'a', type: 'file', body: Buffer.from('original\n') },
      { name: 'b', type: 'link', linkname: 'a' },
      { name: 'b', type: 'file', body: Buffer.from('changed\n') },
    ]);
    expect(err).toBeUndefined();
    expect(readFileSync(join(h.layer, 'a'), 'utf8')).toBe('original\n');
  });
});

describe('deep trees', () => {
  it('keeps every directory fd an entry uses open, however deep its hard link target', async () => {
    const deep = Array.from({ length: 300 }, () => 'd').join('/');
    const entries: Entry[] = [
      { name: 'x', type: 'dir' },
      { name: `${deep}/f`, type: 'file', body: Buffer.from('deep\n') },
      // push the deep directories out of the fd cache
      ...Array.from({ length: 300 }, (_, i): Entry => ({ name: `e${i}`, type: 'dir' })),
      { name: 'x/h', type: 'link', linkname: `${deep}/f` },
    ];
    const { err, h } = await attack(entries);
    expect(err).toBeUndefined();
    expect(lstatSync(join(h.layer, 'x/h')).ino).toBe(lstatSync(join(h.layer, deep, 'f')).ino);
  });

  it('refuses a hard link whose target is inside the path it replaces', async () => {
    const { err } = await attack([
      { name: 'a/x', type: 'file', body: Buffer.from('x') },
      { name: 'a', type: 'link', linkname: 'a/x' },
    ]);
    expect(err).toMatchObject({ code: 'EUNPACK' });
  });
});

describe('names', () => {
  for (const name of ['/abs', '../escaped', 'a/../../escaped', 'a/../..', './../x']) {
    it(`refuses ${name}`, async () => {
      const { err, h } = await attack([{ name, type: 'file', body: Buffer.from('x') }]);
      expect(err).toMatchObject({ code: 'EUNSAFE' });
      expect(existsSync(join(h.root, 'escaped'))).toBe(false);
    });
  }
});

describe('a path swapped between symlink and directory mid-layer', () => {
  it('a directory replacing a symlink is a real directory inside the layer', async () => {
    const { err, h } = await attack([
      { name: 'd', type: 'symlink', linkname: 'OUTSIDE' },
      { name: 'd', type: 'dir', mode: 0o700 },
      { name: 'd/victim', type: 'file', body: Buffer.from('in the layer\n') },
    ]);
    expect(err).toBeUndefined();
    expect(lstatSync(join(h.layer, 'd')).isDirectory()).toBe(true);
    expect(readFileSync(join(h.layer, 'd/victim'), 'utf8')).toBe('in the layer\n');
  });

  it('a symlink replacing a directory is never written through', async () => {
    const { err } = await attack([
      { name: 'd', type: 'dir' },
      { name: 'd/sub', type: 'dir', mode: 0o777 },
      { name: 'd', type: 'symlink', linkname: 'OUTSIDE' },
      { name: 'd/sub/pwned', type: 'file', body: Buffer.from('x') },
    ]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
  });

  it('a symlink replacing a directory takes the queued metadata of everything below with it', async () => {
    const { err } = await attack([
      { name: 'd', type: 'dir' },
      { name: 'd/victim', type: 'dir', mode: 0o6777, uid: 4242, gid: 4242, mtime: 1 },
      { name: 'd', type: 'symlink', linkname: 'OUTSIDE' },
    ]);
    expect(err).toBeUndefined();
  });
});

describe('a process racing the unpack', () => {
  it('swapping a directory for a symlink to outside never gets anything written or changed outside', async () => {
    const h = host();
    const before = fingerprint(h);
    mkdirSync(h.layer);
    // swaps the directory d and a symlink to the host directory atomically (renameat2 RENAME_EXCHANGE), as
    // fast as it can, so d is half the time a symlink out of the layer; puts the symlink back when the unpack
    // replaces it
    const racer = spawn(
      'python3',
      [
        '-c',
        `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.chdir(sys.argv[1])
out = sys.argv[2]
os.makedirs('d', exist_ok=True)
os.symlink(out, 'd.sym')
print('ready', flush=True)
n = 0
while True:
    n += 1
    if libc.renameat2(-100, b'd', -100, b'd.sym', 2) != 0 or n % 64 == 0:
        if not os.path.islink('d') and not os.path.islink('d.sym'):
            try: os.rename('d.sym', 'd.old%d' % n)
            except OSError: pass
        try: os.symlink(out, 'd.sym')
        except OSError: pass
        if not os.path.lexists('d'):
            try: os.mkdir('d')
            except OSError: pass`,
        h.layer,
        h.outside,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      racer.stdout.once('data', () => resolve());
      racer.once('exit', (code) => reject(new Error(`the racer (python3) exited with ${code}`)));
    });
    try {
      const entries: Entry[] = [evilDir];
      for (let i = 0; i < 400; i++) {
        entries.push({
          name: `d/s${i % 20}/victim`,
          type: 'file',
          mode: 0o4777,
          uid: 4242,
          body: Buffer.from('x'),
        });
        entries.push({ ...evilDir, name: `d/s${i % 20}` });
        entries.push({ name: `d/l${i}`, type: 'symlink', linkname: 'VICTIM'.replace('VICTIM', h.victim) });
      }
      for (let round = 0; round < 4; round++) {
        const err = await unpackLayer(await tarBuffer(entries), h.layer).then(
          () => undefined,
          (e: unknown) => e,
        );
        // the unpack may lose the race and fail, but only with its own error, never through the symlink
        if (err !== undefined) expect(err).toBeInstanceOf(ImageRootfsError);
        expect(fingerprint(h)).toEqual(before);
      }
    } finally {
      racer.kill('SIGKILL');
      await new Promise((resolve) => racer.once('exit', resolve));
    }
    expect(fingerprint(h)).toEqual(before);
  });
});

describe('whiteouts', () => {
  for (const whiteouts of ['overlay', 'apply'] as const) {
    it(`never remove through a symlink parent (${whiteouts})`, async () => {
      const { err } = await attack(
        [
          { name: 'l', type: 'symlink', linkname: 'OUTSIDE' },
          { name: 'l/.wh.victim', type: 'file' },
        ],
        { whiteouts },
      );
      expect(err).toMatchObject({ code: 'EUNSAFE' });
    });

    it(`never make a directory opaque through a symlink (${whiteouts})`, async () => {
      const { err } = await attack(
        [
          { name: 'l', type: 'symlink', linkname: 'OUTSIDE' },
          { name: 'l/.wh..wh..opq', type: 'file' },
        ],
        { whiteouts },
      );
      expect(err).toMatchObject({ code: 'EUNSAFE' });
    });

    it(`remove a symlink itself, not its target (${whiteouts})`, async () => {
      const { err, h } = await attack(
        [
          { name: 'l', type: 'symlink', linkname: 'OUTSIDE' },
          { name: '.wh.l', type: 'file' },
        ],
        { whiteouts },
      );
      expect(err).toBeUndefined();
      const st = lstatSync(join(h.layer, 'l'), { throwIfNoEntry: false });
      if (whiteouts === 'apply') expect(st).toBeUndefined();
      else expect(st?.isCharacterDevice() && st.rdev === 0).toBe(true);
    });
  }
});

describe('xattrs', () => {
  for (const name of ['trusted.overlay.opaque', 'trusted.overlay.redirect', 'user.overlay.opaque']) {
    it(`refuses ${name} from a layer`, async () => {
      const { err, h } = await attack([
        { name: 'd', type: 'dir', xattrs: { [name]: 'y' } },
        { name: 'f', type: 'file', body: Buffer.from('x') },
      ]);
      expect(err).toMatchObject({ code: 'EUNSAFE' });
      expect((err as Error).message).toContain(name);
      expect(existsSync(join(h.layer, 'd')) ? llistxattr(join(h.layer, 'd')) : []).not.toContain(name);
    });
  }

  it('refuses trusted.overlay.* on the layer root entry too', async () => {
    const { err } = await attack([{ name: './', type: 'dir', xattrs: { 'trusted.overlay.redirect': '/x' } }]);
    expect(err).toMatchObject({ code: 'EUNSAFE' });
  });

  it('keeps security.capability and user.* on files, drops security.selinux and other trusted.*', async () => {
    const h = host();
    // version 2 capability: cap_net_raw permitted + effective
    const cap = Buffer.alloc(20);
    cap.writeUInt32LE(0x02000001, 0);
    cap.writeUInt32LE(1 << 13, 4);
    const stats = await unpackLayer(
      await tarBuffer([
        {
          name: 'ping',
          type: 'file',
          mode: 0o755,
          body: Buffer.from('x'),
          xattrs: {
            'security.capability': cap,
            'user.note': 'kept',
            'security.selinux': 'system_u:object_r:shadow_t:s0',
            'trusted.evil': 'x',
          },
        },
      ]),
      h.layer,
    );
    const names = llistxattr(join(h.layer, 'ping')).filter((n) => !n.startsWith('security.selinux'));
    expect(names.sort()).toEqual(['security.capability', 'user.note']);
    expect(stats.skippedXattrs).toBe(2);
  });
});
