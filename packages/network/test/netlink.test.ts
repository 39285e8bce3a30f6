import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Handle, RTM, rtnetlink } from '../src/index.js';
import { attr, IFLA, ifinfomsg, NL } from '../src/netlink.js';
import { makeNetns, type TestNetns } from './helpers.js';

describe('rtnetlink (root; in namespaces the test makes)', () => {
  let a: TestNetns;
  let b: TestNetns;
  let h: Handle;
  beforeEach(async () => {
    a = await makeNetns();
    b = await makeNetns();
    h = (await rtnetlink.open({ pid: a.pid })) as Handle;
  });
  afterEach(async () => {
    h.closeSync();
    await a.close();
    await b.close();
  });

  it('lists, gets and sets up lo', async () => {
    const links = await h.links.list();
    expect(links.map((l) => l.name)).toEqual(['lo']);
    expect((await h.links.get('lo'))?.up).toBe(false);
    await h.links.setUp('lo');
    expect((await h.links.get('lo'))?.up).toBe(true);
    expect(await h.links.get('nosuch0')).toBeUndefined();
  });

  it('makes a bridge and a veth whose peer is born in another namespace, with addresses and routes', async () => {
    const br = await h.links.createBridge('tbr0', { mtu: 1400 });
    expect(br).toMatchObject({ name: 'tbr0', kind: 'bridge', mtu: 1400, up: false });
    const { host } = await h.links.createVeth({ host: 'tveth0', peer: 'eth0', peerNetns: { pid: b.pid } });
    expect(host.kind).toBe('veth');
    await h.links.setMaster('tveth0', 'tbr0');
    expect((await h.links.get('tveth0'))?.master).toBe(br.index);
    await h.links.setUp('tveth0');
    await h.links.setUp('tbr0');
    await h.addresses.add('tbr0', '10.213.250.1/24');
    await h.addresses.add('tbr0', 'fd00:213::1/64');
    const addrs = (await h.addresses.list('tbr0')).map((x) => x.address);
    expect(addrs).toContain('10.213.250.1/24');
    expect(addrs).toContain('fd00:213::1/64');

    const inB = (await rtnetlink.open({ pid: b.pid })) as Handle;
    try {
      const eth0 = await inB.links.get('eth0');
      expect(eth0?.kind).toBe('veth');
      await inB.links.setUp('lo');
      await inB.links.setUp('eth0');
      await inB.addresses.add('eth0', '10.213.250.2/24');
      await inB.routes.add({ destination: 'default', gateway: '10.213.250.1' });
      const routes = await inB.routes.list();
      expect(routes).toContainEqual({ destination: 'default', gateway: '10.213.250.1', link: eth0!.index });
      expect(routes).toContainEqual({ destination: '10.213.250.0/24', link: eth0!.index });
      // traffic crosses the pair: b pings the bridge's address in a
      b.run(['busybox', 'ping', '-c', '1', '-W', '2', '10.213.250.1']);
      await inB.routes.remove({ destination: 'default', gateway: '10.213.250.1' });
      expect((await inB.routes.list()).some((r) => r.destination === 'default')).toBe(false);
      await inB.addresses.remove('eth0', '10.213.250.2/24');
      expect((await inB.addresses.list('eth0')).filter((x) => !x.address.includes(':'))).toEqual([]);
    } finally {
      inB.closeSync();
    }
    await h.links.remove('tveth0');
    expect(await h.links.get('tveth0')).toBeUndefined();
    await h.links.remove('tveth0'); // absent: not an error
  });

  it('moves and renames a link into another namespace', async () => {
    await h.links.createVeth({ host: 'tmv0', peer: 'tmv1' });
    await h.links.moveToNetns('tmv1', { pid: b.pid }, 'moved0');
    expect(await h.links.get('tmv1')).toBeUndefined();
    expect(b.run(['ip', '-o', 'link', 'show', 'moved0'])).toMatch(/moved0@/);
    await h.links.setMtu('tmv0', 1280);
    await h.links.rename('tmv0', 'tmv2');
    expect((await h.links.get('tmv2'))?.mtu).toBe(1280);
  });

  it('turns kernel errors into ENETLINK with the errno and the extended ack', async () => {
    await h.links.createBridge('tdup0');
    const err = await h.links.createBridge('tdup0').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ENETLINK', errno: 'EEXIST', op: 'create bridge', path: 'tdup0' });
    expect((err as Error).message).toMatch(/^create bridge tdup0: EEXIST \(file exists\)/);
    const bad = await h.routes
      .add({ destination: 'default', gateway: '10.213.251.1' })
      .catch((e: unknown) => e);
    expect(bad).toMatchObject({ code: 'ENETLINK', errno: 'ENETUNREACH' });
    // an unknown link kind: the kernel explains itself in the extended ack
    const unknownKind = (() => {
      try {
        h.socket.request(
          RTM.NEWLINK,
          NL.F_CREATE | NL.F_EXCL,
          ifinfomsg({}, [
            attr.str(IFLA.IFNAME, 'tkind0'),
            attr.nest(IFLA.LINKINFO, [attr.str(IFLA.INFO_KIND, 'nosuchkind')]),
          ]),
          'create link',
          'tkind0',
        );
      } catch (e) {
        return e as Error & { extack?: string };
      }
      return undefined;
    })();
    expect(unknownKind).toMatchObject({ code: 'ENETLINK', errno: 'EOPNOTSUPP' });
    expect(unknownKind?.extack).toMatch(/unknown device type/i);
    expect(unknownKind?.message).toMatch(/: EOPNOTSUPP \(operation not supported\): Unknown device type/i);
    await expect(h.links.createBridge('this-name-is-far-too-long')).rejects.toMatchObject({
      code: 'EINVALIDNETWORK',
    });
  });
});
