// Integration (root): linux.netDevices. Host devices (one end of a veth pair: the kernel of
// the CI machine has no dummy driver) moved into a container's network namespace, new or
// joined, with their permanent global addresses; errors before anything is made.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cgroup } from '@berth/cgroups';
import { defaultSpec, formatSpec, type Spec } from '@berth/spec';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-netdev-test-'));
const root = join(dir, 'run');
const links: string[] = [];
const netns: string[] = [];
const ids: string[] = [];
let serial = 0;
const uid = (name: string) => {
  const id = `nd-${name}-${process.pid}-${serial++}`;
  ids.push(id);
  return id;
};

/** A veth pair with unique names: `a` is the one moved, `b` stays on the host. */
function veth(): { a: string; b: string } {
  const tag = randomBytes(4).toString('hex');
  const a = `nda${tag}`;
  const b = `ndb${tag}`;
  execFileSync('ip', ['link', 'add', a, 'type', 'veth', 'peer', 'name', b]);
  links.push(b);
  return { a, b };
}

const linkExists = (name: string) => spawnSync('ip', ['link', 'show', name]).status === 0;

afterEach(async () => {
  for (const id of ids)
    await expect(Cgroup.load(`/berth/${id}`)).rejects.toMatchObject({ code: 'ENOTFOUND' });
});
afterAll(() => {
  for (const l of links) spawnSync('ip', ['link', 'del', l]);
  for (const n of netns) spawnSync('ip', ['netns', 'del', n]);
  rmSync(dir, { recursive: true, force: true });
});

function bundle(script: string, edit: (s: Spec) => void): string {
  const b = mkdtempSync(join(dir, 'bundle-'));
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp']) mkdirSync(join(b, 'rootfs', d), { recursive: true });
  copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
  for (const applet of ['sh', 'ip', 'cat', 'sleep']) symlinkSync('busybox', join(b, 'rootfs/bin', applet));
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = ['sh', '-c', script];
  edit(spec);
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return b;
}

async function run(rt: Runtime, id: string, b: string): Promise<{ status: number; out: string }> {
  const file = join(b, 'out.txt');
  const fd = openSync(file, 'w');
  try {
    const status = await rt.run(id, b, { stdio: ['ignore', fd, fd] });
    return { status, out: readFileSync(file, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

describe('linux.netDevices', () => {
  it('moves a host device into the new namespace: renamed, its permanent global addresses and mtu kept, up', async () => {
    const { a } = veth();
    execFileSync('ip', ['addr', 'add', '10.254.77.2/24', 'dev', a]);
    execFileSync('ip', ['-6', 'addr', 'add', 'fd00:77::2/64', 'dev', a]);
    execFileSync('ip', ['addr', 'add', '10.254.78.2/24', 'scope', 'link', 'dev', a]);
    execFileSync('ip', ['link', 'set', 'mtu', '1789', 'dev', a]);
    execFileSync('ip', ['link', 'set', a, 'up']);
    const rt = new Runtime({ root, warn: () => {} });
    const b = bundle('ip -o addr show dev inner0; ip -o link show dev inner0', (s) => {
      s.linux!.netDevices = { [a]: { name: 'inner0' } };
    });
    const { status, out } = await run(rt, uid('new'), b);
    expect(status, out).toBe(0);
    expect(out).toMatch(/inet 10\.254\.77\.2\/24 .*scope global/);
    expect(out).toMatch(/inet6 fd00:77::2\/64 scope global/);
    expect(out).not.toContain('10.254.78.2'); // link scope: not the container's
    expect(out).toMatch(/inner0.*[<,]UP[,>].* mtu 1789 /);
    await rt.close(); // run's teardown, finished
    expect(linkExists(a)).toBe(false); // a virtual device ends with the container's namespace
    expect(await rt.list()).toEqual([]);
  });

  it('a template name (eth%d) is the kernel’s choice; a joined namespace keeps the device after delete', async () => {
    const { a } = veth();
    const ns = `ndns${randomBytes(4).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', ns]);
    netns.push(ns);
    const rt = new Runtime({ root, warn: () => {} });
    const b = bundle('ip -o link show', (s) => {
      s.linux!.namespaces = s.linux!.namespaces!.map((n) =>
        n.type === 'network' ? { type: 'network', path: `/var/run/netns/${ns}` } : n,
      );
      s.linux!.netDevices = { [a]: { name: 'eth%d' } };
    });
    const { status, out } = await run(rt, uid('joined'), b);
    expect(status, out).toBe(0);
    expect(out).toMatch(/: eth0@/);
    await rt.close();
    const inNs = execFileSync('ip', ['-n', ns, '-o', 'link', 'show']).toString();
    expect(inNs).toMatch(/: eth0@/); // the namespace's owner decides its fate, not the runtime
    expect(linkExists(a)).toBe(false);
  });

  it('is refused before anything is made: no network namespace, a bad name, a device the host lacks', async () => {
    const rt = new Runtime({ root, warn: () => {} });
    const { a } = veth();
    const cases: Array<[(s: Spec) => void, RegExp]> = [
      [
        (s) => {
          s.linux!.namespaces = s.linux!.namespaces!.filter((n) => n.type !== 'network');
          s.linux!.netDevices = { [a]: {} };
        },
        /^linux\.netDevices: the container has no network namespace of its own/,
      ],
      [
        (s) => (s.linux!.netDevices = { [a]: { name: 'a/b' } }),
        /^linux\.netDevices\[".*"\]\.name: "a\/b" is not a network device name/,
      ],
      [
        (s) => (s.linux!.netDevices = { ndnone0: {} }),
        /^linux\.netDevices\["ndnone0"\]: no network device ndnone0 on the host/,
      ],
    ];
    for (const [edit, error] of cases) {
      const id = uid('bad');
      await expect(
        rt.create(id, bundle('true', edit), { stdio: ['ignore', 'ignore', 'ignore'] }),
      ).rejects.toThrow(error);
    }
    expect(linkExists(a)).toBe(true); // nothing moved
    expect(await rt.list()).toEqual([]);
  });
});
