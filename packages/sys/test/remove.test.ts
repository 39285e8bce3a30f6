// removeTree: a tree a container wrote is removed without following its symlinks, even while a process
// inside keeps swapping directories for symlinks to the host (needs root for the mount and the device node).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeTree } from '../src/index.js';

const base = mkdtempSync(join(tmpdir(), 'berth-remove-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let n = 0;
function scratch(): { tree: string; victim: string } {
  const dir = join(base, `t${n++}`);
  const victim = join(dir, 'victim');
  mkdirSync(join(victim, 'sub'), { recursive: true });
  for (let i = 0; i < 50; i++) writeFileSync(join(victim, `f${i}`), 'host');
  writeFileSync(join(victim, 'sub', 'deep'), 'host');
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  return { tree, victim };
}

function victimIntact(victim: string): void {
  expect(readdirSync(victim).length).toBe(51);
  expect(existsSync(join(victim, 'sub', 'deep'))).toBe(true);
}

describe('removeTree', () => {
  it('removes every kind of entry and follows no symlink, hard link or odd mode out of the tree', () => {
    const { tree, victim } = scratch();
    mkdirSync(join(tree, 'a/b/c'), { recursive: true });
    writeFileSync(join(tree, 'a/b/c/file'), 'x');
    symlinkSync(victim, join(tree, 'a/to-victim'));
    symlinkSync('../../../victim', join(tree, 'a/b/relative'));
    symlinkSync(join(victim, 'f1'), join(tree, 'file-link'));
    linkSync(join(victim, 'f2'), join(tree, 'hard'));
    mkdirSync(join(tree, 'locked/inner'), { recursive: true });
    writeFileSync(join(tree, 'locked/inner/x'), 'x');
    chmodSync(join(tree, 'locked/inner'), 0);
    chmodSync(join(tree, 'locked'), 0);
    writeFileSync(join(tree, 'name with\nnewline'), 'x');
    const fifo = spawn('mkfifo', [join(tree, 'fifo')]);
    return new Promise<void>((resolve, reject) => {
      fifo.on('exit', () => {
        try {
          removeTree(tree);
          expect(existsSync(tree)).toBe(false);
          victimIntact(victim);
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    });
  });

  it('removes a tree nested deeper than a recursion could go (6000 levels), with one directory open at a time', () => {
    const { tree, victim } = scratch();
    // made by fd, as a container can (`mkdir x; mv d x/; mv x d` needs no long path either)
    const made = spawnSync(
      'python3',
      [
        '-c',
        `import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for i in range(6000):
    os.mkdir('d', dir_fd=fd)
    if i % 1000 == 0:
        os.symlink(sys.argv[2], 'to-victim', dir_fd=fd)
        os.close(os.open('f', os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    n = os.open('d', os.O_RDONLY, dir_fd=fd); os.close(fd); fd = n
os.close(os.open('bottom', os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))`,
        tree,
        victim,
      ],
      { encoding: 'utf8' },
    );
    expect(made.stderr).toBe('');
    const fds = readdirSync('/proc/self/fd').length;
    removeTree(tree);
    expect(existsSync(tree)).toBe(false);
    expect(readdirSync('/proc/self/fd').length).toBe(fds);
    victimIntact(victim);
  });

  it('is a no-op for a missing path, and removes a symlink given as the tree itself as a link', () => {
    const { tree, victim } = scratch();
    removeTree(join(tree, 'missing'));
    const link = join(tree, 'link');
    symlinkSync(victim, link);
    removeTree(link);
    expect(existsSync(link)).toBe(false);
    victimIntact(victim);
  });

  it('refuses a tree with a mount point below it and removes nothing', () => {
    const { tree } = scratch();
    mkdirSync(join(tree, 'mnt'));
    writeFileSync(join(tree, 'keep'), 'x');
    execFileSync('mount', ['-t', 'tmpfs', 'berth-remove-test', join(tree, 'mnt')]);
    try {
      writeFileSync(join(tree, 'mnt', 'on-tmpfs'), 'x');
      expect(() => removeTree(tree)).toThrow(/mnt is a mount point below it.*EBUSY/);
      expect(existsSync(join(tree, 'keep'))).toBe(true);
      expect(existsSync(join(tree, 'mnt', 'on-tmpfs'))).toBe(true);
    } finally {
      execFileSync('umount', [join(tree, 'mnt')]);
    }
    removeTree(tree);
    expect(existsSync(tree)).toBe(false);
  });

  it("deletes none of the host's files while a process keeps swapping a directory for a symlink to them", async () => {
    // the container's side: `d` (full of files named like the victim's) and a symlink `s` to the victim
    // trade places atomically (renameat2 RENAME_EXCHANGE), as fast as they can, while the removal runs; a
    // path-based rm -rf (Node's rmSync) loses about half of the victim's files to this
    const { tree, victim } = scratch();
    const RENAMEAT2 = process.arch === 'arm64' ? '276' : '316';
    const racerCode = `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
t, v = sys.argv[1].encode(), sys.argv[2].encode()
os.symlink(v, t + b'/s')
print('ready', flush=True)
while True:
    if libc.syscall(int(sys.argv[3]), -100, t + b'/d', -100, t + b'/s', 2) != 0:
        for n in (b'/s', b'/d'):
            try: os.symlink(v, t + n)
            except OSError: pass`;
    for (let round = 0; round < 5; round++) {
      mkdirSync(join(tree, 'd', 'sub'), { recursive: true });
      for (let i = 0; i < 50; i++) writeFileSync(join(tree, 'd', `f${i}`), 'container');
      writeFileSync(join(tree, 'd', 'sub', 'deep'), 'container');
      const racer = spawn('python3', ['-c', racerCode, tree, victim, RENAMEAT2], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise((r) => racer.stdout.once('data', r));
      try {
        try {
          removeTree(tree);
        } catch {
          // it may give up on a name that keeps changing (removed once the racer is gone, below)
        }
      } finally {
        racer.kill('SIGKILL');
        await new Promise((r) => racer.once('exit', r));
      }
      victimIntact(victim);
      removeTree(tree);
      mkdirSync(tree);
    }
  });
});
