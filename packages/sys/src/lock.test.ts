import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';
import { describe, expect, it, vi } from 'vitest';
import { lockName, ProcessLock, writeFileAtomic } from './lock.js';

describe('lockName', () => {
  it('keeps short keys readable and fits every key in sun_path (108 bytes), distinctly', () => {
    expect(lockName('abc/id')).toBe('\0berth/abc/id');
    const keys = ['x'.repeat(100), `${'x'.repeat(100)}-1`, `${'x'.repeat(100)}-2`, 'é'.repeat(300)];
    const names = keys.map(lockName);
    for (const n of names) expect(Buffer.byteLength(n)).toBeLessThanOrEqual(108);
    expect(new Set(names).size).toBe(keys.length);
    expect(lockName(keys[1] as string)).toBe(names[1]); // stable
  });
});

describe('ProcessLock', () => {
  it('is held by one at a time and free again after release', async () => {
    const key = `test/${process.pid}/${'k'.repeat(150)}`;
    const a = await ProcessLock.acquire(key);
    expect(await ProcessLock.isHeld(key)).toBe(true);
    expect(await ProcessLock.tryAcquire(key)).toBeUndefined();
    await expect(ProcessLock.acquire(key, { timeoutMs: 30, what: 'the thing' })).rejects.toMatchObject({
      code: 'ELOCKED',
      message: expect.stringContaining('the thing is locked by another berth command'),
    });
    a.release();
    a.release(); // twice is harmless
    expect(await ProcessLock.isHeld(key)).toBe(false);
  });
});

describe('ProcessLock between processes', () => {
  it('excludes a holder in another process that binds with node:net (as berth 0.1 does), and is free once the kernel has closed it at its death', async () => {
    const key = `test/${process.pid}/other`;
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('net').createServer().listen(${JSON.stringify(lockName(key))}, () => process.stdout.write('held\\n')); setInterval(() => {}, 1000)`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`holder exited: ${code}`)));
      });
      expect(await ProcessLock.tryAcquire(key)).toBeUndefined();
      const waiting = ProcessLock.acquire(key, { timeoutMs: 10_000 });
      child.kill('SIGKILL');
      const lock = await waiting; // taken once the holder is gone, with nothing left to clean up
      expect(await ProcessLock.tryAcquire(key)).toBeUndefined();
      lock.release();
      expect(await ProcessLock.isHeld(key)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('is seen as held by a process that binds the name with node:net', async () => {
    const key = `test/${process.pid}/mine`;
    const lock = await ProcessLock.acquire(key);
    try {
      const out = execFileSync(
        process.execPath,
        [
          '-e',
          `const s = require('net').createServer(); s.on('error', (e) => { console.log(e.code); process.exit(0) }); s.listen(${JSON.stringify(lockName(key))}, () => { console.log('bound'); process.exit(0) })`,
        ],
        { encoding: 'utf8' },
      );
      expect(out.trim()).toBe('EADDRINUSE');
    } finally {
      lock.release();
    }
  });
});

describe('ProcessLock under a name of the caller’s', () => {
  it('binds exactly that abstract name, and refuses one that is not abstract', async () => {
    const name = `\0berth-test-named/${process.pid}`;
    const lock = await ProcessLock.acquire('some key', { name });
    try {
      const out = execFileSync(
        process.execPath,
        [
          '-e',
          `const s = require('net').createServer(); s.on('error', (e) => { console.log(e.code); process.exit(0) }); s.listen(${JSON.stringify(name)}, () => { console.log('bound'); process.exit(0) })`,
        ],
        { encoding: 'utf8' },
      );
      expect(out.trim()).toBe('EADDRINUSE');
      // the key's own name is another lock
      expect(await ProcessLock.isHeld('some key')).toBe(false);
    } finally {
      lock.release();
    }
    await expect(ProcessLock.acquire('k', { name: '/tmp/not-abstract' })).rejects.toMatchObject({
      code: 'EINVAL',
    });
  });
});

describe('ProcessLock with pending deprecations on', () => {
  it('neither warns nor throws (DEP0111): the lock is a net.Server there', () => {
    const { outputFiles } = buildSync({
      entryPoints: [fileURLToPath(new URL('./lock.ts', import.meta.url))],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      write: false,
    });
    const script = `${outputFiles[0]?.text}
      module.exports.ProcessLock.acquire('test/${process.pid}/pending').then((l) => {
        setTimeout(() => { l.release(); console.log('released'); }, 20);
      });`;
    for (const [args, env] of [
      [['--pending-deprecation', '--throw-deprecation'], {}],
      [['--throw-deprecation'], { NODE_PENDING_DEPRECATION: '1' }],
    ] as const) {
      const r = spawnSync(process.execPath, [...args, '-e', script], {
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('released');
      expect(r.status).toBe(0);
    }
  });
});

describe('ProcessLock on a Node without process.binding', () => {
  it('falls back to a listening node:net server, which excludes the same way', async () => {
    const binding = Object.getOwnPropertyDescriptor(process, 'binding');
    vi.resetModules();
    Object.defineProperty(process, 'binding', { value: undefined, configurable: true, writable: true });
    let fresh: typeof import('./lock.js');
    try {
      fresh = await import('./lock.js');
      const key = `test/${process.pid}/fallback`;
      const a = await fresh.ProcessLock.acquire(key);
      Object.defineProperty(process, 'binding', binding as PropertyDescriptor);
      // this module's other instance binds through pipe_wrap: both see one lock
      expect(await ProcessLock.tryAcquire(key)).toBeUndefined();
      a.release();
      const b = await ProcessLock.acquire(key, { timeoutMs: 1000 });
      expect(await fresh.ProcessLock.tryAcquire(key)).toBeUndefined();
      b.release();
    } finally {
      Object.defineProperty(process, 'binding', binding as PropertyDescriptor);
      vi.resetModules();
    }
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
