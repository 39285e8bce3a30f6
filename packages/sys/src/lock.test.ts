import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
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
