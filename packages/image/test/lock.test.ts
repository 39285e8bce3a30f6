// The layer download lock: one holder at a time, never taken from a live holder,
// released by the kernel when a holder is killed (real processes).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lockOwnerAlive, withFileLock } from '../src/lock.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-image-lock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('withFileLock', () => {
  it('lets one holder in at a time, however many wait', async () => {
    const path = join(dir, 'a.lock');
    let inside = 0;
    let most = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        withFileLock(path, async () => {
          inside++;
          most = Math.max(most, inside);
          expect(await lockOwnerAlive(path)).toBe(true);
          await new Promise((r) => setTimeout(r, 2));
          order.push(i);
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    expect(order).toHaveLength(25);
    expect(await lockOwnerAlive(path)).toBe(false);
  });

  it("a holder's error releases the lock, and only its own", async () => {
    const path = join(dir, 'b.lock');
    await expect(
      withFileLock(path, async () => {
        throw new Error('pull failed');
      }),
    ).rejects.toThrow('pull failed');
    expect(await lockOwnerAlive(path)).toBe(false);
    // nothing is left on disk for a waiter to misread
    expect(existsSync(path)).toBe(false);
  });

  it('waits for a holder in another process and takes the lock once that one is killed', async () => {
    const path = join(dir, 'c.lock');
    // another process holds the lock the way a pull does, then hangs
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { ProcessLock } from '@berth/sys';
         import { resolve } from 'node:path';
         await ProcessLock.acquire(resolve(${JSON.stringify(path)}));
         process.stdout.write('held\\n');
         setInterval(() => {}, 1000);`,
      ],
      { cwd: join(import.meta.dirname, '..'), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    expect(await lockOwnerAlive(path)).toBe(true);
    let got = false;
    const waiting = withFileLock(path, async () => {
      got = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(got).toBe(false); // a live holder's lock is never taken over
    child.kill('SIGKILL');
    await waiting;
    expect(got).toBe(true);
  });

  it('stops waiting when aborted', async () => {
    const path = join(dir, 'd.lock');
    const ac = new AbortController();
    await withFileLock(path, async () => {
      const waiter = withFileLock(path, async () => undefined, ac.signal);
      setTimeout(() => ac.abort(), 50);
      await expect(waiter).rejects.toThrow(/abort/i);
    });
  });
});
