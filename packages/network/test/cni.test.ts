import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CniDriver, type CniResult, type Handle, NftNat, rtnetlink } from '../src/index.js';
import { makeNetns, type TestNetns, tempDir, uniqueName, uniqueSubnet } from './helpers.js';

const plugin = join(import.meta.dirname, '..', 'dist', 'cni', 'berth-bridge');

/** Runs the plugin as a CNI runtime does: CNI_* in the environment, the config on stdin. */
function cni(command: string, env: Record<string, string>, config: unknown) {
  const r = spawnSync(plugin, [], {
    env: { ...process.env, CNI_COMMAND: command, CNI_PATH: join(plugin, '..'), ...env },
    input: JSON.stringify(config),
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, out: r.stdout.trim() ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
}

describe('berth-bridge, a CNI 1.0 plugin (root; spec-following harness)', () => {
  const tmp = tempDir();
  const { cidr, third } = uniqueSubnet();
  const bridge = uniqueName('bc');
  const name = uniqueName('cninet');
  const config = {
    cniVersion: '1.0.0',
    name,
    type: 'berth-bridge',
    bridge,
    subnet: cidr,
    ipMasq: false,
    dataDir: tmp.dir,
  };
  let ns: TestNetns;
  let host: Handle;
  beforeAll(async () => {
    expect(existsSync(plugin), 'build @berth/network first').toBe(true);
    ns = await makeNetns();
    host = (await rtnetlink.open()) as Handle;
  });
  afterAll(async () => {
    await host.links.remove(bridge);
    host.closeSync();
    await ns.close();
    tmp.remove();
  });

  it('answers VERSION', () => {
    const r = cni('VERSION', {}, {});
    expect(r.status).toBe(0);
    expect(r.out).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0'] });
  });

  it('does ADD, CHECK, DEL (twice) and a CHECK after DEL fails', () => {
    const env = { CNI_CONTAINERID: 'ctr1', CNI_NETNS: `/proc/${ns.pid}/ns/net`, CNI_IFNAME: 'eth0' };
    const add = cni('ADD', env, config);
    expect(add.status, JSON.stringify(add.out)).toBe(0);
    const result = add.out as CniResult;
    expect(result.cniVersion).toBe('1.0.0');
    expect(result.ips).toEqual([
      { address: `10.213.${third}.2/24`, gateway: `10.213.${third}.1`, interface: 2 },
    ]);
    expect(result.interfaces?.[2]).toMatchObject({ name: 'eth0', sandbox: env.CNI_NETNS });
    expect(result.interfaces?.[2]?.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    expect(result.routes).toEqual([{ dst: '0.0.0.0/0', gw: `10.213.${third}.1` }]);
    expect(ns.run(['ip', '-4', '-o', 'addr', 'show', 'eth0'])).toContain(`inet 10.213.${third}.2/24`);
    ns.run(['busybox', 'ping', '-c', '1', '-W', '2', `10.213.${third}.1`]);

    const check = cni('CHECK', env, { ...config, prevResult: result });
    expect(check.status, JSON.stringify(check.out)).toBe(0);

    const del = cni('DEL', env, { ...config, prevResult: result });
    expect(del.status, JSON.stringify(del.out)).toBe(0);
    expect(ns.run(['ip', '-o', 'link'])).not.toContain('eth0');
    expect(cni('DEL', env, config).status).toBe(0); // DEL is idempotent
    expect(cni('DEL', { ...env, CNI_NETNS: '' }, config).status).toBe(0); // and works without the namespace

    const after = cni('CHECK', env, { ...config, prevResult: result });
    expect(after.status).toBe(1);
    expect(after.out).toMatchObject({ cniVersion: '1.0.0', code: 3 });
  });

  it('reports errors as the spec says: JSON on stdout, exit status 1', () => {
    const env = { CNI_CONTAINERID: 'ctr2', CNI_NETNS: `/proc/${ns.pid}/ns/net`, CNI_IFNAME: 'eth0' };
    expect(cni('ADD', env, { ...config, cniVersion: '9.9.9' }).out).toMatchObject({ code: 1 });
    expect(cni('ADD', { ...env, CNI_CONTAINERID: '' }, config).out).toMatchObject({
      code: 4,
      msg: 'CNI_CONTAINERID is not set',
    });
    const noSubnet = cni('ADD', env, { ...config, subnet: undefined });
    expect(noSubnet).toMatchObject({ status: 1, out: { code: 7 } });
    const badJson = spawnSync(plugin, [], {
      env: { ...process.env, ...env, CNI_COMMAND: 'ADD' },
      input: '{',
      encoding: 'utf8',
    });
    expect(badJson.status).toBe(1);
    expect(JSON.parse(badJson.stdout)).toMatchObject({ code: 6 });
    expect(cni('ADD', { ...env, CNI_NETNS: '/nonexistent/ns' }, config).out).toMatchObject({ code: 3 });
    expect(ns.run(['ip', '-o', 'link'])).not.toContain('eth0');
  });

  it('runs as a plugin of a conflist through the CNI driver, and the driver runs Debian’s bridge plugin too', async () => {
    const env = { containerId: 'ctr3', netns: `/proc/${ns.pid}/ns/net`, ifname: 'eth1' };
    const ours = new CniDriver(
      {
        cniVersion: '1.0.0',
        name,
        plugins: [{ type: config.type, bridge, subnet: cidr, ipMasq: false, dataDir: tmp.dir }],
      },
      [join(plugin, '..')],
    );
    const r = await ours.add(env);
    expect(r?.ips?.[0]?.address).toBe(`10.213.${third}.2/24`);
    await ours.check(env, r!);
    await ours.del(env, r);
    expect(ns.run(['ip', '-o', 'link'])).not.toContain('eth1');

    const debianBridge = uniqueName('bd');
    const theirs = new CniDriver({
      cniVersion: '1.0.0',
      name: uniqueName('debnet'),
      plugins: [
        {
          type: 'bridge',
          bridge: debianBridge,
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: `10.214.${third}.0/24` }]],
            dataDir: join(tmp.dir, 'host-local'),
          },
        },
      ],
    });
    try {
      const d = await theirs.add({ ...env, ifname: 'eth2' });
      expect(d?.ips?.[0]?.address).toMatch(new RegExp(`^10\\.214\\.${third}\\.\\d+/24$`));
      expect(ns.run(['ip', '-4', '-o', 'addr', 'show', 'eth2'])).toContain(`10.214.${third}.`);
      await theirs.del({ ...env, ifname: 'eth2' }, d);
      expect(ns.run(['ip', '-o', 'link'])).not.toContain('eth2');
    } finally {
      await host.links.remove(debianBridge);
    }
    // berth-bridge left no rule: ipMasq was off
    expect((await new NftNat().rules()).some((rule) => rule.comment === `berth:n:${bridge}`)).toBe(false);
  });
});
