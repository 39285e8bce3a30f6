// Integration: a real process in new namespaces, inspected through /proc.
import { CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUTS, launch } from '@berth/sys';
import { describe, expect, it } from 'vitest';
import { isolatedKinds, namespaceOf, namespacePath, namespacesOf, planNamespaces } from '../src/index.js';

describe('namespace inspection', () => {
  it('reads the namespaces of this process', async () => {
    const ns = await namespacesOf('self');
    expect(ns.pid).toBeGreaterThan(0);
    expect(ns.network).toBe((await namespaceOf('self', 'network')).inode);
  });

  it('sees exactly the namespaces a launched process was given, and can join them', async () => {
    const plan = planNamespaces([{ type: 'network' }, { type: 'uts' }, { type: 'ipc' }]);
    expect(plan.cloneFlags).toBe(CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC);
    const l = launch(
      [
        { op: 'clone', flags: plan.cloneFlags, detach: false },
        { op: 'sethostname', name: 'ns-owner' },
        { op: 'sync', id: 1 },
        { op: 'exec', path: '/bin/busybox', argv: ['sleep', '30'], env: [] },
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    const { pid } = await l.expect('pid');
    await l.expect('sync');
    try {
      expect((await isolatedKinds(pid)).sort()).toEqual(['ipc', 'network', 'uts']);
      // a second process joins the first one's uts namespace by path and sees its hostname
      const join = planNamespaces([{ type: 'uts', path: namespacePath(pid, 'uts') }]);
      const j = launch(
        [
          ...join.steps,
          { op: 'clone', flags: join.cloneFlags, detach: false },
          { op: 'exec', path: '/bin/busybox', argv: ['hostname'], env: [] },
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      j.process.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      expect(await j.exited).toBe(0);
      expect(out.trim()).toBe('ns-owner');
    } finally {
      process.kill(pid, 'SIGKILL');
      l.release();
      expect(await l.exited).toBe(137);
    }
  });
});
