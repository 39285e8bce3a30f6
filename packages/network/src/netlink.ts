import type { IPv4Address, IPv4Cidr, MacAddress } from './address.js';
import type { NetnsRef } from './netns.js';

/**
 * rtnetlink in TypeScript: links, addresses and routes, over a NETLINK_ROUTE
 * socket opened through `@berth/sys`. Every call runs in the network namespace
 * the handle was opened for (see `Rtnetlink.open`), so the runtime never has
 * to shell out to `ip`.
 */

/** The socket protocol of rtnetlink (linux/netlink.h). */
export const NETLINK_ROUTE = 0;

/** rtnetlink message types (linux/rtnetlink.h) the implementation sends. */
export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
} as const;

/** The link kinds berth creates or reads (`IFLA_INFO_KIND`); `device` is a link without a kind (lo, eth0). */
export type LinkKind = 'veth' | 'bridge' | 'device';

/** A network interface as the kernel reports it. */
export interface Link {
  /** The interface index (`ifindex`), unique within its namespace. */
  index: number;
  name: string;
  kind: LinkKind;
  mtu: number;
  mac: MacAddress;
  /** `IFF_UP` is set. */
  up: boolean;
  /** The index of the bridge this link is enslaved to, if any. */
  master?: number;
}

/** What a new veth pair looks like: one end stays on the host, the peer moves into the container. */
export interface VethRequest {
  /** The host end, e.g. `veth3f2a1c0b` (at most 15 bytes). */
  host: string;
  /** The peer's name while it is still on the host (renamed on the move into the container). */
  peer: string;
  mtu?: number;
  /** Create the peer directly in this namespace (`IFLA_NET_NS_PID`/`IFLA_NET_NS_FD`). */
  peerNetns?: NetnsRef;
}

/** An address on a link (`RTM_NEWADDR`). */
export interface LinkAddress {
  /** The link's index. */
  link: number;
  /** The address with its prefix, e.g. `10.88.0.2/16`. */
  address: IPv4Cidr;
}

/** A route (`RTM_NEWROUTE`), main table. */
export interface Route {
  /** `default` or a network such as `10.88.0.0/16`. */
  destination: 'default' | IPv4Cidr;
  gateway?: IPv4Address;
  /** The output link's index. */
  link?: number;
}

/** Links of one network namespace. */
export interface Links {
  list(): Promise<Link[]>;
  /** The link called `name`, or undefined. */
  get(name: string): Promise<Link | undefined>;
  /** Creates a veth pair; fails with `ENETLINK`/`EEXIST` when either name is taken. */
  createVeth(request: VethRequest): Promise<{ host: Link; peer: Link }>;
  /** Creates a bridge; see `Bridges.ensure` for the idempotent form. */
  createBridge(name: string, options?: { mtu?: number }): Promise<Link>;
  setUp(name: string): Promise<void>;
  setDown(name: string): Promise<void>;
  /** Enslaves `name` to the bridge `bridge` (`IFLA_MASTER`). */
  setMaster(name: string, bridge: string): Promise<void>;
  setMtu(name: string, mtu: number): Promise<void>;
  rename(name: string, newName: string): Promise<void>;
  /** Moves the link into another namespace, optionally renaming it there (e.g. to `eth0`). */
  moveToNetns(name: string, target: NetnsRef, newName?: string): Promise<void>;
  /** Deletes the link; deleting one end of a veth pair deletes both. Absent links are not an error. */
  remove(name: string): Promise<void>;
}

/** Addresses of one network namespace. */
export interface Addresses {
  list(link?: string): Promise<LinkAddress[]>;
  add(link: string, address: IPv4Cidr): Promise<void>;
  remove(link: string, address: IPv4Cidr): Promise<void>;
}

/** Routes of one network namespace. */
export interface Routes {
  list(): Promise<Route[]>;
  add(route: Route): Promise<void>;
  remove(route: Route): Promise<void>;
}

/** One rtnetlink socket, bound to the namespace it was opened in. Close it when done. */
export interface RtnetlinkHandle {
  readonly links: Links;
  readonly addresses: Addresses;
  readonly routes: Routes;
  close(): Promise<void>;
}

/**
 * How handles are opened: in the caller's namespace, or in another one (the
 * socket is created after a setns(CLONE_NEWNET) on a helper thread, which a
 * multi-threaded process may do for network namespaces).
 */
export interface Rtnetlink {
  open(netns?: NetnsRef): Promise<RtnetlinkHandle>;
}
