import type { Subnet } from './address.js';
import type { Link } from './netlink.js';

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
 * `EINVALIDNETWORK` error rather than a silent reconfiguration.
 */
export interface BridgeStatic {
  ensure(name: string, subnet: Subnet, options?: { mtu?: number }): Promise<Bridge>;
  get(name: string): Promise<Bridge | undefined>;
  /** Deletes the bridge when no link is attached to it any more; returns whether it was deleted. */
  removeIfUnused(name: string): Promise<boolean>;
}
