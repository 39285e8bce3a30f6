// runtime.md: the state and the operations (create, start, state, kill, delete), errors.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, expect } from 'vitest';
import { host, req, Suite } from '../src/harness.js';

const s = new Suite();
afterAll(() => s.cleanup());
afterEach(async () => {
  // nothing of a test's containers is left: state, mounts
  expect(await s.settle()).toEqual({ states: [], mounts: [], cgroups: [] });
});

const waiting = () => s.bundle((c) => (c.process.args = ['/checker', 'wait']));

req(
  'R-STATE-1',
  'state prints the state: ociVersion, id, status, pid, absolute bundle, annotations',
  async () => {
    const b = s.bundle((c) => {
      c.annotations = { 'org.example.conformance': 'yes' };
    });
    const id = s.id();
    expect((await s.createLogged(id, b)).status).toBe(0);
    const state = (await s.state(id))!;
    expect(state.ociVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(state.id).toBe(id);
    expect(state.status).toBe('created');
    expect(state.pid).toBeGreaterThan(0);
    expect(state.bundle).toBe(b);
    expect(state.bundle.startsWith('/')).toBe(true);
    expect(state.annotations).toEqual({ 'org.example.conformance': 'yes' });
    await s.delete(id, true);
  },
);

req('R-STATE-2', 'state of a container that does not exist is an error', async () => {
  const r = await s.runtime(['state', s.id('nosuch')]);
  expect(r.status).not.toBe(0);
  expect(r.stderr).not.toBe('');
});

req('R-STATE-3', 'state without an id is an error', async () => {
  const r = await s.runtime(['state']);
  expect(r.status).not.toBe(0);
});

req('R-STATE-4', 'status goes created, running, stopped; pid is the container process', async () => {
  const b = waiting();
  const id = s.id();
  expect((await s.createLogged(id, b)).status).toBe(0);
  const created = (await s.state(id))!;
  expect(created.status).toBe('created');
  expect((await s.runtime(['start', id])).status).toBe(0);
  const running = await s.waitFor(id, 'running');
  expect(running.pid).toBe(created.pid);
  await waitForLine(id, (l) => l.ready === 1);
  expect((await s.runtime(['kill', id, 'KILL'])).status).toBe(0);
  await s.waitFor(id, 'stopped');
  expect((await s.delete(id)).status).toBe(0);
});

req('R-CREATE-1', 'create without a container id is an error', async () => {
  const b = s.bundle();
  const r = await s.runtime(['create', '--bundle', b]);
  expect(r.status).not.toBe(0);
  expect(s.states()).toEqual([]);
});

req(
  'R-CREATE-2',
  'create with an id already in use is an error and leaves the first container as it was',
  async () => {
    const b = waiting();
    const id = s.id();
    expect((await s.createLogged(id, b)).status).toBe(0);
    const before = (await s.state(id))!;
    const again = await s.runtime(['create', '--bundle', s.bundle(), id]);
    expect(again.status).not.toBe(0);
    const after = (await s.state(id))!;
    expect(after.status).toBe('created');
    expect(after.pid).toBe(before.pid);
    expect(after.bundle).toBe(b);
    await s.delete(id, true);
  },
);

req('R-CREATE-3', 'create applies the config but does not run process.args until start', async () => {
  const b = s.bundle();
  const id = s.id();
  expect((await s.createLogged(id, b)).status).toBe(0);
  await new Promise((r) => setTimeout(r, 300));
  expect(s.output(id)).toEqual([]);
  const state = (await s.state(id))!;
  // the namespaces exist already: the process is in its own uts namespace
  expect(readFileSync(`/proc/${state.pid}/status`, 'utf8')).toBeTruthy();
  expect(await nsOf(state.pid, 'uts')).not.toBe(host.ns('uts'));
  expect((await s.runtime(['start', id])).status).toBe(0);
  await s.waitFor(id, 'stopped');
  expect(s.output(id)[0]?.argv).toEqual(['/checker', 'report']);
  await s.delete(id);
});

req('R-CREATE-4', 'changes to config.json after create do not affect the container', async () => {
  const b = s.bundle();
  const id = s.id();
  expect((await s.createLogged(id, b)).status).toBe(0);
  const config = s.config(b);
  config.process.env = ['CHANGED=1'];
  config.process.args = ['/checker', 'exit', '3'];
  writeFileSync(join(b, 'config.json'), JSON.stringify(config));
  expect((await s.runtime(['start', id])).status).toBe(0);
  await s.waitFor(id, 'stopped');
  const report = s.output(id)[0]!;
  expect(report.argv).toEqual(['/checker', 'report']);
  expect(report.env).not.toContain('CHANGED=1');
  await s.delete(id);
});

req('R-CREATE-5', 'a property the runtime cannot apply is an error and no container is created', async () => {
  const b = s.bundle((c) => {
    // a namespace to join that does not exist
    c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) =>
      n.type === 'ipc' ? { type: 'ipc', path: '/nonexistent/conformance/ipc' } : n,
    );
  });
  const id = s.id();
  const r = await s.createLogged(id, b);
  expect(r.status).not.toBe(0);
  expect(await s.state(id)).toBeUndefined();
  expect(s.states()).toEqual([]);
});

req(
  'R-ERR-1',
  'a failed create leaves the host as if it had not been tried: no state, cgroup or mount',
  async () => {
    let cgroupsPath = '';
    const b = s.bundle((c) => {
      cgroupsPath = c.linux.cgroupsPath;
      // fails late: after namespaces, cgroups and mounts are made
      c.mounts.push({
        destination: '/data',
        type: 'bind',
        source: '/nonexistent-conformance-source',
        options: ['bind'],
      });
    });
    const id = s.id();
    const r = await s.createLogged(id, b);
    expect(r.status).not.toBe(0);
    expect(await s.state(id)).toBeUndefined();
    expect(s.states()).toEqual([]);
    expect(host.cgroupDirs(cgroupsPath)).toEqual([]);
    expect(s.mounts()).toEqual([]);
  },
);

req('R-START-1', 'start runs the user-specified program', async () => {
  const { report } = await s.run(s.bundle());
  expect(report.argv).toEqual(['/checker', 'report']);
});

req('R-START-2', 'start of a container that is not created is an error and has no effect', async () => {
  const b = waiting();
  const id = s.id();
  expect((await s.createLogged(id, b)).status).toBe(0);
  expect((await s.runtime(['start', id])).status).toBe(0);
  await waitForLine(id, (l) => l.ready === 1);
  const again = await s.runtime(['start', id]);
  expect(again.status).not.toBe(0);
  expect((await s.state(id))?.status).toBe('running');
  expect(s.output(id).filter((l) => l.ready === 1)).toHaveLength(1);
  expect((await s.runtime(['kill', id, 'KILL'])).status).toBe(0);
  await s.waitFor(id, 'stopped');
  const stopped = await s.runtime(['start', id]);
  expect(stopped.status).not.toBe(0);
  expect((await s.state(id))?.status).toBe('stopped');
  await s.delete(id);
});

req('R-START-3', 'start without a container id is an error', async () => {
  expect((await s.runtime(['start'])).status).not.toBe(0);
});

req('R-START-4', 'start generates an error if process is not set', async () => {
  const b = s.bundle((c) => {
    delete c.process;
  });
  const id = s.id();
  const created = await s.createLogged(id, b);
  if (created.status === 0) {
    const r = await s.runtime(['start', id]);
    expect(r.status).not.toBe(0);
    await s.delete(id, true);
  } else {
    // refusing at create is the earlier form of the same error
    expect(created.stderr).toMatch(/process/i);
  }
});

req('R-KILL-1', 'kill sends the given signal to the container process', async () => {
  const b = waiting();
  const id = s.id();
  expect((await s.createLogged(id, b)).status).toBe(0);
  expect((await s.runtime(['start', id])).status).toBe(0);
  await waitForLine(id, (l) => l.ready === 1);
  expect((await s.runtime(['kill', id, 'USR1'])).status).toBe(0);
  await s.waitFor(id, 'stopped');
  expect(s.output(id).find((l) => l.signal)?.signal).toBe(10);
  // numbers and SIG names are signals too
  await s.delete(id);
});

req('R-KILL-2', 'kill of a stopped container is an error and has no effect', async () => {
  const b = s.bundle((c) => (c.process.args = ['/checker', 'exit', '0']));
  const id = s.id();
  expect((await s.createLogged(id, b)).status).toBe(0);
  expect((await s.runtime(['start', id])).status).toBe(0);
  await s.waitFor(id, 'stopped');
  const r = await s.runtime(['kill', id, 'TERM']);
  expect(r.status).not.toBe(0);
  expect((await s.state(id))?.status).toBe('stopped');
  await s.delete(id);
});

req('R-KILL-3', 'kill without a container id is an error', async () => {
  expect((await s.runtime(['kill'])).status).not.toBe(0);
});

req(
  'R-KILL-4',
  'kill of a created container signals its process (created is a state kill accepts)',
  async () => {
    const b = waiting();
    const id = s.id();
    expect((await s.createLogged(id, b)).status).toBe(0);
    expect((await s.runtime(['kill', id, 'KILL'])).status).toBe(0);
    await s.waitFor(id, 'stopped');
    expect(s.output(id)).toEqual([]);
    await s.delete(id);
  },
);

req('R-DELETE-1', 'delete of a running container is an error and has no effect', async () => {
  const b = waiting();
  const id = s.id();
  expect((await s.createLogged(id, b)).status).toBe(0);
  expect((await s.runtime(['start', id])).status).toBe(0);
  await waitForLine(id, (l) => l.ready === 1);
  const r = await s.delete(id);
  expect(r.status).not.toBe(0);
  const state = (await s.state(id))!;
  expect(state.status).toBe('running');
  expect(existsSync(`/proc/${state.pid}`)).toBe(true);
  await s.runtime(['kill', id, 'KILL']);
  await s.waitFor(id, 'stopped');
  await s.delete(id);
});

req('R-DELETE-2', 'delete removes what create made: state, cgroups, mounts', async () => {
  let cgroupsPath = '';
  const b = s.bundle((c) => {
    cgroupsPath = c.linux.cgroupsPath;
    c.linux.resources.pids = { limit: 64 };
  });
  const { id } = await s.run(b, { keep: true });
  expect(host.cgroupDirs(cgroupsPath).length).toBeGreaterThan(0);
  const deleted = await s.delete(id);
  expect(deleted.status, deleted.stderr).toBe(0);
  expect(await s.state(id)).toBeUndefined();
  expect(host.cgroupDirs(cgroupsPath)).toEqual([]);
  expect(s.states()).toEqual([]);
});

req(
  'R-DELETE-3',
  'delete keeps what the container did not create: a joined namespace, a bind source',
  async () => {
    const nsFile = join(s.dir, `netns-${s.id('ns')}`);
    writeFileSync(nsFile, '');
    const made = await import('node:child_process').then((cp) =>
      cp.spawnSync('unshare', [`--net=${nsFile}`, 'true'], { encoding: 'utf8' }),
    );
    expect(made.status, made.stderr).toBe(0);
    const src = join(s.dir, `src-${s.id('src')}`);
    const { mkdirSync } = await import('node:fs');
    mkdirSync(src);
    writeFileSync(join(src, 'keep'), 'kept');
    try {
      const b = s.bundle((c) => {
        c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) =>
          n.type === 'network' ? { type: 'network', path: nsFile } : n,
        );
        c.mounts.push({ destination: '/data', type: 'bind', source: src, options: ['rbind'] });
      });
      const { report } = await s.run(b);
      expect(report.ns.net).toBe(await nsOfPath(nsFile));
      expect(readFileSync(join(src, 'keep'), 'utf8')).toBe('kept');
      expect(await nsOfPath(nsFile)).toBe(report.ns.net);
    } finally {
      (await import('node:child_process')).spawnSync('umount', [nsFile]);
    }
  },
);

req('R-DELETE-4', 'delete without a container id is an error', async () => {
  expect((await s.runtime(['delete'])).status).not.toBe(0);
});

async function waitForLine(
  id: string,
  pred: (l: Record<string, unknown>) => boolean,
  ms = 10_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!s.output(id).some(pred)) {
    if (Date.now() > end)
      throw new Error(`container ${id} printed no such line: ${JSON.stringify(s.output(id))}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

async function nsOf(pid: number, type: string): Promise<string> {
  const { readlinkSync } = await import('node:fs');
  return readlinkSync(`/proc/${pid}/ns/${type}`);
}

async function nsOfPath(file: string): Promise<string> {
  const { statSync } = await import('node:fs');
  return `net:[${statSync(file).ino}]`;
}
