import type { IPv4Address, IPv4Cidr } from './address.js';

export type PortProtocol = 'tcp' | 'udp';

/** A published port: traffic to `hostIp:hostPort` goes to `containerIp:containerPort`. */
export interface PortMapping {
  protocol: PortProtocol;
  /** The host address to listen on; absent means every address (`0.0.0.0`). */
  hostIp?: IPv4Address;
  hostPort: number;
  containerIp: IPv4Address;
  containerPort: number;
}

/**
 * A `-p` request before the container has an address: podman's syntax
 * `[hostIp:][hostPort:]containerPort[/protocol]`. A missing host port means
 * the same as the container port.
 */
export type PublishSpec = string;

/** What rules are written with: the nftables netlink API through `nft`, or legacy iptables. */
export type NatBackend = 'nftables' | 'iptables';

/**
 * NAT for bridge networks: masquerade of the subnet's outgoing traffic, and
 * DNAT rules for published ports, kept in berth's own table/chain so they can
 * be listed and removed per container without touching anyone else's rules.
 */
export interface Nat {
  readonly backend: NatBackend;
  /** Masquerades traffic from `subnet` that leaves through any link but the bridge (idempotent). */
  ensureMasquerade(bridge: string, subnet: IPv4Cidr): Promise<void>;
  /** Installs the port mappings of a container; `EPORTINUSE` if another container holds a host port. */
  publish(containerId: string, mappings: readonly PortMapping[]): Promise<void>;
  /** Removes every rule of the container; removing none is not an error. */
  unpublish(containerId: string): Promise<void>;
  /** The mappings currently installed, by container id. */
  published(): Promise<Map<string, PortMapping[]>>;
}

/** Parses one `-p` value (`8080:80/tcp`); throws `EINVALIDNETWORK` naming the value. */
export type ParsePublish = (spec: PublishSpec, containerIp: IPv4Address) => PortMapping;
