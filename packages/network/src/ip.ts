import { BerthError } from '@berth/sys';
import type { IPv4Address, IPv4Cidr, Subnet } from './address.js';

/** An `EINVALIDNETWORK` error naming the field and the bad value. */
export function invalid(field: string, value: unknown, why: string): BerthError {
  return new BerthError(`${field} ${JSON.stringify(value)}: ${why}`, {
    code: 'EINVALIDNETWORK',
    path: field,
  });
}

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIPv4(s: string): s is IPv4Address {
  const m = V4.exec(s);
  return !!m && m.slice(1).every((o) => Number(o) <= 255 && (o === '0' || !o.startsWith('0')));
}

export function isIPv6(s: string): boolean {
  try {
    parseIPv6(s);
    return true;
  } catch {
    return false;
  }
}

export function ipv4ToInt(a: string): number {
  if (!isIPv4(a)) throw invalid('address', a, 'not an IPv4 address');
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function intToIPv4(n: number): IPv4Address {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}` as IPv4Address;
}

/** The 16 bytes of an IPv6 address (`::` and an embedded dotted quad allowed). */
export function parseIPv6(s: string): Buffer {
  const bad = () => invalid('address', s, 'not an IPv6 address');
  if (!s.includes(':')) throw bad();
  let text = s;
  const lastColon = text.lastIndexOf(':');
  const maybeV4 = text.slice(lastColon + 1);
  if (maybeV4.includes('.')) {
    if (!isIPv4(maybeV4)) throw bad();
    const n = ipv4ToInt(maybeV4);
    text = `${text.slice(0, lastColon + 1)}${((n >>> 16) & 0xffff).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) throw bad();
  const part = (h: string | undefined) => (h ? h.split(':') : []);
  const head = part(halves[0]);
  const rest = halves.length === 2 ? part(halves[1]) : [];
  const groups = head.length + rest.length;
  if (halves.length === 1 ? groups !== 8 : groups > 7) throw bad();
  const words = [...head, ...Array(halves.length === 2 ? 8 - groups : 0).fill('0'), ...rest].map((g) => {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) throw bad();
    return Number.parseInt(g, 16);
  });
  const out = Buffer.alloc(16);
  for (const [i, w] of words.entries()) out.writeUInt16BE(w, i * 2);
  return out;
}

/** RFC 5952 text of 16 bytes. */
export function formatIPv6(b: Buffer): string {
  const w = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = w.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The bytes of an address: 4 for IPv4, 16 for IPv6. */
export function ipBytes(a: string): Buffer {
  if (isIPv4(a)) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(ipv4ToInt(a) >>> 0);
    return b;
  }
  return parseIPv6(a);
}

export function formatIp(b: Buffer): string {
  if (b.length === 4) return intToIPv4(b.readUInt32BE(0));
  return formatIPv6(b);
}

/** `addr/prefix` split and checked; the family follows the address. */
export function parseCidr(s: string, field = 'subnet'): { address: string; prefix: number; family: 4 | 6 } {
  const slash = s.indexOf('/');
  if (slash < 0) throw invalid(field, s, 'needs a /prefix');
  const address = s.slice(0, slash);
  const p = s.slice(slash + 1);
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0;
  if (!family) throw invalid(field, s, 'is not an IPv4 or IPv6 address');
  const prefix = /^\d{1,3}$/.test(p) ? Number(p) : Number.NaN;
  if (!(prefix >= 0 && prefix <= (family === 4 ? 32 : 128)))
    throw invalid(field, s, 'has a bad prefix length');
  return { address, prefix, family };
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The usable host range of an IPv4 network: [first, last] as integers (network and broadcast excluded). */
export function hostRange(cidr: string): { network: number; first: number; last: number; prefix: number } {
  const { address, prefix, family } = parseCidr(cidr);
  if (family !== 4) throw invalid('subnet', cidr, 'only IPv4 subnets are managed by IPAM');
  if (prefix > 30) throw invalid('subnet', cidr, 'is too small: use a prefix of /30 or shorter');
  const network = (ipv4ToInt(address) & mask(prefix)) >>> 0;
  const broadcast = (network | (~mask(prefix) >>> 0)) >>> 0;
  return { network, first: network + 1, last: broadcast - 1, prefix };
}

export function contains(cidr: string, address: string): boolean {
  const { address: net, prefix } = parseCidr(cidr);
  return (ipv4ToInt(address) & mask(prefix)) >>> 0 === (ipv4ToInt(net) & mask(prefix)) >>> 0;
}

/**
 * IPv4 ranges a bridge network cannot use: the host would route them as something else
 * (loopback, multicast), or they mean something on every link (this network, link-local,
 * reserved and broadcast).
 */
export const RESERVED_SUBNETS: ReadonlyArray<{ cidr: string; what: string }> = [
  { cidr: '0.0.0.0/8', what: '"this network" (RFC 1122)' },
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '169.254.0.0/16', what: 'link-local' },
  { cidr: '224.0.0.0/4', what: 'multicast' },
  { cidr: '240.0.0.0/4', what: 'reserved, with the broadcast address 255.255.255.255' },
];

/** A subnet with its gateway (the first host address unless given), checked. */
export function makeSubnet(cidr: string, gateway?: string): Subnet {
  const r = hostRange(cidr);
  const normal = `${intToIPv4(r.network)}/${r.prefix}` as IPv4Cidr;
  if (normal !== cidr) throw invalid('subnet', cidr, `has host bits set (the network is ${normal})`);
  const reserved = RESERVED_SUBNETS.find((x) => overlaps(x.cidr, normal));
  if (reserved)
    throw invalid(
      'subnet',
      cidr,
      `overlaps ${reserved.cidr} (${reserved.what}), which a container network cannot use: choose a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16`,
    );
  const gw = gateway ?? intToIPv4(r.first);
  if (!isIPv4(gw) || !contains(cidr, gw) || ipv4ToInt(gw) < r.first || ipv4ToInt(gw) > r.last)
    throw invalid('gateway', gw, `is not a host address of ${cidr}`);
  return { cidr: normal, gateway: gw };
}

/** Whether two IPv4 networks overlap. */
export function overlaps(a: string, b: string): boolean {
  const x = hostRange(a);
  const y = hostRange(b);
  return x.network <= y.last + 1 && y.network <= x.last + 1;
}
