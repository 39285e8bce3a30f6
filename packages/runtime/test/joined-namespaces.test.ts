// Joining another container's namespace by its /proc/PID path (`berth run --network
// container:NAME`): the path is opened when the new container is made, maybe long after it was
// named (a pull in between). Should the other container exit and its pid go to another
// process, the new one would join a stranger's namespace (the host's, even). The namespace is
// named up front (Runtime.namespaceOf) and checked at the launcher's first sync
// (CreateOptions.joinedNamespaces): a mismatch is refused and leaves nothing.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatSpec, parseSpec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';
import { libraryFixture } from './library-fixture.js';

const { dir, root, tag, bundle, leftovers, cleanup } = libraryFixture('berth-joinns-');
afterAll(cleanup);

/** A bundle whose network namespace is the one at `path`. */
function joining(path: string, args: string[]): string {
  const b = bundle(args);
  const spec = parseSpec(readFileSync(join(b, 'config.json'), 'utf8'));
  spec.linux!.namespaces = spec.linux!.namespaces!.map((n) =>
    n.type === 'network' ? { type: 'network', path } : n,
  );
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return b;
}

describe('a namespace joined by its /proc path', () => {
  it('is the one named when the container is made; another (a reused pid) is refused and leaves nothing', async () => {
    const rt = new Runtime({ root });
    const first = `joinns-${tag}-a`;
    await rt.create(first, bundle(['sleep', '60']), { stdio: ['ignore', 'ignore', 'inherit'] });
    await rt.start(first);
    // a process of another network namespace, standing in for whatever took the pid
    const stranger = spawn('unshare', ['--net', '--', 'sleep', '60'], { stdio: 'ignore' });
    try {
      const pid = (await rt.state(first)).pid;
      const named = await rt.namespaceOf(first, 'network');
      expect(named).toBe(readlinkSync(`/proc/${pid}/ns/net`));
      expect(named).toMatch(/^net:\[\d+\]$/);

      // the same namespace: it runs, in it
      const out = join(dir, `joinns-${tag}.out`);
      const fd = openSync(out, 'w');
      try {
        const b = joining(`/proc/${pid}/ns/net`, ['busybox', 'readlink', '/proc/self/ns/net']);
        const ok = `joinns-${tag}-b`;
        expect(
          await rt.run(ok, b, { stdio: ['ignore', fd, 'inherit'], joinedNamespaces: { network: named } }),
        ).toBe(0);
      } finally {
        closeSync(fd);
      }
      expect(readFileSync(out, 'utf8').trim()).toBe(named);

      // another process's namespace where that one was expected: refused
      let strangerNs = '';
      for (let i = 0; i < 200 && !strangerNs.length; i++) {
        const link = readlinkSync(`/proc/${stranger.pid}/ns/net`);
        if (link !== readlinkSync('/proc/self/ns/net')) strangerNs = link;
        else await new Promise((r) => setTimeout(r, 10));
      }
      expect(strangerNs).not.toBe('');
      const refused = `joinns-${tag}-c`;
      await expect(
        rt.run(refused, joining(`/proc/${stranger.pid}/ns/net`, ['true']), {
          stdio: ['ignore', 'ignore', 'inherit'],
          joinedNamespaces: { network: named },
        }),
      ).rejects.toThrow(
        `linux.namespaces: the network namespace joined is ${strangerNs}, not ${named}: the container it belonged to has exited (its pid was reused)`,
      );
      expect((await rt.list()).map((c) => c.id)).toEqual([first]);

      // a container that has stopped has no namespace to name
      await rt.kill(first, 9);
      for (let i = 0; i < 200 && (await rt.state(first)).status !== 'stopped'; i++)
        await new Promise((r) => setTimeout(r, 10));
      await expect(rt.namespaceOf(first, 'network')).rejects.toThrow(
        `container ${first} is stopped: it has no namespaces to share`,
      );
      await rt.delete(first, { force: true });
      await rt.close();
      stranger.kill('SIGKILL');
      await new Promise((r) =>
        stranger.exitCode === null && stranger.signalCode === null ? stranger.once('exit', r) : r(0),
      );
      expect(leftovers([first, `joinns-${tag}-b`, refused])).toEqual([]);
    } finally {
      stranger.kill('SIGKILL');
      await rt.delete(first, { force: true }).catch(() => {});
    }
  });
});
