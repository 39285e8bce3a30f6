import { existsSync } from 'node:fs';
import type { Attachment, AttachRequest, PortMapping } from '@berth/network';

/**
 * What a container asks of `@berth/network` (`berth run --network bridge|NAME`):
 * the runtime attaches it at the "ns-ready" sync point, before the container
 * does its mounts, and detaches it on delete (also after a crash mid-create).
 */
export interface ContainerNetworkOptions {
  /**
   * The network: `bridge` (berth0), a network made with `berth network create`, or
   * `cni:FILE`, a CNI conflist whose plugins (CNI_PATH, default /usr/lib/cni) attach it.
   */
  network: string;
  ip?: string;
  /** `-p [IP:][HOSTPORT:]PORT[/tcp|udp]`. */
  publish?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** `--add-host NAME:IP`. */
  addHosts?: string[];
  hostname?: string;
  aliases?: string[];
  /** Where resolv.conf, hosts and hostname are written (the image bundle bind-mounts them). */
  filesDir?: string;
  /** Network state (default `$BERTH_NETWORK_DIR`, else /var/lib/berth/network). */
  stateDir?: string;
}

/** What berth keeps in the container's state about its network. */
export interface NetworkRecord {
  network: string;
  stateDir?: string;
  address?: string;
  gateway?: string;
  bridge?: string;
  hostLink?: string;
  ports?: PortMapping[];
  /** For `cni:` networks: the chain's result, handed to DEL as prevResult. */
  cni?: { conflist: string; ifname: string; result?: import('@berth/network').CniResult };
  /** The container's init, whose namespace DEL names while it lives. */
  pid?: number;
}

const cniPath = () => (process.env['CNI_PATH'] ? process.env['CNI_PATH'].split(':') : undefined);

/** Attaches the container whose init is `pid` (its network namespace) to its network. */
export async function attachNetwork(
  id: string,
  pid: number,
  o: ContainerNetworkOptions,
): Promise<NetworkRecord> {
  const net = await import('@berth/network');
  if (o.network.startsWith('cni:')) {
    const conflist = o.network.slice(4);
    const path = cniPath();
    const c = await net.attachCni({
      containerId: id,
      netns: `/proc/${pid}/ns/net`,
      conflist,
      ...(path ? { path } : {}),
      ...(o.filesDir ? { filesDir: o.filesDir } : {}),
      ...(o.hostname ? { hostname: o.hostname } : {}),
      ...(o.dns?.length ? { dns: o.dns } : {}),
      ...(o.addHosts?.length ? { addHosts: o.addHosts } : {}),
    });
    return {
      network: o.network,
      pid,
      ...(c.address ? { address: c.address } : {}),
      ...(c.gateway ? { gateway: c.gateway } : {}),
      cni: { conflist, ifname: c.ifname, ...(c.result ? { result: c.result } : {}) },
    };
  }
  const a = await net.attach({
    containerId: id,
    netns: { pid },
    store: new net.NetworkStore(o.stateDir ? { dir: o.stateDir } : {}),
    ...attachSettings(o),
  });
  return attachedRecord(a, o);
}

/** Undoes `attachNetwork` from the record alone (idempotent). */
export async function detachNetwork(
  id: string,
  record: Pick<NetworkRecord, 'network' | 'stateDir' | 'ports' | 'cni' | 'pid'>,
): Promise<void> {
  const net = await import('@berth/network');
  if (record.network.startsWith('cni:')) {
    // no result: the create died before ADD finished; DEL with what is known (plugins must cope)
    const a = record.cni ?? { conflist: record.network.slice(4), ifname: 'eth0' };
    const netns = record.pid && existsSync(`/proc/${record.pid}/ns/net`) ? `/proc/${record.pid}/ns/net` : '';
    const path = cniPath();
    await net.detachCni(id, a, netns, path);
    return;
  }
  const store = new net.NetworkStore(record.stateDir ? { dir: record.stateDir } : {});
  // a complete attachment says whether it published ports; after a crash mid-attach, look
  await net.detach(id, record.network, {
    store,
    ...(record.ports ? { published: record.ports.length > 0 } : {}),
  });
}

/** Checks the network flags before anything is made: a bad `-p`, `--ip`, `--dns` or `--add-host` is a clear error. */
export async function checkNetworkOptions(o: ContainerNetworkOptions): Promise<void> {
  const net = await import('@berth/network');
  if (o.ip !== undefined && !net.isIPv4(o.ip))
    throw new (await import('@berth/sys')).BerthError(
      `--ip ${JSON.stringify(o.ip)}: must be an IPv4 address`,
      {
        code: 'EINVALIDNETWORK',
      },
    );
  for (const p of o.publish ?? []) net.parsePublish(p, '0.0.0.0');
  for (const d of o.dns ?? []) net.DnsFiles.checkNameserver(d);
  for (const h of o.addHosts ?? []) net.DnsFiles.parseAddHost(h);
  if (o.network.startsWith('cni:')) {
    net.loadConflist(o.network.slice(4));
    if (o.publish?.length || o.ip)
      throw new (await import('@berth/sys')).BerthError(
        `--network ${o.network}: -p and --ip are the CNI plugins' business (portmap, ipam), not berth's`,
        { code: 'EINVALIDNETWORK' },
      );
    return;
  }
  const store = new net.NetworkStore(o.stateDir ? { dir: o.stateDir } : {});
  await store.require(o.network);
}

/** The request fields of `@berth/network`'s attach that come from the options (a container's or a VM's). */
export function attachSettings(o: ContainerNetworkOptions): Omit<AttachRequest, 'containerId'> {
  return {
    network: o.network,
    ...(o.ip ? { ip: o.ip as `${number}.${number}.${number}.${number}` } : {}),
    ...(o.publish?.length ? { publish: o.publish } : {}),
    ...(o.dns?.length ? { dns: o.dns } : {}),
    ...(o.dnsSearch ? { dnsSearch: o.dnsSearch } : {}),
    ...(o.dnsOptions ? { dnsOptions: o.dnsOptions } : {}),
    ...(o.addHosts?.length ? { addHosts: o.addHosts } : {}),
    ...(o.hostname ? { hostname: o.hostname } : {}),
    ...(o.aliases?.length ? { aliases: o.aliases } : {}),
    ...(o.filesDir ? { filesDir: o.filesDir } : {}),
  };
}

/** What the state keeps of an attachment. */
export function attachedRecord(a: Attachment, o: ContainerNetworkOptions): NetworkRecord {
  return {
    network: a.network,
    ...(o.stateDir ? { stateDir: o.stateDir } : {}),
    address: a.address,
    gateway: a.gateway,
    bridge: a.bridge,
    hostLink: a.hostLink,
    ports: a.ports,
  };
}

/** The part of the record written before anything is made, so a delete after a crash still detaches. */
export function networkRecordBase(o: ContainerNetworkOptions): NetworkRecord {
  return { network: o.network, ...(o.stateDir ? { stateDir: o.stateDir } : {}) };
}
