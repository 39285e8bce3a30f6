// Integration: @berth/runtime used as a library, as a Node program would embed it (root).
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec, formatSpec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-runtime-test-'));
const root = join(dir, 'run');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bundle(args: string[]): string {
  const b = mkdtempSync(join(dir, 'bundle-'));
  // a minimal root filesystem: the static busybox and the few applets used here
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(b, 'rootfs', d), { recursive: true });
  copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
  for (const applet of ['sh', 'sleep', 'echo']) symlinkSync('busybox', join(b, 'rootfs/bin', applet));
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return b;
}

const mounts = () =>
  readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.includes(dir));

describe('Runtime', () => {
  it('runs a container to completion and returns its status', async () => {
    const rt = new Runtime({ root });
    const out = join(dir, 'out.txt');
    const b = bundle(['sh', '-c', 'echo "pid $$" ; exit 6']);
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(out, 'w');
    try {
      expect(await rt.run('lib-run', b, { stdio: ['ignore', fd, 'inherit'] })).toBe(6);
    } finally {
      closeSync(fd);
    }
    expect(readFileSync(out, 'utf8')).toBe('pid 1\n');
    expect(await rt.list()).toEqual([]);
    expect(mounts()).toEqual([]);
  });

  it('goes through created, running and stopped', async () => {
    const warnings: string[] = [];
    const rt = new Runtime({ root, warn: (m) => warnings.push(m) });
    const b = bundle(['sleep', '60']);
    const created = await rt.create('lib-life', b, { stdio: ['ignore', 'ignore', 'ignore'] });
    expect(created.status).toBe('created');
    await rt.start('lib-life');
    expect((await rt.state('lib-life')).status).toBe('running');
    await rt.kill('lib-life', 9);
    for (let i = 0; i < 100 && (await rt.state('lib-life')).status !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect((await rt.state('lib-life')).status).toBe('stopped');
    await rt.delete('lib-life');
    await expect(rt.state('lib-life')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(mounts()).toEqual([]);
  });
});
