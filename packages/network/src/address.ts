/** A dotted-quad IPv4 address, e.g. `10.88.0.2`. */
export type IPv4Address = `${number}.${number}.${number}.${number}`;

/** An IPv4 network or interface address with its prefix length, e.g. `10.88.0.0/16` or `10.88.0.1/16`. */
export type IPv4Cidr = `${IPv4Address}/${number}`;

/** A MAC address as six colon-separated hex octets, e.g. `02:42:0a:58:00:02`. */
export type MacAddress = `${string}:${string}:${string}:${string}:${string}:${string}`;

/** The subnet of a bridge network and the gateway address the bridge itself holds. */
export interface Subnet {
  /** The network, e.g. `10.88.0.0/16`. */
  cidr: IPv4Cidr;
  /** The bridge's address and the containers' default route; by convention the first host address. */
  gateway: IPv4Address;
}

/**
 * Interface names are limited by the kernel's IFNAMSIZ (16 bytes including the
 * terminating NUL): at most 15 bytes, no `/`, no whitespace, not `.` or `..`.
 */
export const IFNAMSIZ = 16;
