import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, Sandbox } from './helpers.js';

// this file's own network: a unique bridge and subnet, its own state directory (parallel-safe)
const sb = new Sandbox();
const used = execFileSync('ip', ['-4', 'route', 'show']).toString();
let third = 1 + (randomBytes(1)[0]! % 250);
while (used.includes(`10.213.${third}.`)) third = 1 + (randomBytes(1)[0]! % 250);
const bridge = `bt${randomBytes(4).toString('hex')}`;
const netDir = join(sb.dir, 'net');
process.env['BERTH_NETWORK_DIR'] = netDir;
process.env['BERTH_DEFAULT_SUBNET'] = `10.213.${third}.0/24`;
process.env['BERTH_DEFAULT_BRIDGE'] = bridge;

const nftRules = (): string => {
  const r = spawnSync('nft', ['list', 'table', 'ip', 'berth'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout : '';
};
const hostLinks = () => readdirSync('/sys/class/net');
const leases = (network = 'bridge') => {
  const f = join(netDir, 'leases', `${network}.json`);
  return existsSync(f)
    ? (JSON.parse(readFileSync(f, 'utf8')) as Array<{ containerId: string; address: string }>)
    : [];
};

afterAll(() => {
  sb.cleanup();
  spawnSync('ip', ['link', 'del', bridge]);
  // this bridge's masquerade and loopback-guard rules (tagged with its name) go with it
  for (const chain of ['postrouting', 'input']) {
    const listed = spawnSync('nft', ['-a', 'list', 'chain', 'ip', 'berth', chain], {
      encoding: 'utf8',
    }).stdout;
    for (const m of listed.matchAll(new RegExp(`"berth:n:${bridge}" # handle (\\d+)`, 'g')))
      spawnSync('nft', ['delete', 'rule', 'ip', 'berth', chain, 'handle', m[1]!]);
  }
});

/** One UDP datagram sent as an Ethernet frame to a MAC (AF_PACKET: CAP_NET_RAW in the container's netns). */
const FRAME_SENDER = `#include <arpa/inet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <netpacket/packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
static unsigned short sum(const void *p, int n) {
  unsigned long s = 0; const unsigned short *w = p;
  for (; n > 1; n -= 2) s += *w++;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (unsigned short)~s;
}
/* send IFNAME MAC SRC DST PORT TEXT */
int main(int argc, char **argv) {
  if (argc != 7) return 2;
  int fd = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
  if (fd < 0) { perror("socket"); return 1; }
  struct sockaddr_ll to = {0};
  to.sll_family = AF_PACKET; to.sll_protocol = htons(ETH_P_IP); to.sll_halen = 6;
  to.sll_ifindex = if_nametoindex(argv[1]);
  unsigned int m[6];
  if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) return 2;
  for (int i = 0; i < 6; i++) to.sll_addr[i] = (unsigned char)m[i];
  unsigned char pkt[1500] = {0};
  struct iphdr *ip = (struct iphdr *)pkt; struct udphdr *udp = (struct udphdr *)(pkt + 20);
  int n = (int)strlen(argv[6]);
  memcpy(pkt + 28, argv[6], n);
  ip->version = 4; ip->ihl = 5; ip->ttl = 64; ip->protocol = IPPROTO_UDP; ip->tot_len = htons(28 + n);
  ip->saddr = inet_addr(argv[3]); ip->daddr = inet_addr(argv[4]); ip->check = sum(ip, 20);
  udp->source = htons(40000); udp->dest = htons(atoi(argv[5])); udp->len = htons(8 + n);
  if (sendto(fd, pkt, 28 + n, 0, (struct sockaddr *)&to, sizeof to) < 0) { perror("sendto"); return 1; }
  return 0;
}
`;

describe('berth run --network bridge (root)', () => {
  it('runs two containers that reach each other by address and name, publishes a port on 127.0.0.1, and delete leaves nothing', async () => {
    const a = sb.id('web');
    const b = sb.id('cli');
    const port = 20000 + Math.floor(Math.random() * 20000);
    const ra = sb.detached([
      'run',
      '-d',
      '--name',
      a,
      '-p',
      `127.0.0.1:${port}:80`,
      'busybox',
      'httpd',
      '-f',
      '-p',
      '80',
      '-h',
      '/etc',
    ]);
    expect(ra.stderr).toBe('');
    expect(ra.status).toBe(0);
    const rb = sb.detached([
      'run',
      '-d',
      '--name',
      b,
      '--add-host',
      'db.example:10.1.2.3',
      'busybox',
      'sleep',
      '600',
    ]);
    expect(rb.status, rb.stderr).toBe(0);
    const addrA = `10.213.${third}.2`;
    expect(
      leases()
        .map((l) => l.address)
        .sort(),
    ).toEqual([`10.213.${third}.2/24`, `10.213.${third}.3/24`]);

    // the published port answers wget on the host's loopback: /etc/hostname of the container
    let body = '';
    for (let i = 0; i < 50 && !body; i++) {
      const r = spawnSync(
        'wget',
        ['-q', '-T', '2', '-t', '1', '-O', '-', `http://127.0.0.1:${port}/hostname`],
        { encoding: 'utf8' },
      );
      body = r.status === 0 ? r.stdout : '';
      if (!body) await new Promise((r) => setTimeout(r, 100));
    }
    expect(body).toBe(`${a}\n`);

    // by address and by name, from the other container (no -T: busybox-static's wget crashes with it)
    const byAddr = sb.berth(['exec', b, 'wget', '-q', '-O', '-', `http://${addrA}/hostname`]);
    expect(byAddr.stdout, byAddr.stderr).toBe(`${a}\n`);
    const byName = sb.berth(['exec', b, 'wget', '-q', '-O', '-', `http://${a}/hostname`]);
    expect(byName.stdout, byName.stderr).toBe(`${a}\n`);
    const hosts = sb.berth(['exec', b, 'cat', '/etc/hosts']).stdout;
    expect(hosts).toContain(`10.213.${third}.3\t${b}`);
    expect(hosts).toContain('10.1.2.3\tdb.example');
    expect(sb.berth(['exec', b, 'cat', '/etc/resolv.conf']).stdout).toMatch(/^nameserver /m);

    // berth ps shows the address and the port
    const ps = sb.berth(['ps']).stdout;
    expect(ps).toMatch(
      new RegExp(`${a} .*running\\s+bridge\\s+${addrA}/24\\s+127\\.0\\.0\\.1:${port}->80/tcp`),
    );
    const json = JSON.parse(sb.berth(['ps', '--format', 'json']).stdout) as Array<{
      id: string;
      ports: string[];
    }>;
    expect(json.find((c) => c.id === a)?.ports).toEqual([`127.0.0.1:${port}->80/tcp`]);

    // a second container may not take that host port; the failed run leaves nothing
    const clash = sb.detached([
      'run',
      '-d',
      '--name',
      sb.id('clash'),
      '-p',
      `127.0.0.1:${port}:81`,
      'busybox',
      'true',
    ]);
    expect(clash.status).toBe(1);
    expect(clash.stderr).toMatch(/host port \d+\/tcp is already published by container/);
    expect(leases()).toHaveLength(2);

    for (const id of [a, b]) expect(sb.berth(['delete', '-f', id]).status).toBe(0);
    expect(leases()).toEqual([]);
    expect(nftRules()).not.toContain(`berth:c:${a}`);
    expect(
      hostLinks().filter(
        (l) =>
          l.startsWith('bv') && readFileSync(`/sys/class/net/${l}/master/uevent`, 'utf8').includes(bridge),
      ),
    ).toEqual([]);
    expect(readdirSync(join('/sys/class/net', bridge, 'brif'))).toEqual([]);
    expect(sb.mounts()).toEqual([]);
    expect(sb.states()).toEqual([]);
  });

  it('gives 20 parallel run/delete cycles 20 different addresses and leaves no lease, veth or rule', async () => {
    const ids = Array.from({ length: 20 }, () => sb.id('par'));
    const cli = (args: string[]) =>
      new Promise<{ code: number | null; err: string }>((resolve) => {
        const p = sb.spawn(args);
        let err = '';
        p.stderr.on('data', (d) => (err += d));
        p.on('exit', (code) => resolve({ code, err }));
      });
    // all 20 hold their address at once: any collision would show
    const runs = await Promise.all(
      ids.map((id) => cli(['run', '-d', '--name', id, 'busybox', 'sleep', '600'])),
    );
    for (const r of runs) expect(r.code, r.err).toBe(0);
    const held = leases();
    expect(held.map((l) => l.containerId).sort()).toEqual([...ids].sort());
    expect(new Set(held.map((l) => l.address)).size).toBe(20);
    expect(readdirSync(join('/sys/class/net', bridge, 'brif'))).toHaveLength(20);
    const deletes = await Promise.all(ids.map((id) => cli(['delete', '-f', id])));
    for (const r of deletes) expect(r.code, r.err).toBe(0);
    expect(leases()).toEqual([]);
    expect(readdirSync(join('/sys/class/net', bridge, 'brif'))).toEqual([]);
    for (const id of ids) expect(nftRules()).not.toContain(`berth:c:${id}`);
    expect(sb.states()).toEqual([]);
  }, 400_000);

  it("a container cannot reach the host's loopback services through the bridge (CVE-2020-8558), while its published port on 127.0.0.1 still works", async () => {
    const tools = join(sb.dir, 'frame');
    mkdirSync(tools, { recursive: true });
    writeFileSync(join(tools, 'send.c'), FRAME_SENDER);
    execFileSync('gcc', ['-static', '-O1', '-o', join(tools, 'send'), join(tools, 'send.c')]);
    // a host service on 127.0.0.1 only, and (the control) one on the bridge's gateway address
    const gateway = `10.213.${third}.1`;
    const got: string[] = [];
    const listen = async (address: string) => {
      const s = createSocket('udp4');
      s.on('message', (m) => got.push(`${address} ${m.toString()}`));
      await new Promise<void>((r) => s.bind(0, address, () => r()));
      return s;
    };
    const loopback = await listen('127.0.0.1');
    const gw = await listen(gateway);
    const id = sb.id('lonet');
    try {
      const r = sb.detached([
        'run',
        '-d',
        '--name',
        id,
        '-v',
        `${tools}:/tools:ro`,
        'busybox',
        'sleep',
        '300',
      ]);
      expect(r.status, r.stderr).toBe(0);
      const inContainer = (script: string) =>
        sb.berth(['exec', '--cap', 'CAP_NET_RAW', id, 'sh', '-c', script]);
      // the gateway's MAC, learnt with one ping
      const mac = inContainer(
        `ping -c1 -W2 ${gateway} >/dev/null; ip neigh show ${gateway} | awk '{print $5}'`,
      ).stdout.trim();
      expect(mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      const send = (dst: string, port: number, text: string) =>
        inContainer(
          `/tools/send eth0 ${mac} $(ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1) ${dst} ${port} ${text}`,
        );
      expect(send(gateway, (gw.address() as { port: number }).port, 'to-gateway').status).toBe(0);
      expect(send('127.0.0.1', (loopback.address() as { port: number }).port, 'to-loopback').status).toBe(0);
      await new Promise((r) => setTimeout(r, 1000));
      // the frame path works (the control arrived); the one for 127.0.0.1 was dropped at the bridge
      expect(got).toEqual([`${gateway} to-gateway`]);
    } finally {
      loopback.close();
      gw.close();
      sb.berth(['delete', '--force', id]);
    }
  });

  it('--network container:NAME joins the namespace of that container, the one named when it is asked for', () => {
    const first = sb.id('netowner');
    expect(
      sb.detached(['run', '-d', '--name', first, '--network', 'none', 'busybox', 'sleep', '60']).status,
    ).toBe(0);
    try {
      const pid = JSON.parse(sb.berth(['state', first]).stdout).pid as number;
      const theirs = readlinkSync(`/proc/${pid}/ns/net`);
      const joined = sb.berth([
        'run',
        '--rm',
        '--network',
        `container:${first}`,
        'busybox',
        'readlink',
        '/proc/self/ns/net',
      ]);
      expect(joined.stderr).toBe('');
      expect(joined.stdout.trim()).toBe(theirs);
      // once that container has stopped there is nothing to join
      expect(sb.berth(['kill', first, 'KILL']).status).toBe(0);
      for (let i = 0; i < 100 && JSON.parse(sb.berth(['state', first]).stdout).status !== 'stopped'; i++)
        execFileSync('sleep', ['0.05']);
      const late = sb.berth(['run', '--rm', '--network', `container:${first}`, 'busybox', 'true']);
      expect(late.status).toBe(1);
      expect(late.stderr).toContain(`--network container:${first}: container ${first} is stopped`);
    } finally {
      sb.berth(['delete', '--force', first]);
    }
    expect(sb.states()).toEqual([]);
  });

  it('names what is wrong with a network flag, and makes nothing', () => {
    const bad = sb.berth(['run', '--rm', '-p', '70000:80', 'busybox', 'true']);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toContain('-p "70000:80": port "70000" is not 1-65535');
    const none = sb.berth(['run', '--rm', '--network', 'none', '-p', '80', 'busybox', 'true']);
    expect(none.stderr).toContain('--publish needs a bridge network, not --network none');
    const missing = sb.berth(['run', '--rm', '--network', 'nosuchnet', 'busybox', 'true']);
    expect(missing.stderr).toContain('network nosuchnet does not exist');
    expect(sb.states()).toEqual([]);
    expect(leases()).toEqual([]);
  });
});

/**
 * A network namespace of the test's own (a `sleep` in `unshare --net`) where berth runs: its
 * bridges, links, leases and nft table are the namespace's, and go with it.
 */
async function privateNetns() {
  const child = spawn('unshare', ['--net', '--', 'sleep', '600'], { stdio: 'ignore' });
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => resolve(child.pid!));
  });
  const self = execFileSync('readlink', ['/proc/self/ns/net']).toString();
  for (let i = 0; i < 200; i++) {
    const r = spawnSync('readlink', [`/proc/${pid}/ns/net`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout !== self) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const dir = join(sb.dir, `netns-${pid}`);
  const env = { ...process.env, BERTH_STORE: sb.store, BERTH_NETWORK_DIR: dir };
  const sh = (cmd: string[]) =>
    spawnSync('nsenter', ['-t', String(pid), '-n', '--', ...cmd], { encoding: 'utf8', env, timeout: 60_000 });
  const berthArgs = (args: string[]) => [process.execPath, CLI, '--root', sb.root, ...args];
  sh(['ip', 'link', 'set', 'lo', 'up']);
  return {
    pid,
    dir,
    sh,
    berth: (args: string[]) => sh(berthArgs(args)),
    /** run -d: the container's process keeps berth's stdout and stderr, so they go to files */
    detached(args: string[]) {
      const out = join(sb.dir, `ns-out-${randomBytes(4).toString('hex')}`);
      const fo = openSync(out, 'w');
      const fe = openSync(`${out}.err`, 'w');
      try {
        const r = spawnSync('nsenter', ['-t', String(pid), '-n', '--', ...berthArgs(args)], {
          env,
          stdio: ['ignore', fo, fe],
          timeout: 60_000,
        });
        return { status: r.status, stderr: readFileSync(`${out}.err`, 'utf8') };
      } finally {
        closeSync(fo);
        closeSync(fe);
      }
    },
    leases: (network: string) => {
      const f = join(dir, 'leases', `${network}.json`);
      return existsSync(f)
        ? (JSON.parse(readFileSync(f, 'utf8')) as Array<{ containerId: string; address: string }>)
        : [];
    },
    /** berth's nft table in the namespace */
    rules: () => sh(['nft', 'list', 'table', 'ip', 'berth']).stdout ?? '',
    links: () => sh(['ip', '-o', 'link', 'show']).stdout,
    async close() {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}

describe('berth network: ports and bridges that are not the container’s (root; a private network namespace)', () => {
  it("a stopped container's published port does not reach the next container given its address; its delete still works", async () => {
    const ns = await privateNetns();
    const a = sb.id('stopped');
    const b = sb.id('next');
    const bridge = `bt${randomBytes(4).toString('hex')}`;
    const port = 20000 + Math.floor(Math.random() * 20000);
    try {
      const made = ns.berth(['network', 'create', '--subnet', '10.213.1.0/24', '--bridge', bridge, 'n1']);
      expect(made.status, made.stderr).toBe(0);
      // a publishes 127.0.0.1:PORT and stops at once; it is kept (not --rm)
      const ra = ns.detached([
        'run',
        '-d',
        '--name',
        a,
        '--network',
        'n1',
        '-p',
        `127.0.0.1:${port}:80`,
        'busybox',
        'true',
      ]);
      expect(ra.status, ra.stderr).toBe(0);
      let status = '';
      for (let i = 0; i < 100 && status !== 'stopped'; i++) {
        const st = ns.berth(['state', a]);
        status = st.status === 0 ? (JSON.parse(st.stdout) as { status: string }).status : '';
        if (status !== 'stopped') await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe('stopped');
      expect(ns.rules()).toContain(`berth:c:${a}`);
      // its lease lives as long as its init: gone once reaped (by whoever it was reparented to)
      const holder = (ns.leases('n1') as Array<{ holder?: { pid: number } }>)[0]?.holder?.pid;
      expect(holder).toBeGreaterThan(0);
      for (let i = 0; i < 200 && existsSync(`/proc/${holder}`); i++)
        await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(`/proc/${holder}`)).toBe(false);
      // b publishes nothing and gets a's address: a's rule goes when its lease is taken back
      const rb = ns.detached([
        'run',
        '-d',
        '--name',
        b,
        '--network',
        'n1',
        'busybox',
        'httpd',
        '-f',
        '-p',
        '80',
        '-h',
        '/etc',
      ]);
      expect(rb.status, rb.stderr).toBe(0);
      expect(ns.leases('n1')).toMatchObject([{ containerId: b, address: '10.213.1.2/24' }]);
      const wget = (url: string) => ns.sh(['wget', '-q', '-T', '2', '-t', '1', '-O', '-', url]);
      let direct = '';
      for (let i = 0; i < 50 && !direct; i++) {
        const r = wget('http://10.213.1.2/hostname');
        direct = r.status === 0 ? r.stdout : '';
        if (!direct) await new Promise((r) => setTimeout(r, 100));
      }
      expect(direct).toBe(`${b}\n`);
      const viaA = wget(`http://127.0.0.1:${port}/hostname`);
      expect(viaA.stdout).toBe('');
      expect(viaA.status).not.toBe(0);
      expect(ns.rules()).not.toContain(`berth:c:${a}`);

      // a's delete afterwards: it works, and leaves b's lease alone
      const da = ns.berth(['delete', a]);
      expect(da.status, da.stderr).toBe(0);
      expect(ns.leases('n1').map((l) => l.containerId)).toEqual([b]);
      expect(ns.berth(['delete', '-f', b]).status).toBe(0);
      expect(ns.leases('n1')).toEqual([]);
      expect(ns.rules()).not.toContain('berth:c:');
      const rm = ns.berth(['network', 'rm', 'n1']);
      expect(rm.status, rm.stderr).toBe(0);
      expect(ns.links()).not.toContain(bridge);
      expect(ns.links()).not.toMatch(/: bv[0-9a-f]{12}/);
    } finally {
      for (const id of [a, b]) if (sb.states().includes(id)) ns.berth(['delete', '-f', id]);
      await ns.close();
    }
    expect(sb.states()).toEqual([]);
  });

  it('network create refuses a host link that is not a bridge; network rm deletes only a bridge berth made, with nothing else on it', async () => {
    const ns = await privateNetns();
    const ids: string[] = [];
    const run = (network: string) => {
      const id = sb.id('br');
      ids.push(id);
      const r = ns.detached(['run', '-d', '--name', id, '--network', network, 'busybox', 'sleep', '60']);
      expect(r.status, r.stderr).toBe(0);
      return id;
    };
    const addresses = (link: string) =>
      ns.sh(['ip', '-4', '-o', 'addr', 'show', 'dev', link]).stdout.match(/inet \S+/g) ?? [];
    const exists = (link: string) => ns.sh(['ip', 'link', 'show', link]).status === 0;
    try {
      // "eth0": the host's NIC (a veth here); a network on it is refused and it stays
      expect(ns.sh(['ip', 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'peer0']).status).toBe(0);
      ns.sh(['ip', 'addr', 'add', '172.31.9.2/24', 'dev', 'eth0']);
      const bad = ns.berth(['network', 'create', '--subnet', '10.213.2.0/24', '--bridge', 'eth0', 'n2']);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain(
        '--bridge eth0: this host has a link of that name (veth) and it is not a bridge: name a bridge, or a name no link has (berth then makes the bridge)',
      );
      expect(ns.berth(['network', 'inspect', 'n2']).status).not.toBe(0);
      expect(exists('eth0') && exists('peer0')).toBe(true);

      // the host's own bridge: used as it is (its subnet, no address or sysctl of berth's), kept by rm
      ns.sh(['ip', 'link', 'add', 'hostbr', 'type', 'bridge']);
      ns.sh(['ip', 'addr', 'add', '10.213.3.1/24', 'dev', 'hostbr']);
      ns.sh(['ip', 'link', 'set', 'hostbr', 'up']);
      const other = ns.berth(['network', 'create', '--subnet', '10.213.9.0/24', '--bridge', 'hostbr', 'n3']);
      expect(other.status).toBe(1);
      expect(other.stderr).toContain(
        'the bridge exists with address 10.213.3.1/24, not the gateway 10.213.9.1/24',
      );
      const made = ns.berth(['network', 'create', '--bridge', 'hostbr', 'n3']);
      expect(made.status, made.stderr).toBe(0);
      expect(JSON.parse(ns.berth(['network', 'inspect', 'n3']).stdout)).toMatchObject([
        { bridge: 'hostbr', subnet: { cidr: '10.213.3.0/24', gateway: '10.213.3.1' }, ownBridge: false },
      ]);
      const c3 = run('n3');
      expect(ns.leases('n3')).toMatchObject([{ containerId: c3, address: '10.213.3.2/24' }]);
      expect(addresses('hostbr')).toEqual(['inet 10.213.3.1/24']);
      expect(ns.sh(['cat', '/proc/sys/net/ipv4/conf/hostbr/route_localnet']).stdout.trim()).toBe('0');
      expect(ns.berth(['delete', '-f', c3]).status).toBe(0);
      const rm3 = ns.berth(['network', 'rm', 'n3']);
      expect(rm3.status, rm3.stderr).toBe(0);
      expect(exists('hostbr')).toBe(true);
      expect(addresses('hostbr')).toEqual(['inet 10.213.3.1/24']);

      // berth's bridge with a link that is not the network's on it: kept, and the link too
      expect(
        ns.berth(['network', 'create', '--subnet', '10.213.4.0/24', '--bridge', 'berthbr', 'n4']).status,
      ).toBe(0);
      const c4 = run('n4');
      expect(ns.berth(['delete', '-f', c4]).status).toBe(0);
      ns.sh(['ip', 'link', 'add', 'other0', 'type', 'veth', 'peer', 'name', 'other1']);
      ns.sh(['ip', 'link', 'set', 'other0', 'master', 'berthbr']);
      const rm4 = ns.berth(['network', 'rm', 'n4']);
      expect(rm4.status, rm4.stderr).toBe(0);
      expect(rm4.stderr).toContain("bridge berthbr is kept: links that are not this network's are on it");
      expect(exists('berthbr') && exists('other0')).toBe(true);
      // kept without its loopback guard (removed with the network's rules): it routes 127/8 no more
      expect(ns.sh(['cat', '/proc/sys/net/ipv4/conf/berthbr/route_localnet']).stdout.trim()).toBe('0');
      expect(ns.rules()).not.toContain('berth:n:berthbr');

      // berth's bridge with nothing on it: removed
      expect(
        ns.berth(['network', 'create', '--subnet', '10.213.5.0/24', '--bridge', 'berthbr5', 'n5']).status,
      ).toBe(0);
      const c5 = run('n5');
      expect(exists('berthbr5')).toBe(true);
      expect(ns.berth(['delete', '-f', c5]).status).toBe(0);
      const rm5 = ns.berth(['network', 'rm', 'n5']);
      expect(rm5.status, rm5.stderr).toBe(0);
      expect(exists('berthbr5')).toBe(false);
      expect(ns.rules()).not.toContain('berth:c:');
    } finally {
      for (const id of ids) if (sb.states().includes(id)) ns.berth(['delete', '-f', id]);
      await ns.close();
    }
    expect(sb.states()).toEqual([]);
  });

  it("an --internal network's container (CAP_NET_RAW) does not reach the host's 127.0.0.1 services (CVE-2020-8558); its port published on 127.0.0.1 works", async () => {
    const ns = await privateNetns();
    const tools = join(sb.dir, 'frame-internal');
    mkdirSync(tools, { recursive: true });
    writeFileSync(join(tools, 'send.c'), FRAME_SENDER);
    execFileSync('gcc', ['-static', '-O1', '-o', join(tools, 'send'), join(tools, 'send.c')]);
    const bridge = `bt${randomBytes(4).toString('hex')}`;
    const gateway = '10.213.6.1';
    const port = 20000 + Math.floor(Math.random() * 20000);
    const id = sb.id('internal');
    let listener: ReturnType<typeof spawn> | undefined;
    let heard = '';
    try {
      const made = ns.berth([
        'network',
        'create',
        '--internal',
        '--subnet',
        '10.213.6.0/24',
        '--bridge',
        bridge,
        'ni',
      ]);
      expect(made.status, made.stderr).toBe(0);
      const r = ns.detached([
        'run',
        '-d',
        '--name',
        id,
        '--network',
        'ni',
        '-p',
        `127.0.0.1:${port}:80`,
        '-v',
        `${tools}:/tools:ro`,
        'busybox',
        'httpd',
        '-f',
        '-p',
        '80',
        '-h',
        '/etc',
      ]);
      expect(r.status, r.stderr).toBe(0);
      // the host's services in the namespace (the gateway's address exists now): UDP on 127.0.0.1 only, and (the control) on the gateway
      listener = spawn(
        'nsenter',
        [
          '-t',
          String(ns.pid),
          '-n',
          '--',
          process.execPath,
          '-e',
          `const d = require('node:dgram');
           let up = 0;
           for (const [a, p] of [['127.0.0.1', ${port + 1}], ['${gateway}', ${port + 2}]]) {
             const s = d.createSocket('udp4');
             s.on('message', (m) => console.log(a + ' ' + m));
             s.bind(p, a, () => ++up === 2 && console.log('up'));
           }`,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      listener.stdout!.on('data', (d) => (heard += d));
      for (let i = 0; i < 100 && !heard.includes('up'); i++) await new Promise((r) => setTimeout(r, 50));
      expect(ns.sh(['cat', `/proc/sys/net/ipv4/conf/${bridge}/route_localnet`]).stdout.trim()).toBe('1');
      expect(ns.rules()).toContain(`iifname "${bridge}" ip daddr 127.0.0.0/8 ct status ! dnat drop`);
      const inContainer = (script: string) =>
        ns.berth(['exec', '--cap', 'CAP_NET_RAW', id, 'sh', '-c', script]);
      const mac = inContainer(
        `ping -c1 -W2 ${gateway} >/dev/null; ip neigh show ${gateway} | awk '{print $5}'`,
      ).stdout.trim();
      expect(mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
      const send = (dst: string, p: number, text: string) =>
        inContainer(`/tools/send eth0 ${mac} 10.213.6.2 ${dst} ${p} ${text}`).status;
      expect(send(gateway, port + 2, 'to-gateway')).toBe(0);
      expect(send('127.0.0.1', port + 1, 'to-loopback')).toBe(0);
      await new Promise((r) => setTimeout(r, 1000));
      // the frame path works (the control arrived); the one for 127.0.0.1 was dropped at the bridge
      expect(heard).toBe(`up\n${gateway} to-gateway\n`);
      // the port published on 127.0.0.1 reaches the container's httpd
      let body = '';
      for (let i = 0; i < 50 && !body; i++) {
        const w = ns.sh(['wget', '-q', '-T', '2', '-t', '1', '-O', '-', `http://127.0.0.1:${port}/hostname`]);
        body = w.status === 0 ? w.stdout : '';
        if (!body) await new Promise((r) => setTimeout(r, 100));
      }
      expect(body).toBe(`${id}\n`);
      expect(ns.berth(['delete', '-f', id]).status).toBe(0);
      const rm = ns.berth(['network', 'rm', 'ni']);
      expect(rm.status, rm.stderr).toBe(0);
      expect(ns.rules()).not.toMatch(/berth:[cn]:/);
      expect(ns.links()).not.toContain(bridge);
    } finally {
      listener?.kill('SIGKILL');
      if (sb.states().includes(id)) ns.berth(['delete', '-f', id]);
      await ns.close();
    }
    expect(sb.states()).toEqual([]);
  });

  it('refuses a --hostname or --dns-search that would add lines to the hosts and resolv.conf files, and subnets a bridge cannot use; nothing is made', async () => {
    const ns = await privateNetns();
    try {
      const bad = ns.berth(['run', '--rm', '--hostname', 'web\n10.213.3.66 bank.example', 'busybox', 'true']);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain(
        '--hostname "web\\n10.213.3.66 bank.example": must be a hostname: letters, digits and hyphens in labels separated by dots (RFC 1123), at most 64 characters',
      );
      const search = ns.berth([
        'run',
        '--rm',
        '--dns-search',
        'corp.example\nnameserver 10.213.3.66',
        'busybox',
        'true',
      ]);
      expect(search.status).toBe(1);
      expect(search.stderr).toContain(
        '--dns-search "corp.example\\nnameserver 10.213.3.66": must be a domain name: letters, digits, - and _ in labels separated by dots (or . for none)',
      );
      for (const [subnet, what] of [
        ['127.0.0.0/24', '127.0.0.0/8 (loopback)'],
        ['224.0.0.0/24', '224.0.0.0/4 (multicast)'],
        ['169.254.7.0/24', '169.254.0.0/16 (link-local)'],
        ['240.0.0.0/24', '240.0.0.0/4 (reserved'],
      ]) {
        const r = ns.berth(['network', 'create', '--subnet', subnet!, 'nr']);
        expect(r.status).toBe(1);
        expect(r.stderr).toContain(`subnet "${subnet}": overlaps ${what}`);
      }
      expect(ns.berth(['network', 'inspect', 'nr']).status).not.toBe(0);
      expect(ns.leases('bridge')).toEqual([]);
      expect(ns.links()).not.toMatch(/: bv[0-9a-f]{12}/);
    } finally {
      await ns.close();
    }
    expect(sb.states()).toEqual([]);
  });
});
