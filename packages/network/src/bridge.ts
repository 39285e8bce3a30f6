import { writeFileSync } from 'node:fs';
import { BerthError } from '@berth/sys';
import type { IPv4Cidr, Subnet } from './address.js';
import { hostRange, intToIPv4, parseCidr } from './ip.js';
import type { Nat } from './nat.js';
import type { Handle, Link } from './netlink.js';
import { rtnetlink } from './netlink.js';

/** A bridge network on the host: the bridge link, its subnet, and the gateway address it holds. */
export interface Bridge {
  readonly name: string;
  readonly subnet: Subnet;
  readonly link: Link;
  /** Enslaves a host link (the host end of a veth) to this bridge and sets it up. */
  attach(link: string): Promise<void>;
  detach(link: string): Promise<void>;
}

/**
 * The bridge verbs: `Bridge.ensure(name, subnet)` creates the bridge, gives it
 * the gateway address and sets it up, or returns the existing one when it
 * already matches; a bridge of that name with another subnet is an
 * `EINVALIDNETWORK` error rather than a silent reconfiguration. It does not
 * let the bridge route 127.0.0.0/8: `routeLocalnet` does, after the loopback guard.
 */
export interface BridgeStatic {
  /**
   * With `owned: false` (a bridge berth did not make: `NetworkConfig.ownBridge`) nothing is
   * made or changed: the bridge must exist and be a bridge, and keeps its addresses, state
   * and sysctls.
   */
  ensure(
    name: string,
    subnet: Subnet,
    options?: { mtu?: number; handle?: Handle; owned?: boolean },
  ): Promise<Bridge>;
  get(name: string, options?: { handle?: Handle }): Promise<Bridge | undefined>;
  /** Deletes the bridge when no link is attached to it any more; returns whether it was deleted. */
  removeIfUnused(name: string, options?: { handle?: Handle }): Promise<boolean>;
  /**
   * Lets a bridge berth owns route 127.0.0.0/8 (`route_localnet=1`: a port published on
   * 127.0.0.1 is DNATed out of it), only once `guard` has installed the loopback guard that
   * keeps its containers from the host's loopback services (CVE-2020-8558); if that fails,
   * the sysctl is not touched. `false` turns routing 127/8 off again.
   */
  routeLocalnet(name: string, guard: Pick<Nat, 'ensureLoopbackGuard'> | false): Promise<void>;
}

async function withHandle<T>(given: Handle | undefined, fn: (h: Handle) => Promise<T>): Promise<T> {
  const h = given ?? ((await rtnetlink.open()) as Handle);
  try {
    return await fn(h);
  } finally {
    if (!given) h.closeSync();
  }
}

function make(h: Handle | undefined, link: Link, subnet: Subnet): Bridge {
  return {
    name: link.name,
    subnet,
    link,
    attach: (l) =>
      withHandle(h, async (hh) => {
        await hh.links.setMaster(l, link.name);
        await hh.links.setUp(l);
      }),
    detach: (l) => withHandle(h, async (hh) => hh.links.remove(l)),
  };
}

const gatewayCidr = (s: Subnet) => `${s.gateway}/${parseCidr(s.cidr).prefix}` as IPv4Cidr;

/** Sets a per-interface IPv4 sysctl (`route_localnet`, …) on a link berth owns. */
export function setIfSysctl(link: string, key: string, value: string): void {
  if (!/^[A-Za-z0-9_.-]+$/.test(link) || link === '.' || link === '..' || !/^[a-z_]+$/.test(key))
    throw new BerthError(`bad sysctl ${key} for ${link}`, { code: 'EINVALIDNETWORK' });
  writeFileSync(`/proc/sys/net/ipv4/conf/${link}/${key}`, value);
}

export const Bridge: BridgeStatic = {
  async ensure(name, subnet, options = {}) {
    return withHandle(options.handle, async (h) => {
      let link = await h.links.get(name);
      if (link && link.kind !== 'bridge')
        throw new BerthError(`link ${name} exists and is not a bridge`, {
          code: 'EINVALIDNETWORK',
          path: name,
        });
      if (options.owned === false) {
        // not berth's: used as it is, never made, addressed or reconfigured
        if (!link)
          throw new BerthError(
            `bridge ${name} does not exist: the network uses a bridge berth did not make, and berth does not make it`,
            { code: 'EINVALIDNETWORK', path: name },
          );
        return make(options.handle, link, subnet);
      }
      if (!link) {
        try {
          link = await h.links.createBridge(name, options.mtu ? { mtu: options.mtu } : {});
        } catch (e) {
          // another berth made it meanwhile
          if ((e as BerthError).errno !== 'EEXIST') throw e;
          link = (await h.links.get(name))!;
        }
      }
      const want = gatewayCidr(subnet);
      const have = (await h.addresses.list(name))
        .filter((a) => !a.address.includes(':'))
        .map((a) => a.address);
      const others = have.filter((a) => a !== want);
      if (others.length)
        throw new BerthError(
          `bridge ${name} has address ${others.join(', ')}, not ${want}: it belongs to another network`,
          { code: 'EINVALIDNETWORK', path: name },
        );
      if (!have.includes(want)) {
        try {
          await h.addresses.add(name, want as IPv4Cidr);
        } catch (e) {
          if ((e as BerthError).errno !== 'EEXIST') throw e;
        }
      }
      if (!link.up) await h.links.setUp(name);
      // route_localnet is not set here: only Bridge.routeLocalnet sets it, after the loopback guard
      return make(options.handle, (await h.links.get(name))!, subnet);
    });
  },
  async get(name, options = {}) {
    return withHandle(options.handle, async (h) => {
      const link = await h.links.get(name);
      if (link?.kind !== 'bridge') return undefined;
      const a = (await h.addresses.list(name)).find((x) => !x.address.includes(':'));
      if (!a) return undefined;
      const { address, prefix } = parseCidr(a.address);
      const r = hostRange(a.address);
      return make(options.handle, link, {
        cidr: `${intToIPv4(r.network)}/${prefix}` as Subnet['cidr'],
        gateway: address as Subnet['gateway'],
      });
    });
  },
  async routeLocalnet(name, guard) {
    if (guard === false) {
      setIfSysctl(name, 'route_localnet', '0');
      return;
    }
    // the guard first: a bridge routing 127/8 without it is the CVE-2020-8558 hole
    await guard.ensureLoopbackGuard(name);
    setIfSysctl(name, 'route_localnet', '1');
  },
  async removeIfUnused(name, options = {}) {
    return withHandle(options.handle, async (h) => {
      const link = await h.links.get(name);
      if (link?.kind !== 'bridge') return false;
      if ((await h.links.list()).some((l) => l.master === link.index)) return false;
      await h.links.remove(name);
      return true;
    });
  },
};
