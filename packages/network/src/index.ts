/**
 * `@berth/network`: container networking over rtnetlink, in TypeScript: links,
 * veth pairs, bridges, addresses, routes and netns moves; IPAM on disk; NAT
 * and published ports with nftables; resolv.conf, hosts and hostname; named
 * networks; a CNI plugin (`berth-bridge`) and a CNI driver.
 *
 * @packageDocumentation
 */
export { IFNAMSIZ, type IPv4Address, type IPv4Cidr, type MacAddress, type Subnet } from './address.js';
export {
  type Attachment,
  type AttachRequest,
  attach,
  detach,
  hostLinkName,
  type Network,
  type NetworkMode,
  refreshHosts,
} from './attach.js';
export { Bridge, type BridgeStatic } from './bridge.js';
export {
  attachCni,
  type BerthBridgeConfig,
  berthBridge,
  berthBridgeMain,
  CNI_ERR,
  CNI_VERSIONS,
  type CniAttachment,
  CniDriver,
  type CniEnv,
  CniError,
  type CniResult,
  cniEnv,
  detachCni,
  loadConflist,
} from './cni.js';
export { DnsFiles, type HostsEntry, type ResolvConf } from './dns.js';
export type { NetworkErrorCode, NetworkErrorFields } from './errors.js';
export {
  contains,
  hostRange,
  intToIPv4,
  ipv4ToInt,
  isIPv4,
  isIPv6,
  makeSubnet,
  overlaps,
  parseCidr,
} from './ip.js';
export {
  FileIpam,
  type Ipam,
  type IpamOptions,
  type Lease,
  type LeaseExtra,
  unpublishStale,
} from './ipam.js';
export {
  type Nat,
  type NatBackend,
  NftNat,
  type ParsePublish,
  type PortMapping,
  type PortProtocol,
  type PublishSpec,
  parsePublish,
} from './nat.js';
export {
  isValidDeviceName,
  type MovedDevice,
  moveDevices,
  type NetDeviceRequest,
} from './netdevices.js';
export {
  type Addresses,
  type Attr,
  decodeAttrs,
  encodeAttrs,
  encodeMessage,
  Handle,
  type IPv6Cidr,
  type Link,
  type LinkAddress,
  type LinkKind,
  type Links,
  NETLINK_ROUTE,
  NetlinkSocket,
  netnsInode,
  parseError,
  parseLink,
  type Route,
  type Routes,
  RTM,
  type Rtnetlink,
  type RtnetlinkHandle,
  rtnetlink,
  type VethRequest,
} from './netlink.js';
export { type NetnsRef, openNetns } from './netns.js';
export {
  DEFAULT_NETWORK,
  DEFAULT_SUBNET,
  type NetworkConfig,
  NetworkStore,
} from './store.js';
export { createTap } from './tap.js';
