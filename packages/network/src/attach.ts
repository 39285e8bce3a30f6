import { createHash } from 'node:crypto';
import { closeSync, constants, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, type NetSys, netlibc } from '@berth/sys';
import type { IPv4Address, IPv4Cidr } from './address.js';
import { Bridge } from './bridge.js';
import { DnsFiles, type HostsEntry, isToken, type ResolvConf } from './dns.js';
import { invalid, isIPv4 } from './ip.js';
import type { LeaseHolder } from './ipam.js';
import { startTime } from './lock.js';
import { NftNat, type PortMapping, type PublishSpec, parsePublish } from './nat.js';
import { type Handle, rtnetlink } from './netlink.js';
import type { NetnsRef } from './netns.js';
import { DEFAULT_NETWORK, NetworkStore } from './store.js';
import { createTap } from './tap.js';

/**
 * `none`: a private namespace with only lo;
 * `host`: the host's namespace (no `network` entry in linux.namespaces);
 * `bridge`: a veth into the container, its peer on a bridge, an address, NAT.
 */
export type NetworkMode = 'none' | 'host' | 'bridge';

/** What the runtime asks for at the "ns-ready" sync point, when the container's namespaces exist. */
export interface AttachRequest {
  containerId: string;
  /** The container's network namespace (usually `{ pid }` of its init process); none with `tap`. */
  netns?: NetnsRef;
  /**
   * A VM's NIC instead of a veth: a persistent tap device (named as the veth's
   * host end would be) on the bridge, up; the address is the guest's to set
   * (the VM's agent does, from `Attachment.address` and `gateway`). QEMU opens
   * the tap by name; `detach` removes it.
   */
  tap?: boolean;
  /** The network to join (default `bridge`: the bridge berth0). */
  network?: string;
  /** Networks and leases (default: `new NetworkStore()`). */
  store?: NetworkStore;
  nat?: NftNat;
  /** The name of the link inside the container (default `eth0`). */
  ifname?: string;
  /** A fixed address (`--ip`). */
  ip?: IPv4Address;
  /** `-p` values to publish. */
  publish?: readonly PublishSpec[];
  hostname?: string;
  /** More names the container's peers resolve to it (its id and hostname always are). */
  aliases?: string[];
  /** `--dns`: nameservers instead of the host's. */
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** `--add-host NAME:IP`. */
  addHosts?: string[];
  /** Where resolv.conf, hosts and hostname for this container are written (none when absent). */
  filesDir?: string;
  /** The process the lease lives with (default: the netns's pid when `netns` is `{ pid }`). */
  holder?: LeaseHolder;
}

/** Everything attach made, kept in the container's state so detach can undo exactly that. */
export interface Attachment {
  containerId: string;
  network: string;
  bridge: string;
  /** The host end of the veth (or the tap, with `tap`). */
  hostLink: string;
  /** The link inside the container. */
  ifname: string;
  address: IPv4Cidr;
  gateway: IPv4Address;
  ports: PortMapping[];
  resolvConf?: ResolvConf;
  /** Host paths of the generated files. */
  files?: { resolvConf: string; hosts: string; hostname: string };
}

/**
 * The one entry point the runtime uses. `attach` is all or nothing: on failure
 * it removes the veth, releases the lease and the port rules it made before
 * throwing. `detach` is idempotent and also cleans up after a crash mid-attach
 * (it works from the container id, not only from a complete `Attachment`).
 */
export interface Network {
  attach(request: AttachRequest): Promise<Attachment>;
  detach(containerId: string, network: string): Promise<void>;
}

/** The host end's name: `bv` and 12 hex digits of the network, container and link (same on every call). */
export function hostLinkName(network: string, containerId: string, ifname = 'eth0'): string {
  return `bv${createHash('sha256').update(`${network}\0${containerId}\0${ifname}`).digest('hex').slice(0, 12)}`;
}

/** Writes a file in place (same inode: a bind mount of it sees the new content), never through a symlink. */
function writeInPlace(path: string, content: string): void {
  const fd = openSync(
    path,
    constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
    0o644,
  );
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

/**
 * Rewrites the hosts file of every container on `network` so each resolves
 * the others by name: its own entries, then one line per live peer.
 */
export async function refreshHosts(store: NetworkStore, network: string): Promise<void> {
  const leases = await store.ipam.leases(network);
  // a lease written before names were checked may hold one that is not a single token: left out
  const writable = (entries: readonly HostsEntry[]) =>
    entries
      .map((e) => ({ address: e.address, names: e.names.filter(isToken) }))
      .filter((e) => isToken(e.address) && e.names.length);
  for (const l of leases) {
    if (!l.hostsFile) continue;
    const base = l.staticHosts ?? DnsFiles.baseHosts();
    const peers = leases
      .filter((p) => p !== l && p.names?.length)
      .map((p) => ({ address: p.address.split('/')[0]!, names: p.names! }));
    try {
      writeInPlace(l.hostsFile, DnsFiles.formatHosts(writable([...base, ...peers])));
    } catch {
      // the container's files are gone: its delete is under way
    }
  }
}

/** Creates the container's network: see `Network.attach`. */
export async function attach(req: AttachRequest, sysIn?: NetSys): Promise<Attachment> {
  const sys = sysIn ?? (await netlibc());
  const store = req.store ?? new NetworkStore();
  const nat = req.nat ?? new NftNat();
  const networkName = req.network ?? DEFAULT_NETWORK;
  const ifname = req.ifname ?? 'eth0';
  // every input is checked before anything is made
  if (req.ip !== undefined && !isIPv4(req.ip)) throw invalid('--ip', req.ip, 'must be an IPv4 address');
  for (const p of req.publish ?? []) parsePublish(p, '0.0.0.0');
  for (const d of req.dns ?? []) DnsFiles.checkNameserver(d);
  // every name goes into this container's and its peers' hosts, resolv.conf or hostname files
  DnsFiles.checkHostsName(req.containerId, 'container id');
  if (req.hostname !== undefined) DnsFiles.checkHostsName(req.hostname, 'hostname');
  for (const a of req.aliases ?? []) DnsFiles.checkHostsName(a, 'alias');
  for (const d of req.dnsSearch ?? []) DnsFiles.checkSearchDomain(d);
  for (const o of req.dnsOptions ?? []) DnsFiles.checkDnsOption(o);
  const extraHosts = (req.addHosts ?? []).map((h) => DnsFiles.parseAddHost(h));
  const config = await store.require(networkName);
  if (config.ownBridge === false) {
    // a bridge berth did not make keeps its sysctls: a port on 127.0.0.1 needs it to route 127/8
    for (const p of req.publish ?? []) {
      if (!parsePublish(p, '0.0.0.0').hostIp?.startsWith('127.')) continue;
      let localnet: string | undefined;
      try {
        localnet = readFileSync(`/proc/sys/net/ipv4/conf/${config.bridge}/route_localnet`, 'utf8').trim();
      } catch {
        // no such bridge: Bridge.ensure says so below
      }
      if (localnet !== undefined && localnet !== '1')
        throw invalid(
          '-p',
          p,
          `network ${networkName} uses bridge ${config.bridge}, which berth did not make and does not change, and it does not route 127.0.0.0/8 (net.ipv4.conf.${config.bridge}.route_localnet is ${localnet}): publish on another host address, or set that sysctl yourself`,
        );
    }
  }
  if (!req.tap && !req.netns)
    throw new BerthError(`attach ${req.containerId}: no network namespace given`, { code: 'ENONETNS' });
  const holder =
    req.holder ??
    (req.netns && 'pid' in req.netns ? { pid: req.netns.pid, ...withStart(req.netns.pid) } : undefined);
  const host = rtnetlink.openSync(sys);
  const hostLink = hostLinkName(networkName, req.containerId, ifname);
  let leased = false;
  let published = false;
  let masquerade: Promise<void> | undefined;
  try {
    const owned = config.ownBridge !== false;
    await Bridge.ensure(config.bridge, config.subnet, { handle: host, owned });
    // The network's NAT rules are checked (an `nft` run: the slowest step of an attach) while
    // the lease and the links are made; awaited before any port rule goes into their table, and
    // before the bridge routes 127/8. Every network has the loopback guard, an internal one too
    // (it masquerades nothing else): its bridge routes 127/8 for ports published on 127.0.0.1.
    masquerade = config.internal
      ? nat.ensureLocalnet(config.bridge)
      : nat.ensureMasquerade(config.bridge, config.subnet.cidr);
    masquerade.catch(() => undefined); // a step below failing first must not leave it unhandled
    const names = [
      ...new Set([req.containerId, ...(req.hostname ? [req.hostname] : []), ...(req.aliases ?? [])]),
    ];
    const files = req.filesDir
      ? {
          resolvConf: join(req.filesDir, 'resolv.conf'),
          hosts: join(req.filesDir, 'hosts'),
          hostname: join(req.filesDir, 'hostname'),
        }
      : undefined;
    const lease = await store.ipam.allocate(networkName, config.subnet, req.containerId, req.ip, {
      ...(holder ? { holder } : { holder: { pid: 0 } }),
      names,
      ...(files ? { hostsFile: files.hosts } : {}),
      ifname,
      // the lease names the table of its port rules: they go with it if it is taken back as stale
      ...(req.publish?.length ? { natTable: nat.table } : {}),
    });
    leased = true;
    const ip = lease.address.split('/')[0] as IPv4Address;
    if (req.tap) {
      // a VM's NIC: the tap is on the bridge and up before QEMU opens it
      await createTap(hostLink);
      await host.links.setMaster(hostLink, config.bridge);
      await host.links.setUp(hostLink);
    } else {
      const netns = req.netns!;
      // the peer is born in the container's namespace, already named eth0
      await host.links.createVeth({ host: hostLink, peer: ifname, peerNetns: netns });
      await host.links.setMaster(hostLink, config.bridge);
      await host.links.setUp(hostLink);
      const inside = rtnetlink.openSync(sys, netns);
      try {
        await inside.links.setUp('lo');
        await inside.addresses.add(ifname, lease.address);
        await inside.links.setUp(ifname);
        await inside.routes.add({ destination: 'default', gateway: config.subnet.gateway });
      } finally {
        inside.closeSync();
      }
    }
    await masquerade;
    // the guard is in place (awaited above): only now may berth's bridge route 127/8
    const guarded = masquerade;
    if (owned) await Bridge.routeLocalnet(config.bridge, { ensureLoopbackGuard: () => guarded });
    const ports = (req.publish ?? []).map((p) => parsePublish(p, ip));
    if (ports.length) {
      published = true;
      await nat.publish(req.containerId, ports);
      // the lease may have been taken back meanwhile (its holder died mid-attach, and another
      // container got the address): rules must never point at an address that is not ours
      const still = (await store.ipam.leases(networkName)).some(
        (l) =>
          l.containerId === req.containerId && (l.ifname ?? '') === ifname && l.address === lease.address,
      );
      if (!still)
        throw new BerthError(
          `attach ${req.containerId}: its address ${lease.address} was taken back while its ports were published (its process is gone)`,
          { code: 'EIPAMCONFLICT', path: req.containerId },
        );
    }
    let resolvConf: ResolvConf | undefined;
    if (files && req.filesDir) {
      mkdirSync(req.filesDir, { recursive: true, mode: 0o755 });
      const hostConf = DnsFiles.hostResolvConf();
      resolvConf = {
        nameservers: req.dns?.length ? req.dns : hostConf.nameservers,
        search: req.dnsSearch ?? hostConf.search,
        options: req.dnsOptions ?? hostConf.options,
      };
      writeInPlace(files.resolvConf, DnsFiles.formatResolvConf(resolvConf));
      writeInPlace(files.hostname, DnsFiles.formatHostname(req.hostname ?? req.containerId));
      const staticHosts = [...DnsFiles.baseHosts(), { address: ip, names }, ...extraHosts];
      await store.ipam.commit(networkName, req.containerId, { staticHosts }, ifname);
      await refreshHosts(store, networkName);
    }
    return {
      containerId: req.containerId,
      network: networkName,
      bridge: config.bridge,
      hostLink,
      ifname,
      address: lease.address,
      gateway: config.subnet.gateway,
      ports,
      ...(resolvConf ? { resolvConf } : {}),
      ...(files ? { files } : {}),
    };
  } catch (e) {
    await masquerade?.catch(() => undefined); // no nft left running behind a failed attach
    await host.links.remove(hostLink).catch(() => undefined);
    if (published) await nat.unpublish(req.containerId).catch(() => undefined);
    if (leased) await store.ipam.release(networkName, req.containerId, ifname).catch(() => undefined);
    throw e;
  } finally {
    host.closeSync();
  }
}

/**
 * Undoes `attach` from the container id alone: the host end of the veth (the
 * peer goes with it), the container's port rules, its lease, and its line in
 * its peers' hosts files. Idempotent.
 */
export async function detach(
  containerId: string,
  network: string = DEFAULT_NETWORK,
  o: {
    store?: NetworkStore;
    nat?: NftNat;
    ifname?: string;
    sys?: NetSys;
    /** `false` when a complete attachment published no port: no nft round trip. Default: look. */
    published?: boolean;
  } = {},
): Promise<void> {
  const sys = o.sys ?? (await netlibc());
  const store = o.store ?? new NetworkStore();
  const nat = o.nat ?? new NftNat();
  const h: Handle = rtnetlink.openSync(sys);
  const errors: unknown[] = [];
  try {
    await h.links.remove(hostLinkName(network, containerId, o.ifname ?? 'eth0')).catch((e) => errors.push(e));
  } finally {
    h.closeSync();
  }
  if (o.published !== false) await nat.unpublish(containerId).catch((e) => errors.push(e));
  await store.ipam.release(network, containerId, o.ifname).catch((e) => errors.push(e));
  await refreshHosts(store, network).catch(() => undefined);
  if (errors.length)
    throw new BerthError(
      `detach ${containerId} from ${network}: ${errors.map((e) => (e as Error).message).join('; ')}`,
      {
        code: 'ENETLINK',
        path: containerId,
        cause: errors[0],
      },
    );
}

function withStart(pid: number): { startTime?: number } {
  const s = startTime(pid);
  return s === undefined ? {} : { startTime: s };
}
