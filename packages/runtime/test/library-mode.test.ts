// Library mode (issue #12): `run` returns the exit status as soon as the container's process has
// exited and its teardown goes on in the background; close() waits for every teardown. Whatever
// the shortcut, nothing is left behind: no state, no cgroup, no mount, no process (root).
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCgroupMounts } from '@berth/cgroups';
import { defaultSpec, formatSpec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-library-mode-'));
const root = join(dir, 'run');
const tag = randomBytes(3).toString('hex');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bundle(args: string[]): string {
  const b = mkdtempSync(join(dir, 'bundle-'));
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(b, 'rootfs', d), { recursive: true });
  copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
  for (const applet of ['sh', 'true', 'sleep']) symlinkSync('busybox', join(b, 'rootfs/bin', applet));
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = args;
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return b;
}

/** Every cgroup directory a container `id` could have: one per hierarchy of this host (v1, v2 or hybrid). */
function cgroupDirs(id: string): string[] {
  const { v1, unified } = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  const mounts = [...new Set([...Object.values(v1), ...(unified ? [unified] : [])])];
  return mounts.map((m) => join(m, 'berth', id));
}

/** What of ours could be left: state directories, cgroups, mounts, processes (children, or rooted in `dir`). */
function leftovers(ids: string[]): string[] {
  const left: string[] = [];
  if (existsSync(root)) for (const d of readdirSync(root)) left.push(`state ${d}`);
  for (const id of ids) for (const c of cgroupDirs(id)) if (existsSync(c)) left.push(`cgroup ${c}`);
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n'))
    if (l.includes(dir)) left.push(`mount ${l}`);
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const rootDir = readlinkSync(`/proc/${p}/root`);
      if (ppid === process.pid || rootDir.startsWith(dir)) left.push(`process ${p}: ${stat.slice(0, 60)}`);
    } catch {
      // exited meanwhile
    }
  }
  return left;
}

describe('library mode', () => {
  it('runs containers one after another and four at a time; close() leaves nothing behind', async () => {
    const warnings: string[] = [];
    const rt = new Runtime({ root, warn: (m) => warnings.push(m) });
    const ok = bundle(['true']);
    const three = bundle(['sh', '-c', 'exit 3']);
    const ids: string[] = [];
    const stdio: ['ignore', 'ignore', 'inherit'] = ['ignore', 'ignore', 'inherit'];
    for (let i = 0; i < 6; i++) {
      const id = `lib-${tag}-seq-${i}`;
      ids.push(id);
      expect(await rt.run(id, i % 2 ? three : ok, { stdio })).toBe(i % 2 ? 3 : 0);
    }
    for (let round = 0; round < 2; round++) {
      const batch = Array.from({ length: 4 }, (_, i) => `lib-${tag}-par-${round}-${i}`);
      ids.push(...batch);
      const codes = await Promise.all(batch.map((id, i) => rt.run(id, i % 2 ? three : ok, { stdio })));
      expect(codes).toEqual([0, 3, 0, 3]);
    }
    await rt.close();
    expect(leftovers(ids)).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('a container id is free again as soon as run returns (its teardown is awaited first)', async () => {
    const rt = new Runtime({ root });
    const b = bundle(['true']);
    const id = `lib-${tag}-again`;
    const stdio: ['ignore', 'ignore', 'inherit'] = ['ignore', 'ignore', 'inherit'];
    for (let i = 0; i < 3; i++) expect(await rt.run(id, b, { stdio })).toBe(0);
    // what the Runtime reports never shows a container that run has finished with
    await expect(rt.state(id)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await rt.list()).toEqual([]);
    await rt.close();
    expect(leftovers([id])).toEqual([]);
  });

  it('a run that fails has torn down before its error is thrown, without close()', async () => {
    const rt = new Runtime({ root });
    const id = `lib-${tag}-fails`;
    await expect(
      rt.run(id, bundle(['/no/such/program']), { stdio: ['ignore', 'ignore', 'ignore'] }),
    ).rejects.toThrow(/no\/such\/program|ENOENT/);
    expect(leftovers([id])).toEqual([]);
  });
});
