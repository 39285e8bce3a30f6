import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostLinkName } from '../src/attach.js';
import { attach, detach, type Handle, NetworkStore, NftNat, rtnetlink } from '../src/index.js';
import { makeNetns, type TestNetns, tempDir, uniqueName, uniqueSubnet } from './helpers.js';

describe('attach and detach (root; bridge, veth, NAT, ports, hosts)', () => {
  const tmp = tempDir();
  const { cidr, third } = uniqueSubnet();
  const bridge = uniqueName('bt');
  const table = uniqueName('bt_');
  const store = new NetworkStore({ dir: join(tmp.dir, 'state'), defaultSubnet: cidr, defaultBridge: bridge });
  const nat = new NftNat({ table });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const upLink = uniqueName('bu');
  let c1: TestNetns;
  let c2: TestNetns;
  let up: TestNetns;
  let host: Handle;

  beforeAll(async () => {
    c1 = await makeNetns();
    c2 = await makeNetns();
    up = await makeNetns();
    host = (await rtnetlink.open()) as Handle;
  });
  afterAll(async () => {
    await host.links.remove(upLink).catch(() => undefined);
    await host.links.remove(bridge).catch(() => undefined);
    host.closeSync();
    await nat.dropTable();
    for (const n of [c1, c2, up]) await n?.close();
    tmp.remove();
  });

  it('connects two containers that reach each other by address and name, publishes a port, masquerades, and leaves nothing', async () => {
    const a = await attach({
      containerId: 'c1',
      netns: { pid: c1.pid },
      store,
      nat,
      hostname: 'web',
      filesDir: join(tmp.dir, 'c1'),
      publish: [`127.0.0.1:${port}:80`],
      addHosts: ['db.example:10.1.2.3'],
      dns: ['10.1.1.1'],
    });
    const b = await attach({
      containerId: 'c2',
      netns: { pid: c2.pid },
      store,
      nat,
      filesDir: join(tmp.dir, 'c2'),
    });
    expect(a.address).toBe(`10.213.${third}.2/24`);
    expect(b.address).toBe(`10.213.${third}.3/24`);
    expect(a.ports).toEqual([
      {
        protocol: 'tcp',
        hostIp: '127.0.0.1',
        hostPort: port,
        containerIp: `10.213.${third}.2`,
        containerPort: 80,
      },
    ]);
    // by address, both ways
    c1.run(['busybox', 'ping', '-c', '1', '-W', '2', `10.213.${third}.3`]);
    c2.run(['busybox', 'ping', '-c', '1', '-W', '2', `10.213.${third}.2`]);
    // by name: each hosts file lists the other (kept current as containers come and go)
    const hosts1 = readFileSync(a.files!.hosts, 'utf8');
    const hosts2 = readFileSync(b.files!.hosts, 'utf8');
    expect(hosts1).toContain(`10.213.${third}.3\tc2`);
    expect(hosts1).toContain('10.1.2.3\tdb.example');
    expect(hosts2).toContain(`10.213.${third}.2\tc1 web`);
    expect(readFileSync(a.files!.resolvConf, 'utf8')).toContain('nameserver 10.1.1.1');
    expect(readFileSync(a.files!.hostname, 'utf8')).toBe('web\n');
    expect(c1.run(['ip', '-4', 'route', 'show', 'default'])).toContain(`via 10.213.${third}.1 dev eth0`);

    // -p 127.0.0.1:PORT:80 answers on the host's loopback
    const www = join(tmp.dir, 'www');
    mkdirSync(join(www, 'cgi-bin'), { recursive: true });
    writeFileSync(join(www, 'index.html'), 'hello from c1\n');
    writeFileSync(
      join(www, 'cgi-bin', 'ip'),
      '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s\\n" "$REMOTE_ADDR"\n',
    );
    chmodSync(join(www, 'cgi-bin', 'ip'), 0o755);
    c1.spawn(['busybox', 'httpd', '-f', '-p', '80', '-h', www]);
    const body = await retry(() =>
      execFileSync('wget', ['-q', '-T', '2', '-t', '1', '-O', '-', `http://127.0.0.1:${port}/`]).toString(),
    );
    expect(body).toBe('hello from c1\n');
    expect(readFileSync(`/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, 'utf8').trim()).toBe('1');

    // masquerade: an "upstream" namespace with no route back to the subnet sees the host's address
    await host.links.createVeth({ host: upLink, peer: 'eth0', peerNetns: { pid: up.pid } });
    await host.addresses.add(upLink, `10.214.${third}.1/30`);
    await host.links.setUp(upLink);
    up.run(['ip', 'addr', 'add', `10.214.${third}.2/30`, 'dev', 'eth0']);
    up.run(['ip', 'link', 'set', 'eth0', 'up']);
    up.run(['ip', 'link', 'set', 'lo', 'up']);
    up.spawn(['busybox', 'httpd', '-f', '-p', '80', '-h', www]);
    const seen = await retry(() =>
      c2.run(['wget', '-q', '-T', '2', '-t', '1', '-O', '-', `http://10.214.${third}.2/cgi-bin/ip`]),
    );
    // busybox httpd listens on :: and reports the v4-mapped form
    expect(seen.trim().replace(/^\[::ffff:(.*)\]$/, '$1')).toBe(`10.214.${third}.1`);

    // a second container may not take the same host port
    await expect(
      attach({
        containerId: 'c3',
        netns: { pid: up.pid },
        store,
        nat,
        publish: [`127.0.0.1:${port}:81`],
        ifname: 'eth1',
      }),
    ).rejects.toMatchObject({ code: 'EPORTINUSE' });
    // ...and that failed attach left no veth, lease or rule
    expect(await host.links.get(hostLinkName('bridge', 'c3', 'eth1'))).toBeUndefined();
    expect((await store.leases('bridge')).map((l) => l.containerId).sort()).toEqual(['c1', 'c2']);

    await detach('c1', 'bridge', { store, nat });
    expect(readFileSync(b.files!.hosts, 'utf8')).not.toContain('c1');
    await detach('c2', 'bridge', { store, nat });
    await detach('c2', 'bridge', { store, nat }); // idempotent
    for (const id of ['c1', 'c2']) expect(await host.links.get(hostLinkName('bridge', id))).toBeUndefined();
    expect(await store.leases('bridge')).toEqual([]);
    expect((await nat.rules()).filter((r) => r.comment?.startsWith('berth:c:'))).toEqual([]);
    expect(c1.run(['ip', '-o', 'link'])).not.toContain('eth0');
  });
});

async function retry<T>(fn: () => T, tries = 40): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return fn();
    } catch (e) {
      if (i >= tries) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
