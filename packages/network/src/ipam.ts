import type { IPv4Address, IPv4Cidr, Subnet } from './address.js';

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
}

export interface IpamOptions {
  /** Where leases are kept (one file per network, written atomically, under a lock). */
  stateDir: string;
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
  allocate(network: string, subnet: Subnet, containerId: string, requested?: IPv4Address): Promise<Lease>;
  /** Frees the container's lease; releasing a lease that does not exist is not an error. */
  release(network: string, containerId: string): Promise<void>;
  leases(network: string): Promise<Lease[]>;
}
