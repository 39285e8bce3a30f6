import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockFile, ProcessLock, writeFileAtomic } from './lock.js';

const base = mkdtempSync(join(tmpdir(), 'berth-lock-'));
chmodSync(base, 0o755); // reachable by the other user of the squatter test
afterAll(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(base, `d${n++}`);

describe('lockFile', () => {
  it("makes the directory this user's alone, and names a file per key, distinctly", () => {
    const dir = freshDir();
    const f = lockFile(dir, 'abc-1.2');
    expect(f).toBe(join(dir, 'abc-1.2'));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const keys = ['x'.repeat(300), `${'x'.repeat(300)}-1`, 'a/b', '..', 'é'];
    const names = keys.map((k) => lockFile(dir, k));
    expect(new Set(names).size).toBe(keys.length);
    for (const name of names)
      expect(name.startsWith(`${dir}/`) && !name.slice(dir.length + 1).includes('/')).toBe(true);
    expect(lockFile(dir, keys[1] as string)).toBe(names[1]); // stable
  });

  it('refuses a directory others can write, and a lock file that is not a regular file of ours', async () => {
    const dir = freshDir();
    lockFile(dir, 'x');
    chmodSync(dir, 0o777);
    expect(() => lockFile(dir, 'x')).toThrow(/refusing lock directory .*nobody else can write.*mode 777/);
    chmodSync(dir, 0o700);
    const fifo = join(dir, 'fifo');
    spawnSync('mkfifo', [fifo]);
    await expect(ProcessLock.acquire(fifo, { timeoutMs: 10 })).rejects.toThrow(/refusing lock file/);
  });
});

describe('ProcessLock', () => {
  it('is held by one at a time and free again after release', async () => {
    const file = lockFile(freshDir(), 'one');
    const a = await ProcessLock.acquire(file);
    expect(await ProcessLock.isHeld(file)).toBe(true);
    expect(await ProcessLock.tryAcquire(file)).toBeUndefined();
    await expect(ProcessLock.acquire(file, { timeoutMs: 30, what: 'the thing' })).rejects.toMatchObject({
      code: 'ELOCKED',
      message: expect.stringContaining('the thing is locked by another berth command'),
    });
    a.release();
    a.release(); // twice is harmless
    expect(await ProcessLock.isHeld(file)).toBe(false);
    expect(await ProcessLock.isHeld(join(base, 'no-such-lock'))).toBe(false);
  });

  it('removed by its holder at release, it is taken on a new file by the waiter, never on the old one', async () => {
    const file = lockFile(freshDir(), 'gone');
    const a = await ProcessLock.acquire(file);
    const waiters = Promise.all([ProcessLock.acquire(file), ProcessLock.acquire(file)]);
    await new Promise((r) => setTimeout(r, 20));
    a.release({ remove: true });
    // both waiters had the old file open: one gets the new file, the other waits for it
    const [first] = await Promise.race([
      waiters,
      new Promise<ProcessLock[]>((r) => setTimeout(() => r([]), 300)),
    ]);
    expect(first).toBeUndefined(); // not both at once
    // the one that got it holds the file that is there now
    expect(existsSync(file)).toBe(true);
    expect(await ProcessLock.isHeld(file)).toBe(true);
    expect(await ProcessLock.tryAcquire(file)).toBeUndefined();
  });
});

describe('ProcessLock between processes', () => {
  it('excludes a holder in another process (flock(2) on the same file) and is free once the kernel closed it at its death', async () => {
    const file = lockFile(freshDir(), 'other');
    const holder = `import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print('held', flush=True)
time.sleep(100)`;
    const child = spawn('python3', ['-c', holder, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`holder exited: ${code}`)));
    });
    expect(await ProcessLock.tryAcquire(file)).toBeUndefined();
    expect(await ProcessLock.isHeld(file)).toBe(true);
    const waiting = ProcessLock.acquire(file, { timeoutMs: 10_000 });
    child.kill('SIGKILL');
    const lock = await waiting;
    expect(await ProcessLock.tryAcquire(file)).toBeUndefined();
    lock.release();
    expect(await ProcessLock.isHeld(file)).toBe(false);
  });

  it('cannot be taken first by another user: the lock directory is closed to them', async () => {
    if (process.geteuid?.() !== 0) throw new Error('this test needs root (it runs the squatter as nobody)');
    const file = lockFile(freshDir(), 'squat');
    // nobody tries to hold the lock before berth does (as a squatter on an abstract socket name could)
    const r = spawnSync(
      'setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        'sh',
        '-c',
        `flock -n -x '${file}' true && echo took`,
      ],
      {
        encoding: 'utf8',
      },
    );
    expect(r.stdout).not.toContain('took');
    expect(r.stderr).toMatch(/Permission denied/);
    const lock = await ProcessLock.acquire(file, { timeoutMs: 100 });
    lock.release();
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole and leaves no temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-atomic-'));
    try {
      const f = join(dir, 'state.json');
      writeFileAtomic(f, 'one');
      writeFileAtomic(f, Buffer.from('two'), 0o600);
      expect(readFileSync(f, 'utf8')).toBe('two');
      expect(readdirSync(dir)).toEqual(['state.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
