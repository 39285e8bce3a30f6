// Library mode (issue #12): `run` returns the exit status as soon as the container's process has
// exited and its teardown goes on in the background; close() waits for every teardown. Whatever
// the shortcut, nothing is left behind: no state, no cgroup, no mount, no process (root).
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCgroupMounts } from '@berth/cgroups';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';
import { libraryFixture } from './library-fixture.js';

const { root, tag, bundle, leftovers, cleanup } = libraryFixture('berth-library-mode-');
afterAll(cleanup);

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

  it('a limit the kernel refuses (applied while the launcher starts) fails the run and leaves nothing', async () => {
    // the cgroup is made and its limits written after the launcher was spawned (it overlaps the
    // launcher's start): a refusal there must still take the launcher and the container down
    const rt = new Runtime({ root });
    const id = `lib-${tag}-cpuset`;
    const b = bundle(['true']);
    const config = join(b, 'config.json');
    const spec = JSON.parse(readFileSync(config, 'utf8'));
    spec.linux.resources = { ...spec.linux.resources, cpu: { cpus: '4095' } }; // no such CPU
    writeFileSync(config, JSON.stringify(spec));
    await expect(rt.run(id, b, { stdio: ['ignore', 'ignore', 'ignore'] })).rejects.toThrow(/cpuset\.cpus/);
    await rt.close();
    expect(leftovers([id])).toEqual([]);
  });

  it('a failed create leaves a cgroup that existed before it where it was', async () => {
    // berth's rule: a cgroup it did not create is never emptied nor removed, a failed create included
    const rt = new Runtime({ root });
    const id = `lib-${tag}-shared`;
    const { v1, unified } = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
    const dirs = [...new Set([...Object.values(v1), ...(unified ? [unified] : [])])].map((m) =>
      join(m, 'berth', id),
    );
    for (const d of dirs) mkdirSync(d, { recursive: true });
    try {
      const b = bundle(['true']);
      const config = join(b, 'config.json');
      const spec = JSON.parse(readFileSync(config, 'utf8'));
      spec.linux.resources = { ...spec.linux.resources, cpu: { cpus: '4095' } }; // no such CPU
      writeFileSync(config, JSON.stringify(spec));
      await expect(rt.run(id, b, { stdio: ['ignore', 'ignore', 'ignore'] })).rejects.toThrow();
      await rt.close();
      expect(dirs.filter((d) => !existsSync(d))).toEqual([]);
    } finally {
      for (const d of dirs) rmdirSync(d);
    }
    expect(leftovers([id])).toEqual([]);
  });

  it("a finished run's teardown goes on without close(): during the next container's start, or soon on its own", async () => {
    const rt = new Runtime({ root });
    const b = bundle(['true']);
    const stdio: ['ignore', 'ignore', 'inherit'] = ['ignore', 'ignore', 'inherit'];
    const [first, second] = [`lib-${tag}-td-1`, `lib-${tag}-td-2`];
    expect(await rt.run(first, b, { stdio })).toBe(0);
    expect(await rt.run(second, b, { stdio })).toBe(0);
    // the first was torn down while the second made its mounts; the second with nothing after it
    const deadline = Date.now() + 3000;
    while (leftovers([first, second]).length > 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    expect(leftovers([first, second])).toEqual([]);
    await rt.close();
  });

  it("a process left in the container's cgroup (no pid namespace of its own) is killed, and the cgroup removed", async () => {
    const rt = new Runtime({ root });
    const id = `lib-${tag}-stray`;
    const b = bundle(['sh', '-c', 'sleep 30 & exit 0']);
    const config = join(b, 'config.json');
    const spec = JSON.parse(readFileSync(config, 'utf8'));
    spec.linux.namespaces = spec.linux.namespaces.filter((n: { type: string }) => n.type !== 'pid');
    writeFileSync(config, JSON.stringify(spec));
    expect(await rt.run(id, b, { stdio: ['ignore', 'ignore', 'ignore'] })).toBe(0);
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
