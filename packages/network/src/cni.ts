import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, type NetSys, netlibc } from '@berth/sys';
import type { IPv4Address } from './address.js';
import { hostLinkName } from './attach.js';
import { Bridge } from './bridge.js';
import { makeSubnet } from './ip.js';
import { FileIpam } from './ipam.js';
import { NftNat } from './nat.js';
import { rtnetlink } from './netlink.js';

/** CNI spec 1.0 error codes (SPEC.md, "Error"). */
export const CNI_ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  TRY_AGAIN: 11,
} as const;

export const CNI_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0'];

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }

  toJSON(cniVersion = '1.0.0'): Record<string, unknown> {
    return {
      cniVersion,
      code: this.code,
      msg: this.message,
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

/** The berth-bridge network configuration (stdin). */
export interface BerthBridgeConfig {
  cniVersion: string;
  name: string;
  type: string;
  /** The bridge link (default `cni-berth0`). */
  bridge?: string;
  /** The subnet: here or as `ipam.subnet` (the host-local style). */
  subnet?: string;
  gateway?: string;
  ipam?: { type?: string; subnet?: string; gateway?: string; dataDir?: string };
  /** Masquerade the subnet's traffic to the outside (default true). */
  ipMasq?: boolean;
  mtu?: number;
  /** Where leases are kept (default /var/lib/berth/cni). */
  dataDir?: string;
  prevResult?: CniResult;
  /** Unknown fields are refused only when their names say they matter to us. */
  [key: string]: unknown;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: Array<{ name: string; mac?: string; sandbox?: string }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number; version?: string }>;
  routes?: Array<{ dst: string; gw?: string }>;
  dns?: Record<string, unknown>;
}

export interface CniEnv {
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION';
  containerId: string;
  netns: string;
  ifname: string;
}

/** Reads CNI_* from the environment; a missing one is error 4 naming it. */
export function cniEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env['CNI_COMMAND'];
  if (command !== 'ADD' && command !== 'DEL' && command !== 'CHECK' && command !== 'VERSION')
    throw new CniError(
      CNI_ERR.INVALID_ENV,
      `CNI_COMMAND must be ADD, DEL, CHECK or VERSION, not ${JSON.stringify(command ?? '')}`,
    );
  const need = (k: string, optional = false) => {
    const v = env[k];
    if (!v && !optional) throw new CniError(CNI_ERR.INVALID_ENV, `${k} is not set`);
    return v ?? '';
  };
  if (command === 'VERSION') return { command, containerId: '', netns: '', ifname: '' };
  return {
    command,
    containerId: need('CNI_CONTAINERID'),
    // DEL must succeed even when the namespace is gone
    netns: need('CNI_NETNS', command === 'DEL'),
    ifname: need('CNI_IFNAME'),
  };
}

function parseConfig(text: string): BerthBridgeConfig {
  let conf: BerthBridgeConfig;
  try {
    conf = JSON.parse(text) as BerthBridgeConfig;
  } catch (e) {
    throw new CniError(CNI_ERR.DECODE, `network configuration is not JSON: ${(e as Error).message}`);
  }
  if (typeof conf !== 'object' || conf === null)
    throw new CniError(CNI_ERR.DECODE, 'network configuration is not an object');
  if (!CNI_VERSIONS.includes(conf.cniVersion))
    throw new CniError(
      CNI_ERR.INCOMPATIBLE_VERSION,
      `cniVersion ${JSON.stringify(conf.cniVersion)} is not one of ${CNI_VERSIONS.join(', ')}`,
    );
  if (typeof conf.name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(conf.name))
    throw new CniError(CNI_ERR.INVALID_CONFIG, 'name: must be letters, digits and _ . -');
  if (conf.ipam?.type !== undefined && conf.ipam.type !== 'berth' && conf.ipam.type !== 'host-local')
    throw new CniError(
      CNI_ERR.UNSUPPORTED_FIELD,
      `ipam.type ${JSON.stringify(conf.ipam.type)}: berth-bridge does its own IPAM`,
    );
  return conf;
}

/** Runs one berth-bridge command: the CNI plugin's whole behaviour, testable in-process. */
export async function berthBridge(
  env: CniEnv,
  stdin: string,
  sysIn?: NetSys,
): Promise<Record<string, unknown> | undefined> {
  if (env.command === 'VERSION') return { cniVersion: '1.0.0', supportedVersions: CNI_VERSIONS };
  const conf = parseConfig(stdin);
  const cidr = conf.subnet ?? conf.ipam?.subnet;
  if (!cidr)
    throw new CniError(CNI_ERR.INVALID_CONFIG, 'subnet: the network needs a subnet (or ipam.subnet)');
  let subnet: ReturnType<typeof makeSubnet>;
  try {
    subnet = makeSubnet(cidr, conf.gateway ?? conf.ipam?.gateway);
  } catch (e) {
    throw new CniError(CNI_ERR.INVALID_CONFIG, (e as Error).message);
  }
  const bridge = conf.bridge ?? 'cni-berth0';
  const ipam = new FileIpam({ stateDir: conf.dataDir ?? conf.ipam?.dataDir ?? '/var/lib/berth/cni' });
  const nat = new NftNat();
  const sys = sysIn ?? (await netlibc());
  const hostLink = hostLinkName(conf.name, env.containerId, env.ifname);
  const host = rtnetlink.openSync(sys);
  try {
    if (env.command === 'DEL') {
      await host.links.remove(hostLink);
      await ipam.release(conf.name, env.containerId, env.ifname);
      return undefined;
    }
    if (env.command === 'CHECK') {
      const prev = conf.prevResult;
      if (!prev) throw new CniError(CNI_ERR.INVALID_CONFIG, 'prevResult: CHECK needs the result of ADD');
      const lease = (await ipam.leases(conf.name)).find(
        (l) => l.containerId === env.containerId && (l.ifname ?? '') === env.ifname,
      );
      if (!lease)
        throw new CniError(
          CNI_ERR.UNKNOWN_CONTAINER,
          `container ${env.containerId} has no address on ${conf.name}`,
        );
      if (!prev.ips?.some((i) => i.address === lease.address))
        throw new CniError(CNI_ERR.INVALID_CONFIG, `prevResult has not the address ${lease.address}`);
      if (!(await host.links.get(hostLink)))
        throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `the host end ${hostLink} of ${env.ifname} is gone`);
      const inside = rtnetlink.openSync(sys, { path: env.netns });
      try {
        const have = (await inside.addresses.list(env.ifname)).map((a) => a.address);
        if (!have.includes(lease.address))
          throw new CniError(
            CNI_ERR.UNKNOWN_CONTAINER,
            `${env.ifname} in ${env.netns} has not ${lease.address}`,
          );
      } finally {
        inside.closeSync();
      }
      return undefined;
    }
    // ADD
    if (!existsSync(env.netns))
      throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `CNI_NETNS ${env.netns} does not exist`);
    const br = await Bridge.ensure(bridge, subnet, { handle: host, ...(conf.mtu ? { mtu: conf.mtu } : {}) });
    // berth-bridge publishes no port, so it never lets the bridge route 127/8 (route_localnet).
    // Where it does anyway (set by a chained portmap plugin, an operator, or an older berth),
    // the loopback guard must be there (CVE-2020-8558); ensureMasquerade installs it too.
    if (conf.ipMasq !== false) await nat.ensureMasquerade(bridge, subnet.cidr);
    else if (routesLocalnet(bridge)) await nat.ensureLoopbackGuard(bridge);
    const lease = await ipam.allocate(conf.name, subnet, env.containerId, undefined, {
      holder: { pid: 0 },
      ifname: env.ifname,
    });
    try {
      await host.links.createVeth({
        host: hostLink,
        peer: env.ifname,
        peerNetns: { path: env.netns },
        ...(conf.mtu ? { mtu: conf.mtu } : {}),
      });
      await host.links.setMaster(hostLink, bridge);
      await host.links.setUp(hostLink);
      const inside = rtnetlink.openSync(sys, { path: env.netns });
      let mac = '';
      try {
        await inside.links.setUp('lo');
        await inside.addresses.add(env.ifname, lease.address);
        await inside.links.setUp(env.ifname);
        await inside.routes.add({ destination: 'default', gateway: subnet.gateway as IPv4Address });
        mac = (await inside.links.get(env.ifname))?.mac ?? '';
      } finally {
        inside.closeSync();
      }
      const hostMac = (await host.links.get(hostLink))?.mac ?? '';
      return {
        cniVersion: conf.cniVersion,
        interfaces: [
          { name: bridge, mac: br.link.mac },
          { name: hostLink, mac: hostMac },
          { name: env.ifname, mac, sandbox: env.netns },
        ],
        ips: [
          {
            address: lease.address,
            gateway: subnet.gateway,
            interface: 2,
            ...(conf.cniVersion < '1' ? { version: '4' } : {}),
          },
        ],
        routes: [{ dst: '0.0.0.0/0', gw: subnet.gateway }],
        dns: {},
      };
    } catch (e) {
      await host.links.remove(hostLink).catch(() => undefined);
      await ipam.release(conf.name, env.containerId, env.ifname).catch(() => undefined);
      throw e;
    }
  } catch (e) {
    if (e instanceof CniError) throw e;
    const be = e as BerthError;
    throw new CniError(
      be.code === 'EIPAMEXHAUSTED' ? CNI_ERR.TRY_AGAIN : CNI_ERR.IO,
      be.message,
      be.code ?? '',
    );
  } finally {
    host.closeSync();
  }
}

/** Whether a link routes 127.0.0.0/8 (`net.ipv4.conf.LINK.route_localnet` is on). */
function routesLocalnet(link: string): boolean {
  try {
    return readFileSync(`/proc/sys/net/ipv4/conf/${link}/route_localnet`, 'utf8').trim() !== '0';
  } catch {
    return false;
  }
}

/** The plugin's main: env and stdin in, result or error JSON out, exit status 0 or 1. */
export async function berthBridgeMain(): Promise<number> {
  let version = '1.0.0';
  try {
    const chunks: Buffer[] = [];
    const env = cniEnv(process.env);
    if (env.command !== 'VERSION') for await (const c of process.stdin) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      version = (JSON.parse(text) as { cniVersion?: string }).cniVersion ?? version;
    } catch {
      // reported by berthBridge
    }
    const out = await berthBridge(env, text);
    if (out) process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  } catch (e) {
    const err = e instanceof CniError ? e : new CniError(CNI_ERR.IO, (e as Error).message);
    process.stdout.write(`${JSON.stringify(err.toJSON(version))}\n`);
    return 1;
  }
}

/**
 * A CNI driver: runs the plugins of a conflist (Debian's containernetworking-plugins
 * in /usr/lib/cni, or any CNI_PATH) as the spec says, ADD in order with each
 * result passed on as prevResult, DEL in reverse.
 */
export class CniDriver {
  constructor(
    readonly conflist: { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> },
    readonly path: string[] = ['/usr/lib/cni', '/opt/cni/bin'],
  ) {
    if (!conflist.plugins?.length)
      throw new BerthError(`conflist ${conflist.name} has no plugins`, { code: 'EINVALIDNETWORK' });
  }

  private find(type: string): string {
    for (const dir of this.path) {
      const f = join(dir, type);
      if (existsSync(f)) return f;
    }
    throw new BerthError(`CNI plugin ${type} not found in ${this.path.join(':')}`, {
      code: 'ENOTFOUND',
      path: type,
    });
  }

  private exec(
    plugin: Record<string, unknown>,
    command: string,
    env: Omit<CniEnv, 'command'>,
    prev?: unknown,
  ): Promise<CniResult | undefined> {
    const type = String(plugin['type']);
    // the list's name and version go into every plugin's config (SPEC.md, "Network configuration lists")
    const conf = {
      ...plugin,
      cniVersion: this.conflist.cniVersion,
      name: this.conflist.name,
      ...(prev ? { prevResult: prev } : {}),
    };
    return new Promise((resolve, reject) => {
      const child = spawn(this.find(type), [], {
        env: {
          ...process.env,
          CNI_COMMAND: command,
          CNI_CONTAINERID: env.containerId,
          CNI_NETNS: env.netns,
          CNI_IFNAME: env.ifname,
          CNI_PATH: this.path.join(':'),
        },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) {
          resolve(out.trim() ? (JSON.parse(out) as CniResult) : undefined);
          return;
        }
        let msg = err.trim() || out.trim();
        try {
          const j = JSON.parse(out) as { msg?: string; details?: string; code?: number };
          msg = `${j.msg ?? msg}${j.details ? ` (${j.details})` : ''} [CNI error ${j.code}]`;
        } catch {
          // not JSON: the raw text
        }
        reject(
          new BerthError(`CNI ${type} ${command}: ${msg}`, {
            code: 'ECNI',
            op: `cni ${command}`,
            path: type,
          }),
        );
      });
      child.stdin.end(JSON.stringify(conf));
    });
  }

  async add(env: Omit<CniEnv, 'command'>): Promise<CniResult | undefined> {
    let prev: CniResult | undefined;
    for (const p of this.conflist.plugins) prev = (await this.exec(p, 'ADD', env, prev)) ?? prev;
    return prev;
  }

  async check(env: Omit<CniEnv, 'command'>, prev: CniResult): Promise<void> {
    for (const p of this.conflist.plugins) await this.exec(p, 'CHECK', env, prev);
  }

  async del(env: Omit<CniEnv, 'command'>, prev?: CniResult): Promise<void> {
    for (const p of [...this.conflist.plugins].reverse()) await this.exec(p, 'DEL', env, prev);
  }
}

/** Reads a CNI network configuration list (a `.conflist`), or a single plugin config made into one. */
export function loadConflist(path: string): CniDriver['conflist'] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new BerthError(`cannot read CNI config ${path}: ${(e as Error).message}`, {
      code: 'ENOTFOUND',
      path,
    });
  }
  let conf: Record<string, unknown>;
  try {
    conf = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new BerthError(`CNI config ${path} is not JSON: ${(e as Error).message}`, {
      code: 'EINVALIDNETWORK',
      path,
    });
  }
  const bad = (field: string, why: string) =>
    new BerthError(`CNI config ${path}: ${field}: ${why}`, { code: 'EINVALIDNETWORK', path });
  if (typeof conf['name'] !== 'string') throw bad('name', 'must be a string');
  if (typeof conf['cniVersion'] !== 'string') throw bad('cniVersion', 'must be a string');
  const plugins = Array.isArray(conf['plugins'])
    ? conf['plugins']
    : typeof conf['type'] === 'string'
      ? [conf]
      : undefined;
  if (!plugins?.length)
    throw bad('plugins', 'must be a non-empty list (or the config a single plugin with a type)');
  plugins.forEach((p, i) => {
    if (typeof (p as Record<string, unknown>)['type'] !== 'string')
      throw bad(`plugins[${i}].type`, 'must be a string');
  });
  return {
    name: conf['name'],
    cniVersion: conf['cniVersion'],
    plugins: plugins as Array<Record<string, unknown>>,
  };
}

/** What `attachCni` made: the result of the chain, kept so DEL gets it as prevResult. */
export interface CniAttachment {
  conflist: string;
  ifname: string;
  address?: string;
  gateway?: string;
  result?: CniResult;
}

/**
 * Attaches a container through a conflist's plugins (the CNI driver), and
 * writes its resolv.conf, hosts and hostname into `filesDir` from the result.
 */
export async function attachCni(o: {
  containerId: string;
  netns: string;
  conflist: string;
  ifname?: string;
  path?: string[];
  filesDir?: string;
  hostname?: string;
  dns?: string[];
  addHosts?: string[];
}): Promise<CniAttachment> {
  const { DnsFiles } = await import('./dns.js');
  // the names go into the container's hosts and hostname files: checked before any plugin runs
  DnsFiles.checkHostsName(o.containerId, 'container id');
  if (o.hostname !== undefined) DnsFiles.checkHostsName(o.hostname, 'hostname');
  for (const d of o.dns ?? []) DnsFiles.checkNameserver(d);
  for (const h of o.addHosts ?? []) DnsFiles.parseAddHost(h);
  const driver = new CniDriver(loadConflist(o.conflist), o.path);
  const ifname = o.ifname ?? 'eth0';
  const env = { containerId: o.containerId, netns: o.netns, ifname };
  const result = await driver.add(env);
  try {
    const ip = result?.ips?.[0];
    if (o.filesDir) {
      const { mkdirSync, writeFileSync } = await import('node:fs');
      mkdirSync(o.filesDir, { recursive: true });
      const host = DnsFiles.hostResolvConf();
      const dns = result?.dns as
        | { nameservers?: string[]; search?: string[]; options?: string[] }
        | undefined;
      const conf = {
        nameservers: o.dns?.length ? o.dns : dns?.nameservers?.length ? dns.nameservers : host.nameservers,
        search: dns?.search ?? host.search,
        options: dns?.options ?? host.options,
      };
      const names = [...new Set([o.containerId, ...(o.hostname ? [o.hostname] : [])])];
      writeFileSync(join(o.filesDir, 'resolv.conf'), DnsFiles.formatResolvConf(conf));
      writeFileSync(join(o.filesDir, 'hostname'), DnsFiles.formatHostname(o.hostname ?? o.containerId));
      writeFileSync(
        join(o.filesDir, 'hosts'),
        DnsFiles.formatHosts([
          ...DnsFiles.baseHosts(),
          ...(ip ? [{ address: ip.address.split('/')[0]!, names }] : []),
          ...(o.addHosts ?? []).map((h) => DnsFiles.parseAddHost(h)),
        ]),
      );
    }
    return {
      conflist: o.conflist,
      ifname,
      ...(ip ? { address: ip.address } : {}),
      ...(ip?.gateway ? { gateway: ip.gateway } : {}),
      ...(result ? { result } : {}),
    };
  } catch (e) {
    await driver.del(env, result).catch(() => undefined);
    throw e;
  }
}

/** Runs the conflist's DEL (in reverse); `netns` may be gone (empty), as the spec allows. */
export async function detachCni(
  containerId: string,
  a: Pick<CniAttachment, 'conflist' | 'ifname' | 'result'>,
  netns = '',
  path?: string[],
): Promise<void> {
  const driver = new CniDriver(loadConflist(a.conflist), path);
  await driver.del({ containerId, netns, ifname: a.ifname }, a.result);
}
