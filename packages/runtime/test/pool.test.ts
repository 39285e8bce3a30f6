// Library mode with prepared containers (issue #12): `prepare` makes a container up to its
// program's exec, `pool` keeps some ready in the background. Whatever the shortcut, nothing is
// left behind after close(): no state, no cgroup, no mount, no process, no launcher (root).
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';
import { libraryFixture } from './library-fixture.js';

const { dir, root, tag, bundle, leftovers, cleanup } = libraryFixture('berth-pool-');
afterAll(cleanup);

const stdio: ['ignore', 'ignore', 'inherit'] = ['ignore', 'ignore', 'inherit'];
const poolIds = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);

describe('the launcher through posix_spawn (the library default)', () => {
  it('exec into a running container: exit status, detach, then delete leaves nothing', async () => {
    const rt = new Runtime({ root });
    const id = `spawn-${tag}-exec`;
    await rt.create(id, bundle(['sleep', '60']), { stdio });
    await rt.start(id);
    const proc = { ...rt.configProcess(id), args: ['sh', '-c', 'exit 4'] };
    expect(await rt.exec(id, proc, { stdio })).toBe(4);
    expect(await rt.exec(id, { ...proc, args: ['sleep', '1'] }, { stdio, detach: true })).toBe(0);
    expect((await rt.state(id)).status).toBe('running');
    await rt.delete(id, { force: true });
    await rt.close();
    expect(leftovers([id])).toEqual([]);
  });
  it('the container starts with no signal ignored nor blocked, whichever way the launcher was spawned (as under runc)', async () => {
    // glibc's posix_spawn leaves its internal signals 32 and 33 ignored in the child: an ignored
    // signal stays ignored across execve, so the launcher puts every signal back to its default
    for (const spawn of ['posix_spawn', 'fork'] as const) {
      const rt = new Runtime({ root, spawn });
      const id = `spawn-${tag}-sig-${spawn}`;
      const outFile = join(dir, `sig-${tag}-${spawn}`);
      const out = openSync(outFile, 'w');
      try {
        const b = bundle(['busybox', 'grep', '-E', '^Sig(Ign|Blk):', '/proc/self/status']);
        expect(await rt.run(id, b, { stdio: ['ignore', out, 'inherit'] })).toBe(0);
      } finally {
        closeSync(out);
        await rt.close();
      }
      expect(readFileSync(outFile, 'utf8')).toBe('SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n');
      expect(leftovers([id])).toEqual([]);
    }
  });
});

describe('prepared containers', () => {
  it('the program runs only when run() is called; discard() and close() tear down the rest', async () => {
    const rt = new Runtime({ root });
    const outFile = join(dir, `out-${tag}`);
    const out = openSync(outFile, 'w');
    const ids = [`prep-${tag}-a`, `prep-${tag}-b`, `prep-${tag}-c`];
    try {
      const b = bundle(['sh', '-c', 'echo ran; exit 5']);
      const [a, bb, c] = await Promise.all(
        ids.map((id) => rt.prepare(id, b, { stdio: ['ignore', out, 'inherit'] })),
      );
      expect(a!.id).toBe(ids[0]);
      // made and waiting, but nothing has run yet
      expect((await rt.state(ids[0]!)).pid).toBeGreaterThan(0);
      expect(readFileSync(outFile, 'utf8')).toBe('');
      expect(await a!.run()).toBe(5);
      expect(readFileSync(outFile, 'utf8')).toBe('ran\n');
      await expect(a!.run()).rejects.toMatchObject({ code: 'ESTATE' });
      await bb!.discard();
      expect(leftovers([ids[1]!]).filter((l) => l.includes(ids[1]!))).toEqual([]);
      void c; // left for close()
      await rt.close();
    } finally {
      closeSync(out);
    }
    expect(readFileSync(outFile, 'utf8')).toBe('ran\n'); // neither the discarded nor the closed one ran
    expect(leftovers(ids)).toEqual([]);
  });

  it('a pool runs containers one at a time and four at a time, each under its own id; close() leaves nothing', async () => {
    const warnings: string[] = [];
    const rt = new Runtime({ root, warn: (m) => warnings.push(m) });
    const okPrefix = `pool-${tag}-ok-`;
    const threePrefix = `pool-${tag}-three-`;
    const ok = rt.pool(bundle(['true']), { size: 2, stdio, idPrefix: okPrefix });
    const three = rt.pool(bundle(['sh', '-c', 'exit 3']), { size: 1, stdio, idPrefix: threePrefix });
    for (let i = 0; i < 6; i++) expect(await (i % 2 ? three : ok).run()).toBe(i % 2 ? 3 : 0);
    const codes = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? three : ok).run()));
    expect(codes).toEqual([0, 3, 0, 3, 0, 3, 0, 3]);
    // prepared ones wait under the pool's ids only: no other id reaches them
    await expect(rt.state(`pool-${tag}-other`)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    for (const s of await rt.list())
      expect(s.id.startsWith(okPrefix) || s.id.startsWith(threePrefix)).toBe(true);
    await rt.close();
    await expect(ok.run()).rejects.toMatchObject({ code: 'ESTATE' });
    expect(leftovers([...poolIds(okPrefix, 20), ...poolIds(threePrefix, 20)])).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it("a pool of a bundle that cannot run reports the create's error and leaves nothing", async () => {
    const rt = new Runtime({ root });
    const prefix = `pool-${tag}-bad-`;
    const bad = rt.pool(bundle(['/no/such/program']), {
      size: 2,
      stdio: ['ignore', 'ignore', 'ignore'],
      idPrefix: prefix,
    });
    await expect(bad.run()).rejects.toThrow(/no\/such\/program|ENOENT/);
    await bad.close();
    await rt.close();
    expect(leftovers(poolIds(prefix, 10))).toEqual([]);
  });
});
