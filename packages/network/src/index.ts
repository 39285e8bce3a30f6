/**
 * `@berth/network`: container networking. Interface only: the types and
 * signatures the implementation (a later issue) will fulfil. The only values
 * exported are kernel facts.
 *
 * @packageDocumentation
 */
export { IFNAMSIZ, type IPv4Address, type IPv4Cidr, type MacAddress, type Subnet } from './address.js';
export type { Attachment, AttachRequest, Network, NetworkMode } from './attach.js';
export type { Bridge, BridgeStatic } from './bridge.js';
export type { DnsFiles, HostsEntry, ResolvConf } from './dns.js';
export type { NetworkErrorCode, NetworkErrorFields } from './errors.js';
export type { Ipam, IpamOptions, Lease } from './ipam.js';
export type { Nat, NatBackend, ParsePublish, PortMapping, PortProtocol, PublishSpec } from './nat.js';
export {
  type Addresses,
  type Link,
  type LinkAddress,
  type LinkKind,
  type Links,
  NETLINK_ROUTE,
  type Route,
  type Routes,
  RTM,
  type Rtnetlink,
  type RtnetlinkHandle,
  type VethRequest,
} from './netlink.js';
export type { NetnsRef } from './netns.js';
