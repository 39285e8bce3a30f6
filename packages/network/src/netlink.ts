import { closeSync, fstatSync } from 'node:fs';
import {
  AF_NETLINK,
  BerthError,
  errnoName,
  inNetns,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  type NetSys,
  netlibc,
  SO_RCVTIMEO,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
  strerror,
} from '@berth/sys';
import type { IPv4Address, IPv4Cidr, MacAddress } from './address.js';
import { formatIp, invalid, ipBytes, isIPv4, parseCidr } from './ip.js';
import { type NetnsRef, openNetns } from './netns.js';

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

/** netlink.h and rtnetlink.h numbers the codec uses. */
export const NL = {
  NOOP: 1,
  ERROR: 2,
  DONE: 3,
  F_REQUEST: 0x1,
  F_MULTI: 0x2,
  F_ACK: 0x4,
  F_DUMP: 0x300,
  F_REPLACE: 0x100,
  F_EXCL: 0x200,
  F_CREATE: 0x400,
  /** In an NLMSG_ERROR: the request was not echoed back (NETLINK_CAP_ACK). */
  F_CAPPED: 0x100,
  /** In an NLMSG_ERROR: extended-ack TLVs follow. */
  F_ACK_TLVS: 0x200,
  ERR_ATTR_MSG: 1,
  ERR_ATTR_OFFS: 2,
  NLA_F_NESTED: 0x8000,
} as const;

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_PID: 19,
  NET_NS_FD: 28,
  INFO_KIND: 1,
  INFO_DATA: 2,
  INFO_SLAVE_KIND: 4,
  VETH_INFO_PEER: 1,
} as const;

export const IFA = {
  ADDRESS: 1,
  LOCAL: 2,
  LABEL: 3,
  BROADCAST: 4,
  FLAGS: 8,
  F_NODAD: 0x2,
  F_PERMANENT: 0x80,
} as const;
export const RTA = { DST: 1, OIF: 4, GATEWAY: 5, PRIORITY: 6, PREFSRC: 7, TABLE: 15 } as const;
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const IFF_UP = 1;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;

/** The link kinds berth creates or reads (`IFLA_INFO_KIND`); `device` is a link without a kind berth knows (lo, eth0, dummy…). */
export type LinkKind = 'veth' | 'bridge' | 'device';

/** A network interface as the kernel reports it. */
export interface Link {
  /** The interface index (`ifindex`), unique within its namespace. */
  index: number;
  name: string;
  kind: LinkKind;
  /** The raw `IFLA_INFO_KIND` (`veth`, `bridge`, `dummy`, …), absent for plain devices. */
  infoKind?: string;
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
  /** The peer's name (in `peerNetns` when given: there it may be `eth0` at once). */
  peer: string;
  mtu?: number;
  /** Create the peer directly in this namespace (`IFLA_NET_NS_FD`). */
  peerNetns?: NetnsRef;
  /** A MAC for the peer. */
  peerMac?: MacAddress;
}

/** An IPv6 network or interface address with its prefix length, e.g. `fd00::2/64`. */
export type IPv6Cidr = `${string}:${string}/${number}`;

/** An address on a link (`RTM_NEWADDR`). */
export interface LinkAddress {
  /** The link's index. */
  link: number;
  /** The address with its prefix, e.g. `10.88.0.2/16` or `fd00::2/64`. */
  address: IPv4Cidr | IPv6Cidr;
  /** Its scope (`RT_SCOPE_*`: 0 global, 253 link, 254 host), as listed. */
  scope?: number;
  /** `IFA_F_PERMANENT`: configured, not from autoconfiguration or DHCP with a lifetime, as listed. */
  permanent?: boolean;
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
  createVeth(request: VethRequest): Promise<{ host: Link; peer?: Link }>;
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
  add(link: string, address: IPv4Cidr | IPv6Cidr): Promise<void>;
  remove(link: string, address: IPv4Cidr | IPv6Cidr): Promise<void>;
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
 * socket is created after a setns(CLONE_NEWNET) of the main thread, which a
 * multi-threaded process may do for network namespaces, and the thread goes
 * straight back).
 */
export interface Rtnetlink {
  open(netns?: NetnsRef): Promise<RtnetlinkHandle>;
}

// ---------------------------------------------------------------- the codec

/** One netlink attribute: a type and either bytes or nested attributes. */
export type Attr = { type: number; data: Buffer } | { type: number; nested: Attr[] };

const align4 = (n: number) => (n + 3) & ~3;

/** Encodes attributes (nested ones get NLA_F_NESTED), each padded to 4 bytes. */
export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const a of attrs) {
    const data = 'nested' in a ? encodeAttrs(a.nested) : a.data;
    const h = Buffer.alloc(4);
    h.writeUInt16LE(4 + data.length, 0);
    h.writeUInt16LE('nested' in a ? a.type | NL.NLA_F_NESTED : a.type, 2);
    parts.push(h, data, Buffer.alloc(align4(data.length) - data.length));
  }
  return Buffer.concat(parts);
}

/** Decodes a run of attributes into a map by type (the NLA_F_NESTED bit is cleared). */
export function decodeAttrs(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (len < 4 || off + len > buf.length) break;
    out.set(type, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export const attr = {
  str: (type: number, s: string): Attr => ({ type, data: Buffer.from(`${s}\0`) }),
  u32: (type: number, n: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n >>> 0);
    return { type, data: b };
  },
  s32: (type: number, n: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return { type, data: b };
  },
  bytes: (type: number, data: Buffer): Attr => ({ type, data }),
  nest: (type: number, nested: Attr[]): Attr => ({ type, nested }),
};

/** A netlink message: 16-byte header then the payload. */
export function encodeMessage(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + payload.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h.writeUInt32LE(seq, 8);
  h.writeUInt32LE(0, 12);
  return Buffer.concat([h, payload]);
}

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  payload: Buffer;
}

export function decodeMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len < 16 || off + len > buf.length) break;
    out.push({
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      payload: buf.subarray(off + 16, off + len),
    });
    off += align4(len);
  }
  return out;
}

/** struct ifinfomsg followed by attributes. */
export function ifinfomsg(
  o: { family?: number; index?: number; flags?: number; change?: number },
  attrs: Attr[] = [],
): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(o.family ?? AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return Buffer.concat([b, encodeAttrs(attrs)]);
}

function ifaddrmsg(family: number, prefix: number, index: number, attrs: Attr[], scope = 0): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt8(family, 0);
  b.writeUInt8(prefix, 1);
  b.writeUInt8(0, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(index, 4);
  return Buffer.concat([b, encodeAttrs(attrs)]);
}

function rtmsg(
  o: { family: number; dstLen: number; scope: number; protocol: number },
  attrs: Attr[],
): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt8(o.family, 0);
  b.writeUInt8(o.dstLen, 1);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  b.writeUInt8(o.protocol, 5);
  b.writeUInt8(o.scope, 6);
  b.writeUInt8(RTN_UNICAST, 7);
  return Buffer.concat([b, encodeAttrs(attrs)]);
}

/** Parses an RTM_NEWLINK payload. */
export function parseLink(p: Buffer): Link {
  const index = p.readInt32LE(4);
  const flags = p.readUInt32LE(8);
  const a = decodeAttrs(p.subarray(16));
  const cstr = (b: Buffer | undefined) => (b ? b.toString('utf8').replace(/\0.*$/s, '') : '');
  const info = a.get(IFLA.LINKINFO);
  const infoKind = info ? cstr(decodeAttrs(info).get(IFLA.INFO_KIND)) || undefined : undefined;
  const mac = a.get(IFLA.ADDRESS);
  const master = a.get(IFLA.MASTER)?.readUInt32LE(0);
  return {
    index,
    name: cstr(a.get(IFLA.IFNAME)),
    kind: infoKind === 'veth' ? 'veth' : infoKind === 'bridge' ? 'bridge' : 'device',
    ...(infoKind ? { infoKind } : {}),
    mtu: a.get(IFLA.MTU)?.readUInt32LE(0) ?? 0,
    mac: (mac ? [...mac].map((x) => x.toString(16).padStart(2, '0')).join(':') : '') as MacAddress,
    up: (flags & IFF_UP) !== 0,
    ...(master ? { master } : {}),
  };
}

/** The message of an NLMSG_ERROR with its extended ack: `{ errno, message? }` (errno 0 is an ack). */
export function parseError(payload: Buffer, flags: number): { errno: number; message?: string } {
  const errno = -payload.readInt32LE(0) || 0;
  if (!(flags & NL.F_ACK_TLVS)) return { errno };
  // the echoed request: its header only when capped, else header and payload
  const reqLen = payload.readUInt32LE(4);
  const skip = 4 + (flags & NL.F_CAPPED ? 16 : align4(reqLen));
  const tlvs = decodeAttrs(payload.subarray(skip));
  const msg = tlvs.get(NL.ERR_ATTR_MSG);
  return msg ? { errno, message: msg.toString('utf8').replace(/\0.*$/s, '') } : { errno };
}

function validName(field: string, name: string): string {
  if (!name || Buffer.byteLength(name) > 15 || /[/\s:]/.test(name) || name === '.' || name === '..')
    throw invalid(field, name, 'an interface name is 1 to 15 bytes without "/", ":" or whitespace');
  return name;
}

// ---------------------------------------------------------------- the socket

/** A NETLINK_ROUTE socket with synchronous request/response (the kernel answers during the send). */
export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 1e6);
  private readonly buf = Buffer.alloc(256 * 1024);
  private closed = false;

  private constructor(
    private readonly sys: NetSys,
    readonly fd: number,
  ) {}

  /** Opens a socket in the calling thread's namespace, or (with `nsfd`) in that namespace. */
  static open(sys: NetSys, nsfd?: number): NetlinkSocket {
    const make = () => sys.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    const fd = nsfd === undefined ? make() : inNetns(sys, nsfd, make);
    try {
      const one = Buffer.alloc(4);
      one.writeUInt32LE(1);
      sys.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, one);
      sys.setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, one);
      // never block forever: the kernel answers at once, a silent socket is a bug
      const tv = Buffer.alloc(16);
      tv.writeBigInt64LE(5n, 0);
      sys.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv);
      const sa = Buffer.alloc(12);
      sa.writeUInt16LE(AF_NETLINK, 0);
      sys.bind(fd, sa);
    } catch (e) {
      sys.close(fd);
      throw e;
    }
    return new NetlinkSocket(sys, fd);
  }

  /**
   * Sends one request and collects the answer: the messages of a dump, or
   * nothing for an acknowledged change. A kernel error becomes `ENETLINK`
   * with the errno and the extended-ack text, described as `op`.
   */
  request(type: number, flags: number, payload: Buffer, op: string, path?: string): NlMessage[] {
    if (this.closed) throw new BerthError(`${op}: the netlink socket is closed`, { code: 'ENETLINK', op });
    const seq = ++this.seq;
    this.sys.send(this.fd, encodeMessage(type, flags | NL.F_REQUEST | NL.F_ACK, seq, payload));
    const out: NlMessage[] = [];
    for (;;) {
      const n = this.sys.recv(this.fd, this.buf);
      for (const m of decodeMessages(this.buf.subarray(0, n))) {
        if (m.seq !== seq) continue;
        if (m.type === NL.DONE) return out;
        if (m.type === NL.ERROR) {
          const { errno, message } = parseError(m.payload, m.flags);
          if (errno === 0) return out;
          const name = errnoName(errno);
          throw Object.assign(
            new BerthError(
              `${op}${path ? ` ${path}` : ''}: ${name} (${strerror(errno)})${message ? `: ${message}` : ''}`,
              { code: 'ENETLINK', op, errno: name, ...(path ? { path } : {}) },
            ),
            { errnoNumber: errno, ...(message ? { extack: message } : {}) },
          );
        }
        // the receive buffer is reused: keep a copy
        if (m.type !== NL.NOOP) out.push({ ...m, payload: Buffer.from(m.payload) });
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sys.close(this.fd);
  }
}

const isErrno = (e: unknown, name: string) => e instanceof BerthError && e.errno === name;

// ---------------------------------------------------------------- the verbs

/** Links, addresses and routes over one socket, vishvananda/netlink style. */
export class Handle implements RtnetlinkHandle {
  readonly links: Links;
  readonly addresses: Addresses;
  readonly routes: Routes;

  constructor(
    readonly socket: NetlinkSocket,
    private readonly sys: NetSys,
  ) {
    this.links = {
      list: async () => this.linkList(),
      get: async (name) => this.linkGet(name),
      createVeth: async (r) => this.createVeth(r),
      createBridge: async (name, o) => this.createBridge(name, o?.mtu),
      setUp: async (name) => this.setFlags(name, IFF_UP, 'set up'),
      setDown: async (name) => this.setFlags(name, 0, 'set down'),
      setMaster: async (name, bridge) => {
        const br = await this.requireLink(bridge);
        this.setLink(name, [attr.u32(IFLA.MASTER, br.index)], 'set master');
      },
      setMtu: async (name, mtu) => this.setLink(name, [attr.u32(IFLA.MTU, mtu)], 'set mtu'),
      rename: async (name, newName) =>
        this.setLink(name, [attr.str(IFLA.IFNAME, validName('name', newName))], 'rename link'),
      moveToNetns: async (name, target, newName) => {
        const ns = openNetns(target);
        try {
          this.setLink(
            name,
            [
              attr.u32(IFLA.NET_NS_FD, ns),
              ...(newName ? [attr.str(IFLA.IFNAME, validName('name', newName))] : []),
            ],
            'move link',
          );
        } finally {
          closeSync(ns);
        }
      },
      remove: async (name) => {
        try {
          this.socket.request(
            RTM.DELLINK,
            0,
            ifinfomsg({}, [attr.str(IFLA.IFNAME, name)]),
            'delete link',
            name,
          );
        } catch (e) {
          if (!isErrno(e, 'ENODEV')) throw e;
        }
      },
    };
    this.addresses = {
      list: async (link) => this.addrList(link),
      add: async (link, address) =>
        this.addr(RTM.NEWADDR, NL.F_CREATE | NL.F_EXCL, link, address, 'add address'),
      remove: async (link, address) => this.addr(RTM.DELADDR, 0, link, address, 'delete address'),
    };
    this.routes = {
      list: async () => this.routeList(),
      add: async (r) => this.route(RTM.NEWROUTE, NL.F_CREATE | NL.F_EXCL, r, 'add route'),
      remove: async (r) => this.route(RTM.DELROUTE, 0, r, 'delete route'),
    };
  }

  linkList(): Link[] {
    return this.socket
      .request(RTM.GETLINK, NL.F_DUMP, ifinfomsg({}), 'list links')
      .filter((m) => m.type === RTM.NEWLINK)
      .map((m) => parseLink(m.payload));
  }

  linkGet(name: string): Link | undefined {
    try {
      const [m] = this.socket.request(
        RTM.GETLINK,
        0,
        ifinfomsg({}, [attr.str(IFLA.IFNAME, name)]),
        'get link',
        name,
      );
      return m ? parseLink(m.payload) : undefined;
    } catch (e) {
      if (isErrno(e, 'ENODEV')) return undefined;
      throw e;
    }
  }

  private async requireLink(name: string): Promise<Link> {
    const l = this.linkGet(name);
    if (!l)
      throw new BerthError(`link ${name} does not exist`, {
        code: 'ENETLINK',
        op: 'get link',
        path: name,
        errno: 'ENODEV',
      });
    return l;
  }

  private setLink(name: string, attrs: Attr[], op: string, flags?: { flags: number; change: number }): void {
    // a new name travels as IFLA_IFNAME: then the link is named by its index
    const renames = attrs.some((a) => a.type === IFLA.IFNAME);
    const index = renames ? this.linkGet(name)?.index : undefined;
    if (renames && index === undefined)
      throw new BerthError(`${op} ${name}: ENODEV (no such device)`, {
        code: 'ENETLINK',
        op,
        path: name,
        errno: 'ENODEV',
      });
    this.socket.request(
      RTM.NEWLINK,
      0,
      ifinfomsg({ ...(flags ?? {}), ...(index !== undefined ? { index } : {}) }, [
        ...(index === undefined ? [attr.str(IFLA.IFNAME, name)] : []),
        ...attrs,
      ]),
      op,
      name,
    );
  }

  private setFlags(name: string, flags: number, op: string): void {
    this.setLink(name, [], op, { flags, change: IFF_UP });
  }

  private createVeth(r: VethRequest): { host: Link; peer?: Link } {
    validName('host', r.host);
    validName('peer', r.peer);
    const ns = r.peerNetns ? openNetns(r.peerNetns) : undefined;
    try {
      const mtu = r.mtu ? [attr.u32(IFLA.MTU, r.mtu)] : [];
      const peerAttrs: Attr[] = [
        attr.str(IFLA.IFNAME, r.peer),
        ...mtu,
        ...(ns !== undefined ? [attr.u32(IFLA.NET_NS_FD, ns)] : []),
        ...(r.peerMac ? [attr.bytes(IFLA.ADDRESS, macBytes(r.peerMac))] : []),
      ];
      const payload = ifinfomsg({}, [
        attr.str(IFLA.IFNAME, r.host),
        ...mtu,
        attr.nest(IFLA.LINKINFO, [
          attr.str(IFLA.INFO_KIND, 'veth'),
          // VETH_INFO_PEER carries a whole ifinfomsg, then the peer's attributes
          attr.nest(IFLA.INFO_DATA, [attr.bytes(IFLA.VETH_INFO_PEER, ifinfomsg({}, peerAttrs))]),
        ]),
      ]);
      this.socket.request(RTM.NEWLINK, NL.F_CREATE | NL.F_EXCL, payload, 'create veth', r.host);
    } finally {
      if (ns !== undefined) closeSync(ns);
    }
    const host = this.linkGet(r.host);
    if (!host)
      throw new BerthError(`veth ${r.host} vanished after its creation`, { code: 'ENETLINK', path: r.host });
    const peer = r.peerNetns ? undefined : this.linkGet(r.peer);
    return { host, ...(peer ? { peer } : {}) };
  }

  private createBridge(name: string, mtu?: number): Link {
    validName('bridge', name);
    this.socket.request(
      RTM.NEWLINK,
      NL.F_CREATE | NL.F_EXCL,
      ifinfomsg({}, [
        attr.str(IFLA.IFNAME, name),
        ...(mtu ? [attr.u32(IFLA.MTU, mtu)] : []),
        attr.nest(IFLA.LINKINFO, [attr.str(IFLA.INFO_KIND, 'bridge')]),
      ]),
      'create bridge',
      name,
    );
    const l = this.linkGet(name);
    if (!l)
      throw new BerthError(`bridge ${name} vanished after its creation`, { code: 'ENETLINK', path: name });
    return l;
  }

  private addrList(link?: string): LinkAddress[] {
    const index = link !== undefined ? this.linkGet(link)?.index : undefined;
    if (link !== undefined && index === undefined) return [];
    const out: LinkAddress[] = [];
    for (const m of this.socket.request(
      RTM.GETADDR,
      NL.F_DUMP,
      ifaddrmsg(AF_UNSPEC, 0, 0, []),
      'list addresses',
    )) {
      if (m.type !== RTM.NEWADDR) continue;
      const prefix = m.payload.readUInt8(1);
      const idx = m.payload.readUInt32LE(4);
      if (index !== undefined && idx !== index) continue;
      const a = decodeAttrs(m.payload.subarray(8));
      const raw = a.get(IFA.LOCAL) ?? a.get(IFA.ADDRESS);
      if (!raw) continue;
      // IFA_FLAGS (32 bits) when the kernel sends it, else ifa_flags (8)
      const fl = a.get(IFA.FLAGS);
      const flags = fl && fl.length >= 4 ? fl.readUInt32LE(0) : m.payload.readUInt8(2);
      out.push({
        link: idx,
        address: `${formatIp(Buffer.from(raw))}/${prefix}` as IPv4Cidr,
        scope: m.payload.readUInt8(3),
        permanent: (flags & IFA.F_PERMANENT) !== 0,
      });
    }
    return out;
  }

  private async addr(type: number, flags: number, link: string, address: string, op: string): Promise<void> {
    const { address: ip, prefix, family } = parseCidr(address, 'address');
    const l = await this.requireLink(link);
    const bytes = ipBytes(ip);
    const attrs: Attr[] = [attr.bytes(IFA.LOCAL, bytes), attr.bytes(IFA.ADDRESS, bytes)];
    if (family === 4 && prefix < 31) {
      const n = bytes.readUInt32BE(0);
      const bc = Buffer.alloc(4);
      bc.writeUInt32BE((n | (prefix === 0 ? 0xffffffff : ~(0xffffffff << (32 - prefix)))) >>> 0);
      attrs.push(attr.bytes(IFA.BROADCAST, bc));
    }
    // no duplicate address detection for v6: the container's address is ours to give
    if (family === 6) attrs.push(attr.u32(IFA.FLAGS, IFA.F_NODAD));
    this.socket.request(
      type,
      flags,
      ifaddrmsg(family === 4 ? AF_INET : AF_INET6, prefix, l.index, attrs),
      op,
      `${address} on ${link}`,
    );
  }

  private routeList(): Route[] {
    const out: Route[] = [];
    const req = rtmsg({ family: AF_INET, dstLen: 0, scope: 0, protocol: 0 }, []);
    for (const m of this.socket.request(RTM.GETROUTE, NL.F_DUMP, req, 'list routes')) {
      if (m.type !== RTM.NEWROUTE) continue;
      if (m.payload.readUInt8(4) !== RT_TABLE_MAIN) continue;
      const dstLen = m.payload.readUInt8(1);
      const a = decodeAttrs(m.payload.subarray(12));
      const dst = a.get(RTA.DST);
      const gw = a.get(RTA.GATEWAY);
      const oif = a.get(RTA.OIF)?.readUInt32LE(0);
      out.push({
        destination: dst ? (`${formatIp(Buffer.from(dst))}/${dstLen}` as IPv4Cidr) : 'default',
        ...(gw ? { gateway: formatIp(Buffer.from(gw)) as IPv4Address } : {}),
        ...(oif ? { link: oif } : {}),
      });
    }
    return out;
  }

  private route(type: number, flags: number, r: Route, op: string): void {
    const attrs: Attr[] = [];
    let dstLen = 0;
    if (r.destination !== 'default') {
      const { address, prefix, family } = parseCidr(r.destination, 'destination');
      if (family !== 4) throw invalid('destination', r.destination, 'only IPv4 routes are supported');
      dstLen = prefix;
      attrs.push(attr.bytes(RTA.DST, ipBytes(address)));
    }
    if (r.gateway !== undefined) {
      if (!isIPv4(r.gateway)) throw invalid('gateway', r.gateway, 'not an IPv4 address');
      attrs.push(attr.bytes(RTA.GATEWAY, ipBytes(r.gateway)));
    }
    if (r.link !== undefined) attrs.push(attr.u32(RTA.OIF, r.link));
    const scope = r.gateway === undefined ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
    this.socket.request(
      type,
      flags,
      rtmsg({ family: AF_INET, dstLen, scope, protocol: type === RTM.NEWROUTE ? RTPROT_BOOT : 0 }, attrs),
      op,
      r.destination,
    );
  }

  async close(): Promise<void> {
    this.socket.close();
  }

  /** The same, synchronously. */
  closeSync(): void {
    this.socket.close();
  }

  get netsys(): NetSys {
    return this.sys;
  }
}

function macBytes(mac: string): Buffer {
  const parts = mac.split(':');
  if (parts.length !== 6 || !parts.every((p) => /^[0-9a-f]{2}$/i.test(p)))
    throw invalid('mac', mac, 'not a MAC address');
  return Buffer.from(parts.map((p) => Number.parseInt(p, 16)));
}

/** Opens rtnetlink handles; the FFI is loaded on first use. */
export const rtnetlink: Rtnetlink & { openSync(sys: NetSys, netns?: NetnsRef): Handle } = {
  async open(netns?: NetnsRef): Promise<Handle> {
    return rtnetlink.openSync(await netlibc(), netns);
  },
  openSync(sys: NetSys, netns?: NetnsRef): Handle {
    if (!netns) return new Handle(NetlinkSocket.open(sys), sys);
    const fd = openNetns(netns);
    try {
      return new Handle(NetlinkSocket.open(sys, fd), sys);
    } finally {
      closeSync(fd);
    }
  },
};

/** The inode of a network namespace: two refs name the same namespace when these are equal. */
export function netnsInode(ref: NetnsRef): number {
  const fd = openNetns(ref);
  try {
    return fstatSync(fd).ino;
  } finally {
    closeSync(fd);
  }
}
