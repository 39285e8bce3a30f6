// What the launcher tests share: the program their containers run, and a directory of their own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import type { PlanStep } from '../src/index.js';

/** Every container of these tests runs busybox (busybox-static: no libraries to bind in). */
export const BUSYBOX = '/bin/busybox';

/** The exec step of a container that runs `script` with busybox's sh. */
export const sh = (script: string): PlanStep => ({
  op: 'exec',
  path: BUSYBOX,
  argv: ['sh', '-c', script],
  env: ['PATH=/bin'],
});

/** A temporary directory for one test file, removed after it. */
export function testDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
