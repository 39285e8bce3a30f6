import { existsSync, statSync } from 'node:fs';
import type { Attachment, AttachRequest, NetDeviceRequest, PortMapping } from '@berth/network';
import type { Spec } from '@berth/spec';
import { BerthError } from '@berth/sys';

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

/** Checks the network flags before anything is made: a bad `-p`, `--ip`, `--dns`, `--add-host`, `--dns-search`, hostname or alias is a clear error. */
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
  // names written into this container's and its peers' hosts, resolv.conf and hostname files
  if (o.hostname !== undefined) net.DnsFiles.checkHostsName(o.hostname, 'hostname');
  for (const a of o.aliases ?? []) net.DnsFiles.checkHostsName(a, 'alias');
  for (const d of o.dnsSearch ?? []) net.DnsFiles.checkSearchDomain(d);
  for (const d of o.dnsOptions ?? []) net.DnsFiles.checkDnsOption(d);
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

/**
 * `linux.netDevices`, checked before anything is made (runc's rules): a network namespace
 * (new or joined) to move them into, root (a user without it cannot take a host device), and
 * names the kernel takes. Returns the moves to make, in the config's order.
 */
export async function checkNetDevices(spec: Spec, rootless: boolean): Promise<NetDeviceRequest[]> {
  const entries = Object.entries(spec.linux?.netDevices ?? {});
  if (!entries.length) return [];
  const invalid = (message: string) => new BerthError(message, { code: 'EINVALIDSPEC' });
  if (!spec.linux?.namespaces?.some((n) => n.type === 'network'))
    throw invalid(
      "linux.netDevices: the container has no network namespace of its own (linux.namespaces): the devices would stay the host's",
    );
  if (rootless)
    throw new BerthError('linux.netDevices: moving host network devices needs root', {
      code: 'EUNSUPPORTED',
    });
  const { isValidDeviceName } = await import('@berth/network');
  const out: NetDeviceRequest[] = [];
  const names = new Set<string>();
  for (const [device, d] of entries) {
    const at = `linux.netDevices[${JSON.stringify(device)}]`;
    if (!isValidDeviceName(device))
      throw invalid(`${at}: not a network device name (1 to 15 bytes, no "/", ":" or whitespace)`);
    const name = d?.name || undefined;
    if (name !== undefined && !isValidDeviceName(name))
      throw invalid(
        `${at}.name: ${JSON.stringify(name)} is not a network device name (1 to 15 bytes, no "/", ":" or whitespace)`,
      );
    const inside = name ?? device;
    if (!inside.includes('%') && names.has(inside))
      throw invalid(`${at}: a second device named ${JSON.stringify(inside)} in the container`);
    names.add(inside);
    out.push({ device, ...(name !== undefined ? { name } : {}) });
  }
  return out;
}

/** Moves the `linux.netDevices` into the network namespace of the container's process `pid` (never the runtime's own). */
export async function moveNetDevices(pid: number, devices: readonly NetDeviceRequest[]): Promise<void> {
  if (statSync(`/proc/${pid}/ns/net`).ino === statSync('/proc/self/ns/net').ino)
    throw new BerthError(
      "linux.netDevices: the container's network namespace is the runtime's own: nothing to move the devices into",
      { code: 'EINVALIDSPEC' },
    );
  const { moveDevices } = await import('@berth/network');
  try {
    await moveDevices(devices, { pid });
  } catch (e) {
    const err = e as BerthError;
    throw new BerthError(`linux.netDevices[${JSON.stringify(err.path ?? '')}]: ${err.message}`, {
      code: err.code ?? 'ENETLINK',
    });
  }
}
