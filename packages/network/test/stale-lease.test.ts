// A container that stopped without being deleted: its lease is taken back for the next container,
// and its published ports must go with it in the same step (else the next container, given the
// same address, receives the traffic of the first one's published port).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostLinkName } from '../src/attach.js';
import {
  attach,
  detach,
  FileIpam,
  type Handle,
  makeSubnet,
  NetworkStore,
  NftNat,
  rtnetlink,
} from '../src/index.js';
import { startTime } from '../src/lock.js';
import { makeNetns, type TestNetns, tempDir, uniqueName, uniqueSubnet } from './helpers.js';

describe('a stale lease is taken back with its port rules (root)', () => {
  const tmp = tempDir();
  const { cidr, third } = uniqueSubnet();
  const bridge = uniqueName('bt');
  const table = uniqueName('bt_');
  const store = new NetworkStore({ dir: join(tmp.dir, 'state'), defaultSubnet: cidr, defaultBridge: bridge });
  const nat = new NftNat({ table });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const vmId = `vm-${process.pid}-${uniqueName('')}`;
  const opened: TestNetns[] = [];
  let host: Handle;

  const ns = async () => {
    const n = await makeNetns();
    opened.push(n);
    return n;
  };
  /** The container's init exits: its namespace (and the veth's peer) goes with it. */
  const stop = async (n: TestNetns) => {
    opened.splice(opened.indexOf(n), 1);
    await n.close();
  };
  const tagged = async (id: string) => (await nat.rules()).filter((r) => r.comment === `berth:c:${id}`);
  const wget = (url: string) => {
    try {
      return execFileSync('wget', ['-q', '-T', '2', '-t', '1', '-O', '-', url], { stdio: 'pipe' }).toString();
    } catch {
      return undefined;
    }
  };

  beforeAll(async () => {
    host = (await rtnetlink.open()) as Handle;
  });
  afterAll(async () => {
    await host.links.remove(hostLinkName('bridge', vmId)).catch(() => undefined);
    await host.links.remove(bridge).catch(() => undefined);
    host.closeSync();
    await nat.dropTable();
    for (const n of opened) await n.close();
    tmp.remove();
  });

  it("a stopped container's published port never reaches the container that gets its address next; delete still works", async () => {
    const a = await ns();
    const aa = await attach({
      containerId: 'a',
      netns: { pid: a.pid },
      store,
      nat,
      publish: [`127.0.0.1:${port}:80`],
    });
    expect(aa.address).toBe(`10.213.${third}.2/24`);
    expect(await tagged('a')).toHaveLength(1);
    // "a" stops (its init exits); it is not deleted
    await stop(a);

    // "b" publishes nothing, and gets a's address: a's rule went when the lease was taken back
    const b = await ns();
    const bb = await attach({ containerId: 'b', netns: { pid: b.pid }, store, nat });
    expect(bb.address).toBe(aa.address);
    expect((await store.leases('bridge')).map((l) => l.containerId)).toEqual(['b']);
    // b serves on :80; the host's 127.0.0.1:PORT (a's port) does not lead there, b's own address does
    const www = join(tmp.dir, 'www');
    mkdirSync(www, { recursive: true });
    writeFileSync(join(www, 'index.html'), 'served by b\n');
    b.spawn(['busybox', 'httpd', '-f', '-p', '80', '-h', www]);
    let direct: string | undefined;
    for (let i = 0; i < 40 && direct === undefined; i++) {
      direct = wget(`http://10.213.${third}.2/`);
      if (direct === undefined) await new Promise((r) => setTimeout(r, 100));
    }
    expect(direct).toBe('served by b\n');
    expect(wget(`http://127.0.0.1:${port}/`)).toBeUndefined();
    expect(await tagged('a')).toEqual([]);

    // a's delete later: idempotent, and leaves b alone
    await detach('a', 'bridge', { store, nat });
    expect((await store.leases('bridge')).map((l) => l.containerId)).toEqual(['b']);
    await detach('b', 'bridge', { store, nat });
    expect(await store.leases('bridge')).toEqual([]);
    expect((await nat.rules()).filter((r) => r.comment?.startsWith('berth:c:'))).toEqual([]);
    for (const id of ['a', 'b']) expect(await host.links.get(hostLinkName('bridge', id))).toBeUndefined();
  });

  it("a VM's lease (its holder berth-vmm) is taken back with its port rules once the VM is gone; delete removes the tap", async () => {
    // a VM's NIC: a tap and its lease, whose holder becomes the VM's host process (runtime's holdLease)
    const v = await attach({ containerId: vmId, tap: true, store, nat, publish: [`127.0.0.1:${port}:80`] });
    const vmm = spawn('sleep', ['600'], { stdio: 'ignore' });
    await new Promise((r) => vmm.once('spawn', r));
    await store.ipam.commit(
      'bridge',
      vmId,
      { holder: { pid: vmm.pid!, startTime: startTime(vmm.pid!)! } },
      'eth0',
    );
    // while the VM runs, its address and its rule stay
    const c = await ns();
    const cc = await attach({ containerId: 'c', netns: { pid: c.pid }, store, nat });
    expect(cc.address).not.toBe(v.address);
    expect(await tagged(vmId)).toHaveLength(1);
    await detach('c', 'bridge', { store, nat });
    // the VM powers off (berth-vmm exits): the next container gets its address, not its port
    const gone = new Promise((r) => vmm.once('exit', r));
    vmm.kill('SIGKILL');
    await gone;
    const d = await ns();
    const dd = await attach({ containerId: 'd', netns: { pid: d.pid }, store, nat });
    expect(dd.address).toBe(v.address);
    expect(await tagged(vmId)).toEqual([]);
    await detach(vmId, 'bridge', { store, nat });
    expect(await host.links.get(hostLinkName('bridge', vmId))).toBeUndefined();
    await detach('d', 'bridge', { store, nat });
    expect(await store.leases('bridge')).toEqual([]);
    expect((await nat.rules()).filter((r) => r.comment?.startsWith('berth:c:'))).toEqual([]);
  });

  it('keeps a stale lease, and hands out no address, when its port rules cannot be removed', async () => {
    const ipam = new FileIpam({ stateDir: join(tmp.dir, 'fail') });
    const subnet = makeSubnet(`10.213.${third}.0/30`); // one address besides the gateway
    const child = spawn('sleep', ['600'], { stdio: 'ignore' });
    await new Promise((r) => child.once('spawn', r));
    // a table name nft cannot have: its rules cannot be looked up, so the lease must stay
    await ipam.allocate('n', subnet, 'x', undefined, {
      holder: { pid: child.pid! },
      natTable: 'not a table',
    });
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    await expect(ipam.allocate('n', subnet, 'y')).rejects.toThrow(
      /cannot take back the address 10\.213\.\d+\.2\/30 of container x \(its process is gone\): its published ports could not be removed/,
    );
    expect((await ipam.leases('n')).map((l) => l.containerId)).toEqual(['x']);
    await ipam.release('n', 'x');
    expect(await ipam.leases('n')).toEqual([]);
  });
});
