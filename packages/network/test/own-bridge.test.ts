// `--bridge` naming a link of the host's: a link that is not a bridge is refused; an existing bridge
// is used as it is (berth adds no address, sets no sysctl, and never deletes it).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostLinkName } from '../src/attach.js';
import { attach, Bridge, detach, type Handle, NetworkStore, NftNat, rtnetlink } from '../src/index.js';
import { makeNetns, type TestNetns, tempDir, uniqueName, uniqueSubnet } from './helpers.js';

describe('a network on a link berth did not make (root)', () => {
  const tmp = tempDir();
  const { cidr, third } = uniqueSubnet();
  const veth = uniqueName('bd');
  const vethPeer = uniqueName('bp');
  const hostBridge = uniqueName('bb');
  const table = uniqueName('bt_');
  const store = new NetworkStore({ dir: join(tmp.dir, 'state') });
  const nat = new NftNat({ table });
  let c: TestNetns;
  let host: Handle;
  const addresses = async (name: string) =>
    (await host.addresses.list(name)).map((a) => a.address).filter((a) => !a.includes(':'));
  const localnet = () => readFileSync(`/proc/sys/net/ipv4/conf/${hostBridge}/route_localnet`, 'utf8').trim();

  beforeAll(async () => {
    host = (await rtnetlink.open()) as Handle;
    c = await makeNetns();
    // the host's own links: a veth (as eth0 would be) and a bridge with its address
    execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', vethPeer]);
    execFileSync('ip', ['link', 'add', hostBridge, 'type', 'bridge']);
    execFileSync('ip', ['addr', 'add', `10.213.${third}.1/24`, 'dev', hostBridge]);
    execFileSync('ip', ['link', 'set', hostBridge, 'up']);
  });
  afterAll(async () => {
    await host.links.remove(veth).catch(() => undefined);
    await host.links.remove(hostBridge).catch(() => undefined);
    host.closeSync();
    await nat.dropTable();
    await c?.close();
    tmp.remove();
  });

  it('refuses a --bridge that names a link that is not a bridge, and makes nothing', async () => {
    await expect(store.create('nd', { bridge: veth, subnet: '10.213.250.0/24' })).rejects.toMatchObject({
      code: 'EINVALIDNETWORK',
      message: `--bridge ${veth}: this host has a link of that name (veth) and it is not a bridge: name a bridge, or a name no link has (berth then makes the bridge)`,
    });
    expect((await store.list()).map((n) => n.name)).toEqual(['bridge']);
    expect(await host.links.get(veth)).toBeDefined();
    expect(await host.links.get(vethPeer)).toBeDefined();
  });

  it("uses an existing bridge as it is: its subnet, no address or sysctl of berth's, and it stays after the containers leave", async () => {
    // another subnet than the bridge's own would mean changing its address: refused
    await expect(store.create('nx', { bridge: hostBridge, subnet: '10.213.251.0/24' })).rejects.toThrow(
      `--bridge ${hostBridge}: the bridge exists with address 10.213.${third}.1/24, not the gateway 10.213.251.1/24, and berth does not change a bridge it did not make`,
    );
    const config = await store.create('nb', { bridge: hostBridge });
    expect(config).toMatchObject({
      bridge: hostBridge,
      subnet: { cidr, gateway: `10.213.${third}.1` },
      ownBridge: false,
    });
    // ports on 127.0.0.1 need route_localnet, which berth does not set on a bridge not its own
    expect(localnet()).toBe('0');
    await expect(
      attach({
        containerId: 'c1',
        netns: { pid: c.pid },
        network: 'nb',
        store,
        nat,
        publish: ['127.0.0.1:8080:80'],
      }),
    ).rejects.toThrow(
      `-p "127.0.0.1:8080:80": network nb uses bridge ${hostBridge}, which berth did not make and does not change, and it does not route 127.0.0.0/8 (net.ipv4.conf.${hostBridge}.route_localnet is 0)`,
    );
    expect(await store.leases('nb')).toEqual([]);

    const a = await attach({ containerId: 'c1', netns: { pid: c.pid }, network: 'nb', store, nat });
    expect(a.address).toBe(`10.213.${third}.2/24`);
    const br = await host.links.get(hostBridge);
    expect((await host.links.get(hostLinkName('nb', 'c1')))?.master).toBe(br?.index);
    c.run(['busybox', 'ping', '-c', '1', '-W', '2', `10.213.${third}.1`]);
    expect(await addresses(hostBridge)).toEqual([`10.213.${third}.1/24`]);
    expect(localnet()).toBe('0');

    await detach('c1', 'nb', { store, nat });
    expect(await store.leases('nb')).toEqual([]);
    expect(await host.links.get(hostLinkName('nb', 'c1'))).toBeUndefined();
    // removing every port of it does not make it berth's: nothing removes it
    expect(await addresses(hostBridge)).toEqual([`10.213.${third}.1/24`]);
    await store.remove('nb');
    expect((await host.links.get(hostBridge))?.kind).toBe('bridge');
  });

  it('does not make a missing bridge that was not berth’s', async () => {
    const gone = uniqueName('bg');
    await expect(
      Bridge.ensure(gone, { cidr, gateway: `10.213.${third}.1` }, { owned: false }),
    ).rejects.toThrow(
      `bridge ${gone} does not exist: the network uses a bridge berth did not make, and berth does not make it`,
    );
    expect(await host.links.get(gone)).toBeUndefined();
  });
});
