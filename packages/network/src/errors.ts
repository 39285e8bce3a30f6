import type { BerthErrorFields } from '@berth/sys';

/**
 * The codes a network failure carries: a `BerthError` (from `@berth/sys`)
 * with one of these codes (`ENOTFOUND` too, for a network or CNI plugin that does not exist).
 */
export type NetworkErrorCode =
  /** The kernel refused an rtnetlink request; `errno` says why (EEXIST, EPERM, ENODEV, …). */
  | 'ENETLINK'
  /** A name, subnet, address or port in the request is malformed; the message names the field. */
  | 'EINVALIDNETWORK'
  /** Every address of the subnet is leased. */
  | 'EIPAMEXHAUSTED'
  /** The requested address is leased to another container, or is the gateway. */
  | 'EIPAMCONFLICT'
  /** A published host port is taken by another container or a host socket. */
  | 'EPORTINUSE'
  /** Installing or removing a NAT rule failed (the nft/iptables error is in `cause`). */
  | 'ENAT'
  /** The network namespace to attach to does not exist (the container has exited). */
  | 'ENONETNS'
  /** A CNI plugin run by the CNI driver failed (its `msg` and code are in the message). */
  | 'ECNI'
  /** The network state stayed locked by another berth command for too long. */
  | 'ELOCKED';

/** The fields of a network error: `op` is e.g. `create veth`, `path` the link, subnet or netns path. */
export interface NetworkErrorFields extends BerthErrorFields {
  code: NetworkErrorCode;
}
