// A bridge that routes 127.0.0.0/8 (route_localnet, for ports published on 127.0.0.1) must never
// let its containers reach the host's loopback services (CVE-2020-8558): on an --internal network
// (no masquerade), for a VM's tap, and for the CNI plugin. Everything runs in network namespaces
// of the test's own: a "host" namespace (its bridge, its nft table `ip berth`, its 127.0.0.1) and
// the containers' namespaces; @berth/network runs there as a node process on the built dist.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeNetns, type TestNetns, tempDir, uniqueName } from './helpers.js';

const dist = join(import.meta.dirname, '..', 'dist', 'index.js');
const plugin = join(import.meta.dirname, '..', 'dist', 'cni', 'berth-bridge');

describe('the loopback guard wherever a bridge routes 127/8 (root; private network namespaces)', () => {
  const tmp = tempDir();
  const state = join(tmp.dir, 'state');
  const opened: TestNetns[] = [];
  const servers: ChildProcess[] = [];
  let host: TestNetns;

  const ns = async () => {
    const n = await makeNetns();
    opened.push(n);
    n.run(['ip', 'link', 'set', 'lo', 'up']);
    return n;
  };
  /** Runs `code` (the body of an async function; `net` is @berth/network) in the host namespace. */
  const inHost = (code: string): unknown => {
    const script = `import * as net from ${JSON.stringify(dist)};
const store = new net.NetworkStore({ dir: ${JSON.stringify(state)} });
const out = await (async () => { ${code} })();
process.stdout.write(JSON.stringify(out ?? null));`;
    const r = spawnSync(
      'nsenter',
      ['-t', String(host.pid), '-n', '--', process.execPath, '--input-type=module', '-e', script],
      { encoding: 'utf8', timeout: 60_000 },
    );
    if (r.status !== 0) throw new Error(`in the host namespace: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const sh = (n: TestNetns, script: string) => n.run(['sh', '-c', script], 20_000);
  const localnet = (bridge: string) =>
    sh(host, `cat /proc/sys/net/ipv4/conf/${bridge}/route_localnet`).trim();
  const rules = () =>
    spawnSync('nsenter', ['-t', String(host.pid), '-n', '--', 'nft', 'list', 'table', 'ip', 'berth'], {
      encoding: 'utf8',
    }).stdout;
  /** The input rule that drops what comes from the bridge for 127/8 unless DNATed. */
  const guard = (bridge: string) =>
    new RegExp(
      `iifname "${bridge}" ip daddr 127\\.0\\.0\\.0/8 ct status ! dnat drop comment "berth:n:${bridge}"`,
    );
  /** A TCP service in the host namespace that answers `text` and closes. */
  const serve = async (address: string, port: number, text: string) => {
    const p = spawn(
      'nsenter',
      [
        '-t',
        String(host.pid),
        '-n',
        '--',
        process.execPath,
        '-e',
        `require('node:net').createServer((s) => s.end(${JSON.stringify(`${text}\n`)})).listen(${port}, ${JSON.stringify(address)}, () => console.log('up'))`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    servers.push(p);
    await new Promise<void>((resolve) => p.stdout!.once('data', () => resolve()));
  };
  /**
   * What a container that can send raw packets does (the CVE-2020-8558 proofs of concept; here
   * with routes in its own namespace): a connection to 127.0.0.1:PORT sent to the gateway's MAC.
   */
  const viaGatewayToLoopback = (c: TestNetns, gateway: string, address: string, port: number) =>
    sh(
      c,
      `sysctl -qw net.ipv4.conf.eth0.route_localnet=1
       ip route add 127.0.0.1/32 via ${gateway} dev eth0 src ${address} table 100
       ip rule add to 127.0.0.1 lookup 100 pref 0
       ip rule del pref 0 lookup local
       ip rule add pref 10 lookup local
       timeout 5 busybox nc 127.0.0.1 ${port} </dev/null || echo '(blocked)'`,
    );

  beforeAll(async () => {
    expect(existsSync(dist) && existsSync(plugin), 'build @berth/network first').toBe(true);
    host = await ns();
  });
  afterAll(async () => {
    for (const s of servers) s.kill('SIGKILL');
    for (const n of opened) await n.close();
    tmp.remove();
  });

  it("an --internal network's container does not reach the host's 127.0.0.1 services; a port published on 127.0.0.1 reaches it", async () => {
    const c = await ns();
    const bridge = uniqueName('bi');
    const secret = 20000 + Math.floor(Math.random() * 20000);
    const port = secret + 1;
    inHost(`await store.create('int', { subnet: '10.213.7.0/24', bridge: ${JSON.stringify(bridge)}, internal: true });
      return net.attach({ containerId: 'c1', netns: { pid: ${c.pid} }, network: 'int', store, publish: ['127.0.0.1:${port}:80'] });`);
    // the bridge routes 127/8 (for the published port), and its guard is there; nothing masquerades the subnet
    expect(localnet(bridge)).toBe('1');
    expect(rules()).toMatch(guard(bridge));
    expect(rules()).not.toContain('ip saddr 10.213.7.0/24');

    await serve('127.0.0.1', secret, 'SECRET from 127.0.0.1');
    await serve('10.213.7.1', secret, 'the gateway answers');
    // the control: the path to the gateway works
    expect(sh(c, `timeout 5 busybox nc 10.213.7.1 ${secret} </dev/null`)).toBe('the gateway answers\n');
    const stolen = viaGatewayToLoopback(c, '10.213.7.1', '10.213.7.2', secret);
    expect(stolen).not.toContain('SECRET');
    expect(stolen).toContain('(blocked)');

    // the published port on 127.0.0.1 still works: the host reaches the container's httpd there
    c.spawn(['busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
    let body = '';
    for (let i = 0; i < 50 && !body; i++) {
      const r = spawnSync(
        'nsenter',
        [
          '-t',
          String(host.pid),
          '-n',
          '--',
          'wget',
          '-q',
          '-T',
          '2',
          '-t',
          '1',
          '-O',
          '-',
          `http://127.0.0.1:${port}/hostname`,
        ],
        { encoding: 'utf8' },
      );
      body = r.status === 0 ? r.stdout : '';
      if (!body) await new Promise((r) => setTimeout(r, 100));
    }
    expect(body).toBe(execFileSync('cat', ['/etc/hostname']).toString());

    inHost(`await net.detach('c1', 'int', { store });`);
    expect(rules()).not.toContain('berth:c:c1');
    expect(sh(host, 'ip -o link show')).not.toMatch(/: bv[0-9a-f]{12}/);
  });

  it("a VM's tap on an --internal network: the bridge routes 127/8 only with the guard", async () => {
    const bridge = uniqueName('bv');
    inHost(`await store.create('vmint', { subnet: '10.213.8.0/24', bridge: ${JSON.stringify(bridge)}, internal: true });
      return net.attach({ containerId: 'vm1', tap: true, network: 'vmint', store, holder: { pid: process.pid } });`);
    expect(localnet(bridge)).toBe('1');
    expect(rules()).toMatch(guard(bridge));
    inHost(`await net.detach('vm1', 'vmint', { store });`);
    expect(sh(host, `ip -o link show master ${bridge}`).trim()).toBe('');
  });

  it('the CNI plugin with ipMasq false: its bridge does not route 127/8, and one that does gets the guard', async () => {
    const c = await ns();
    const bridge = uniqueName('bc');
    const config = {
      cniVersion: '1.0.0',
      name: 'cnint',
      type: 'berth-bridge',
      bridge,
      subnet: '10.213.9.0/24',
      ipMasq: false,
      dataDir: join(tmp.dir, 'cni'),
    };
    const cni = (command: string, id: string, n: TestNetns) => {
      const r = spawnSync('nsenter', ['-t', String(host.pid), '-n', '--', plugin], {
        env: {
          ...process.env,
          CNI_COMMAND: command,
          CNI_CONTAINERID: id,
          CNI_NETNS: `/proc/${n.pid}/ns/net`,
          CNI_IFNAME: 'eth0',
          CNI_PATH: join(plugin, '..'),
        },
        input: JSON.stringify(config),
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    };
    cni('ADD', 'k1', c);
    // berth-bridge publishes no port: nothing needs 127/8 routed, and nothing is
    expect(localnet(bridge)).toBe('0');
    expect(rules()).not.toContain(`berth:n:${bridge}`);

    // the bridge routes 127/8 anyway (a chained portmap plugin, an operator, an older berth)
    sh(host, `echo 1 > /proc/sys/net/ipv4/conf/${bridge}/route_localnet`);
    const c2 = await ns();
    cni('ADD', 'k2', c2);
    expect(rules()).toMatch(guard(bridge));
    const secret = 20000 + Math.floor(Math.random() * 20000);
    await serve('127.0.0.1', secret, 'SECRET from 127.0.0.1');
    const stolen = viaGatewayToLoopback(c2, '10.213.9.1', '10.213.9.3', secret);
    expect(stolen).not.toContain('SECRET');
    expect(stolen).toContain('(blocked)');

    cni('DEL', 'k1', c);
    cni('DEL', 'k2', c2);
    expect(sh(host, `ip -o link show master ${bridge}`).trim()).toBe('');
  });
});
