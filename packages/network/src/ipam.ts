import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BerthError, hasErrno } from '@berth/sys';
import type { IPv4Address, IPv4Cidr, Subnet } from './address.js';
import type { HostsEntry } from './dns.js';
import { contains, hostRange, intToIPv4, ipv4ToInt, isIPv4 } from './ip.js';
import { holderAlive, startTime, withNetLock } from './lock.js';
import { NftNat } from './nat.js';

/** The process a lease lives as long as: the create that took it, then the container's init. */
export interface LeaseHolder {
  pid: number;
  /** /proc/PID/stat start time, so a reused pid is not mistaken for the holder. */
  startTime?: number;
}

/** One address leased to one container. */
export interface Lease {
  /** The network (bridge) name the lease belongs to. */
  network: string;
  containerId: string;
  /** The container's address with the subnet's prefix, e.g. `10.88.0.5/16`. */
  address: IPv4Cidr;
  gateway: IPv4Address;
  /** ISO 8601 time of the allocation. */
  allocated: string;
  /** When set, the lease is stale (and taken back) once this process is gone. CNI leases have none. */
  holder?: LeaseHolder;
  /** Names other containers of the network resolve to this address. */
  names?: string[];
  /** The container's hosts file, kept current with its peers (see `refreshHosts`). */
  hostsFile?: string;
  /** The link name inside the container (CNI's IfName), to tell two attachments of one container apart. */
  ifname?: string;
  /** The container's own hosts entries (localhost, itself, --add-host), before its peers'. */
  staticHosts?: HostsEntry[];
  /**
   * The nft table that holds the container's published-port rules, recorded before they are
   * made (`attach` with `-p`). When the lease is taken back as stale, its rules go with it.
   */
  natTable?: string;
}

/** The lease fields a caller may set when it allocates. */
export type LeaseExtra = Partial<Pick<Lease, 'holder' | 'names' | 'hostsFile' | 'ifname' | 'natTable'>>;

export interface IpamOptions {
  /** Where leases are kept (one file per network, written atomically, under a lock). */
  stateDir: string;
  /**
   * Undoes what else the stale leases' containers held with their addresses, under the
   * network's lock, before an address is handed out again (default `unpublishStale`: their
   * port rules). If it throws, the allocation fails and the leases stay.
   */
  reclaim?: (stale: readonly Lease[]) => Promise<void>;
}

/**
 * The default `reclaim`: removes the port rules (`berth:c:ID`) of each stale lease's container
 * from the table its lease names, so a stopped container's published ports never reach the next
 * container given its address. A lease that names no table (the container published nothing,
 * or an earlier berth wrote it) is looked up in berth's default table; without nft there is none.
 */
export async function unpublishStale(stale: readonly Lease[]): Promise<void> {
  for (const l of stale) {
    try {
      await new NftNat(l.natTable ? { table: l.natTable } : {}).unpublish(l.containerId);
    } catch (e) {
      // no nft command: no rule can exist, unless the lease says it made some
      if (!l.natTable && hasErrno((e as Error).cause, 'ENOENT')) continue;
      throw new BerthError(
        `cannot take back the address ${l.address} of container ${l.containerId} (its process is gone): its published ports could not be removed: ${(e as Error).message}`,
        { code: (e as BerthError).code ?? 'ENAT', path: l.containerId, cause: e },
      );
    }
  }
}

/**
 * Address management for a bridge network. Leases survive berth exiting
 * (containerd runs one berth process per command), and `release` after a crash
 * mid-create frees what `allocate` took, so no lease outlives its container.
 */
export interface Ipam {
  /**
   * Leases an address of `subnet` to `containerId`: `requested` when given and
   * free (else `EIPAMCONFLICT`), otherwise the lowest free host address that is
   * not the network, broadcast or gateway address (else `EIPAMEXHAUSTED`).
   * Allocating again for the same container returns its existing lease.
   */
  allocate(
    network: string,
    subnet: Subnet,
    containerId: string,
    requested?: IPv4Address,
    extra?: LeaseExtra,
  ): Promise<Lease>;
  /** Frees the container's lease; releasing a lease that does not exist is not an error. */
  release(network: string, containerId: string): Promise<void>;
  leases(network: string): Promise<Lease[]>;
}

/**
 * IPAM in files: `<stateDir>/<network>.json` holds the network's leases, read
 * and rewritten (temp file + rename) under a per-network lock that the kernel
 * drops if the holder dies. A lease whose holder process is gone (a create
 * that was killed, a container whose init exited and was never deleted) is
 * taken back at the next allocation, together with its container's port rules
 * (`IpamOptions.reclaim`), in the same locked step: an address is never handed
 * out while rules that send a host port to it remain.
 */
export class FileIpam implements Ipam {
  constructor(readonly options: IpamOptions) {}

  private file(network: string): string {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(network))
      throw new BerthError(`network name ${JSON.stringify(network)} is not valid`, {
        code: 'EINVALIDNETWORK',
      });
    return join(this.options.stateDir, `${network}.json`);
  }

  private read(network: string): Lease[] {
    try {
      return JSON.parse(readFileSync(this.file(network), 'utf8')) as Lease[];
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }

  private write(network: string, leases: Lease[]): void {
    mkdirSync(this.options.stateDir, { recursive: true, mode: 0o700 });
    const file = this.file(network);
    if (!leases.length) {
      rmSync(file, { force: true });
      return;
    }
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(leases, null, 1)}\n`);
    renameSync(tmp, file);
  }

  /** Runs `fn` on the network's leases under its lock; what `fn` returns as leases is written back. */
  async update<T>(
    network: string,
    fn: (leases: Lease[]) => { leases: Lease[]; result: T } | Promise<{ leases: Lease[]; result: T }>,
  ): Promise<T> {
    return withNetLock(`${this.options.stateDir}/${network}`, async () => {
      const { leases, result } = await fn(this.read(network));
      if (JSON.stringify(leases) !== JSON.stringify(this.read(network))) this.write(network, leases);
      return result;
    });
  }

  async allocate(
    network: string,
    subnet: Subnet,
    containerId: string,
    requested?: IPv4Address,
    extra: LeaseExtra = {},
  ): Promise<Lease> {
    const range = hostRange(subnet.cidr);
    if (requested !== undefined) {
      if (!isIPv4(requested) || !contains(subnet.cidr, requested))
        throw new BerthError(`--ip ${requested} is not an address of ${network} (${subnet.cidr})`, {
          code: 'EINVALIDNETWORK',
          path: requested,
        });
      const n = ipv4ToInt(requested);
      if (n < range.first || n > range.last || requested === subnet.gateway)
        throw new BerthError(`--ip ${requested} is the network, broadcast or gateway address of ${network}`, {
          code: 'EIPAMCONFLICT',
          path: requested,
        });
    }
    const holder = extra.holder ?? { pid: process.pid, ...optStart(process.pid) };
    return this.update(network, async (all) => {
      const mine = all.find(
        (l) => l.containerId === containerId && (l.ifname ?? '') === (extra.ifname ?? ''),
      );
      if (mine) return { leases: all, result: mine };
      // stale leases (their holder is gone) are dropped before looking for a free address, and
      // what their containers held with the address (port rules) goes first, still under the lock
      const alive = (l: Lease) => !l.holder || holderAlive(l.holder.pid, l.holder.startTime);
      const live = all.filter(alive);
      const stale = all.filter((l) => !alive(l));
      if (stale.length) await (this.options.reclaim ?? unpublishStale)(stale);
      const taken = new Set(live.map((l) => ipv4ToInt(l.address.split('/')[0]!)));
      taken.add(ipv4ToInt(subnet.gateway));
      let pick: number | undefined;
      if (requested !== undefined) {
        const n = ipv4ToInt(requested);
        if (taken.has(n)) {
          const owner = live.find((l) => l.address.startsWith(`${requested}/`));
          throw new BerthError(`--ip ${requested} is already leased to container ${owner?.containerId}`, {
            code: 'EIPAMCONFLICT',
            path: requested,
          });
        }
        pick = n;
      } else {
        for (let n = range.first; n <= range.last; n++) {
          if (!taken.has(n)) {
            pick = n;
            break;
          }
        }
      }
      if (pick === undefined)
        throw new BerthError(`network ${network} (${subnet.cidr}) has no free address`, {
          code: 'EIPAMEXHAUSTED',
          path: network,
        });
      const lease: Lease = {
        network,
        containerId,
        address: `${intToIPv4(pick)}/${range.prefix}` as IPv4Cidr,
        gateway: subnet.gateway,
        allocated: new Date().toISOString(),
        ...(holder.pid ? { holder } : {}),
        ...(extra.names ? { names: extra.names } : {}),
        ...(extra.hostsFile ? { hostsFile: extra.hostsFile } : {}),
        ...(extra.ifname ? { ifname: extra.ifname } : {}),
        ...(extra.natTable ? { natTable: extra.natTable } : {}),
      };
      return { leases: [...live, lease], result: lease };
    });
  }

  /** Changes the fields of a container's lease (its holder once the container runs, its names, its hosts file). */
  async commit(network: string, containerId: string, fields: Partial<Lease>, ifname?: string): Promise<void> {
    await this.update(network, (all) => ({
      leases: all.map((l) =>
        l.containerId === containerId && (ifname === undefined || (l.ifname ?? '') === ifname)
          ? { ...l, ...fields }
          : l,
      ),
      result: undefined,
    }));
  }

  async release(network: string, containerId: string, ifname?: string): Promise<void> {
    await this.update(network, (all) => ({
      leases: all.filter(
        (l) => !(l.containerId === containerId && (ifname === undefined || (l.ifname ?? '') === ifname)),
      ),
      result: undefined,
    }));
  }

  async leases(network: string): Promise<Lease[]> {
    return this.read(network);
  }

  /** Removes the network's lease file (when the network is removed). */
  drop(network: string): void {
    rmSync(this.file(network), { force: true });
  }
}

function optStart(pid: number): { startTime?: number } {
  const s = startTime(pid);
  return s === undefined ? {} : { startTime: s };
}
