// A VM's NIC as @berth/network makes it (no QEMU here): attach({ tap: true }) takes a
// lease, makes a persistent tap on the bridge and publishes ports; detach removes it all.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostLinkName } from '../src/attach.js';
import { attach, createTap, detach, type Handle, NetworkStore, NftNat, rtnetlink } from '../src/index.js';
import { tempDir, uniqueName, uniqueSubnet } from './helpers.js';

describe('a VM NIC: attach({ tap: true }) and detach (root)', () => {
  const tmp = tempDir();
  const { cidr, third } = uniqueSubnet();
  const bridge = uniqueName('bt');
  const table = uniqueName('bt_');
  const store = new NetworkStore({ dir: join(tmp.dir, 'state'), defaultSubnet: cidr, defaultBridge: bridge });
  const nat = new NftNat({ table });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const id = `vm-${process.pid}`;
  const tap = hostLinkName('bridge', id);
  let host: Handle;

  beforeAll(async () => {
    host = (await rtnetlink.open()) as Handle;
  });
  afterAll(async () => {
    await host.links.remove(tap).catch(() => undefined);
    await host.links.remove(bridge).catch(() => undefined);
    host.closeSync();
    await nat.dropTable();
    tmp.remove();
  });

  it('makes a persistent tap on the bridge with a lease and a port rule, and detach removes them', async () => {
    const a = await attach({
      containerId: id,
      tap: true,
      store,
      nat,
      filesDir: join(tmp.dir, 'files'),
      publish: [`127.0.0.1:${port}:80`],
    });
    expect(a.hostLink).toBe(tap);
    expect(a.address).toBe(`10.213.${third}.2/24`);
    expect(a.gateway).toBe(`10.213.${third}.1`);
    // a tap (tun_flags: IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_PERSIST): it outlives the fd that made it
    expect(Number(readFileSync(`/sys/class/net/${tap}/tun_flags`, 'utf8'))).toBe(0x5802);
    expect(readdirSync(`/sys/class/net/${bridge}/brif`)).toEqual([tap]);
    expect((await host.links.get(tap))?.up).toBe(true);
    expect((await store.ipam.leases('bridge')).map((l) => l.containerId)).toEqual([id]);
    expect(JSON.stringify(await nat.rules())).toContain(`10.213.${third}.2`);
    expect(readFileSync(join(tmp.dir, 'files', 'hosts'), 'utf8')).toContain(`10.213.${third}.2\t${id}`);
    // an existing persistent tap of that name is taken as it is (QEMU reopens it the same way)
    await createTap(tap);

    await detach(id, 'bridge', { store, nat });
    expect(existsSync(`/sys/class/net/${tap}`)).toBe(false);
    expect(await store.ipam.leases('bridge')).toEqual([]);
    expect(JSON.stringify(await nat.rules())).not.toContain(`10.213.${third}.2`);
  });

  it('refuses a bad tap name and an attach with neither a namespace nor a tap, making nothing', async () => {
    await expect(createTap('a-name-longer-than-15')).rejects.toThrow(/a link name is 1 to 15/);
    await expect(attach({ containerId: `${id}-x`, store, nat })).rejects.toMatchObject({ code: 'ENONETNS' });
    expect(await store.ipam.leases('bridge')).toEqual([]);
  });
});
