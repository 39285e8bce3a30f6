// config.md hooks and runtime.md lifecycle steps 3–13: which hooks run when,
// in which namespaces, with the state on stdin, and what a failing hook does.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { CHECKER, type Config, host, type Report, req, Suite } from '../src/harness.js';

const s = new Suite();
afterAll(() => s.cleanup());
afterEach(async () => {
  expect(await s.settle()).toEqual({ states: [], mounts: [], cgroups: [] });
});

const HOOKS = [
  'prestart',
  'createRuntime',
  'createContainer',
  'startContainer',
  'poststart',
  'poststop',
] as const;

/** A hook that runs the checker and appends what it saw to `file` (a path where the hook runs). */
function hook(name: string, file: string, path = CHECKER, extra: string[] = []) {
  return { path, args: ['checker', 'hook', file, name, ...extra] };
}

interface Lifecycle {
  id: string;
  pid: number;
  container: Report;
  /** hook lines, in the order they ran, with the step they were seen after */
  lines: (Report & { step: string })[];
}

let shared: Promise<Lifecycle> | undefined;

/** One container through create, start and delete, with every kind of hook recording itself. */
function lifecycle(): Promise<Lifecycle> {
  shared ??= (async () => {
    const outDir = join(s.dir, `hooks-${s.id('h')}`);
    mkdirSync(outDir);
    const hostFile = join(outDir, 'host.jsonl');
    const b = s.bundle((c: Config) => {
      // startContainer runs after pivot_root: its file is reached through a bind mount at /hooks
      c.mounts.push({ destination: '/hooks', type: 'bind', source: outDir, options: ['rbind'] });
      c.hooks = {
        prestart: [hook('prestart', hostFile)],
        createRuntime: [hook('createRuntime', hostFile)],
        createContainer: [hook('createContainer', hostFile)],
        // path resolves in the container: /checker is the rootfs's, there is none on the host
        startContainer: [hook('startContainer', '/hooks/host.jsonl', '/checker')],
        poststart: [hook('poststart', hostFile)],
        poststop: [hook('poststop', hostFile)],
      };
      c.process.args = ['/checker', 'wait'];
    });
    const id = s.id();
    const lines: (Report & { step: string })[] = [];
    const read = (step: string) => {
      const all = existsSync(hostFile)
        ? readFileSync(hostFile, 'utf8')
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l))
        : [];
      for (const l of all.slice(lines.length)) lines.push({ ...l, step });
    };
    const created = await s.createLogged(id, b);
    if (created.status !== 0) throw new Error(`create failed: ${created.stderr}`);
    read('create');
    const pid = (await s.state(id))!.pid as number;
    const started = await s.runtime(['start', id]);
    if (started.status !== 0) throw new Error(`start failed: ${started.stderr}`);
    read('start');
    for (let i = 0; i < 200 && !s.output(id).some((l) => l.ready); i++)
      await new Promise((r) => setTimeout(r, 25));
    const container = (await containerView(pid)) as Report;
    await s.runtime(['kill', id, 'KILL']);
    await s.waitFor(id, 'stopped');
    const deleted = await s.delete(id);
    if (deleted.status !== 0) throw new Error(`delete failed: ${deleted.stderr}`);
    read('delete');
    return { id, pid, container, lines };
  })();
  return shared;
}

/** The namespaces of the container's process, read from the host. */
async function containerView(pid: number): Promise<Report> {
  const { readlinkSync } = await import('node:fs');
  const ns: Record<string, string> = {};
  for (const t of ['mnt', 'uts', 'pid', 'net', 'ipc']) ns[t] = readlinkSync(`/proc/${pid}/ns/${t}`);
  return { ns };
}

const byName = (l: Lifecycle, name: string) => l.lines.find((x) => x.hook === name);

beforeAll(() => {
  expect(existsSync(CHECKER)).toBe(true);
});

req(
  'H-ORDER',
  'hooks run in lifecycle order: prestart, createRuntime, createContainer at create; startContainer, poststart at start; poststop at delete',
  async () => {
    const l = await lifecycle();
    expect(l.lines.map((x) => `${x.hook}@${x.step}`)).toEqual([
      'prestart@create',
      'createRuntime@create',
      'createContainer@create',
      'startContainer@start',
      'poststart@start',
      'poststop@delete',
    ]);
  },
);

req('H-STATE', 'every hook gets the container state on stdin', async () => {
  const l = await lifecycle();
  for (const name of HOOKS) {
    const line = byName(l, name);
    expect(line, name).toBeDefined();
    const state = JSON.parse(line!.stdin);
    expect(state.id, name).toBe(l.id);
    expect(state.ociVersion, name).toBeTruthy();
    expect(typeof state.bundle, name).toBe('string');
    expect(state.status, name).toBeTruthy();
  }
  // in the runtime namespace the pid is the one the runtime sees
  expect(JSON.parse(byName(l, 'createRuntime')!.stdin).pid).toBe(l.pid);
});

req(
  'H-NS-RUNTIME',
  'prestart, createRuntime, poststart and poststop run in the runtime namespace',
  async () => {
    const l = await lifecycle();
    for (const name of ['prestart', 'createRuntime', 'poststart', 'poststop']) {
      const line = byName(l, name);
      expect(line?.ns.mnt, name).toBe(host.ns('mnt'));
      expect(line?.ns.uts, name).toBe(host.ns('uts'));
      expect(line?.ns.pid, name).toBe(host.ns('pid'));
    }
  },
);

req('H-NS-CONTAINER', 'createContainer and startContainer run in the container namespace', async () => {
  const l = await lifecycle();
  for (const name of ['createContainer', 'startContainer']) {
    const line = byName(l, name);
    expect(line?.ns.mnt, name).toBe(l.container.ns.mnt);
    expect(line?.ns.uts, name).toBe(l.container.ns.uts);
    expect(line?.ns.net, name).toBe(l.container.ns.net);
  }
});

req('H-PATH-CONTAINER', "startContainer's path resolves in the container (its /checker)", async () => {
  const l = await lifecycle();
  expect(byName(l, 'startContainer')).toBeDefined();
  expect(existsSync('/checker')).toBe(false);
});

/** A container whose `kind` hook fails (exits 1); the rest record to a file. */
async function failing(kind: string) {
  const outDir = join(s.dir, `fail-${s.id('h')}`);
  mkdirSync(outDir);
  const file = join(outDir, 'hooks.jsonl');
  const b = s.bundle((c: Config) => {
    c.hooks = {
      prestart: [hook('prestart', file, CHECKER, kind === 'prestart' ? ['fail'] : [])],
      createRuntime: [hook('createRuntime', file, CHECKER, kind === 'createRuntime' ? ['fail'] : [])],
      poststart: [hook('poststart', file, CHECKER, kind === 'poststart' ? ['fail'] : [])],
      poststop: [
        hook('poststop', file, CHECKER, kind === 'poststop' ? ['fail'] : []),
        hook('poststop-2', file, CHECKER),
      ],
    };
    c.process.args = ['/checker', 'wait'];
  });
  const names = () =>
    existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l).hook as string)
      : [];
  return { b, names, id: s.id() };
}

req(
  'H-PRESTART-FAIL',
  'a failing prestart hook: create is an error, the container is gone, poststop runs',
  async () => {
    const { b, names, id } = await failing('prestart');
    const r = await s.createLogged(id, b);
    expect(r.status).not.toBe(0);
    // "stop the container, and continue the lifecycle at step 12": nothing of it is left once deleted
    await s.delete(id, true);
    expect(await s.state(id)).toBeUndefined();
    expect(names()).not.toContain('createRuntime');
    expect(names()).toContain('poststop');
  },
);

req(
  'H-CREATERUNTIME-FAIL',
  'a failing createRuntime hook: create is an error and the container is stopped',
  async () => {
    const { b, names, id } = await failing('createRuntime');
    const r = await s.createLogged(id, b);
    expect(r.status).not.toBe(0);
    const state = await s.state(id);
    expect(state === undefined || state['status'] === 'stopped').toBe(true);
    await s.delete(id, true);
    expect(names()).toContain('prestart');
  },
);

req(
  'H-POSTSTART-FAIL',
  'a failing poststart hook: start is an error and the container is stopped',
  async () => {
    const { b, id } = await failing('poststart');
    expect((await s.createLogged(id, b)).status).toBe(0);
    const r = await s.runtime(['start', id]);
    expect(r.status).not.toBe(0);
    const state = await s.state(id);
    expect(state === undefined || state['status'] === 'stopped').toBe(true);
    await s.delete(id, true);
  },
);

req(
  'H-POSTSTOP-FAIL',
  'a failing poststop hook is a warning: the other hooks run and delete succeeds',
  async () => {
    const { b, names, id } = await failing('poststop');
    expect((await s.createLogged(id, b)).status).toBe(0);
    expect((await s.runtime(['start', id])).status).toBe(0);
    await s.runtime(['kill', id, 'KILL']);
    await s.waitFor(id, 'stopped');
    const r = await s.delete(id);
    expect(r.status, r.stderr).toBe(0);
    expect(await s.state(id)).toBeUndefined();
    expect(names()).toEqual(expect.arrayContaining(['poststop', 'poststop-2']));
  },
);

req('H-TIMEOUT', 'a hook that runs past its timeout is aborted: create is an error, and soon', async () => {
  const b = s.bundle((c: Config) => {
    c.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', 'exec sleep 30'], timeout: 1 }] };
  });
  const id = s.id();
  const t0 = Date.now();
  const r = await s.createLogged(id, b);
  expect(r.status).not.toBe(0);
  expect(Date.now() - t0).toBeLessThan(20_000);
  await s.delete(id, true);
});
