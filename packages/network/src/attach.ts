import type { IPv4Cidr, Subnet } from './address.js';
import type { ResolvConf } from './dns.js';
import type { Lease } from './ipam.js';
import type { PortMapping, PublishSpec } from './nat.js';
import type { NetnsRef } from './netns.js';

/**
 * `none`: a private namespace with only lo (what berth does today);
 * `host`: the host's namespace (no `network` entry in linux.namespaces);
 * `bridge`: a veth into the container, its peer on a bridge, an address, NAT.
 */
export type NetworkMode = 'none' | 'host' | 'bridge';

/** What the runtime asks for at the "ns-ready" sync point, when the container's namespaces exist. */
export interface AttachRequest {
  containerId: string;
  /** The container's network namespace (usually `{ pid }` of its init process). */
  netns: NetnsRef;
  /** The bridge network to join, e.g. `berth0`. */
  network: string;
  subnet: Subnet;
  /** The name of the link inside the container (default `eth0`). */
  ifname?: string;
  /** `-p` values to publish. */
  publish?: readonly PublishSpec[];
  hostname?: string;
  /** Where resolv.conf and hosts for this container are written. */
  filesDir: string;
}

/** Everything attach made, kept in the container's state so detach can undo exactly that. */
export interface Attachment {
  containerId: string;
  network: string;
  /** The host end of the veth. */
  hostLink: string;
  /** The link inside the container. */
  ifname: string;
  lease: Lease;
  address: IPv4Cidr;
  ports: PortMapping[];
  resolvConf: ResolvConf;
  /** Host paths of the generated resolv.conf and hosts. */
  files: { resolvConf: string; hosts: string };
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
