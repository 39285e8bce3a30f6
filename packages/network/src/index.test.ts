import { describe, expect, expectTypeOf, it } from 'vitest';
import { DnsFiles } from './dns.js';
import type { IPv4Address, IPv4Cidr, NetnsRef, Route, Subnet } from './index.js';
import * as network from './index.js';
import { formatIPv6, parseIPv6 } from './ip.js';
import { IFLA, ifinfomsg, NL } from './netlink.js';

describe('rtnetlink codec', () => {
  it('has the numbers of linux/netlink.h and linux/rtnetlink.h', () => {
    expect(network.NETLINK_ROUTE).toBe(0);
    expect(network.IFNAMSIZ).toBe(16);
    expect(network.RTM).toMatchObject({ NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, NEWROUTE: 24 });
  });

  it('encodes attributes padded to 4 bytes, nested ones flagged', () => {
    const b = network.encodeAttrs([
      { type: IFLA.IFNAME, data: Buffer.from('ab\0') },
      { type: IFLA.LINKINFO, nested: [{ type: 1, data: Buffer.from('veth\0') }] },
    ]);
    // 4+3 -> 8; nested: 4 + (4+5 -> 12) = 16
    expect(b.length).toBe(24);
    expect(b.readUInt16LE(0)).toBe(7);
    expect(b.readUInt16LE(10)).toBe(IFLA.LINKINFO | NL.NLA_F_NESTED);
    const back = network.decodeAttrs(b);
    expect(back.get(IFLA.IFNAME)?.toString()).toBe('ab\0');
    expect(network.decodeAttrs(back.get(IFLA.LINKINFO)!).get(1)?.toString()).toBe('veth\0');
  });

  it('frames a message with its length, type, flags and sequence', () => {
    const m = network.encodeMessage(16, NL.F_REQUEST | NL.F_ACK, 7, ifinfomsg({ index: 3 }));
    expect(m.readUInt32LE(0)).toBe(32);
    expect(m.readUInt16LE(4)).toBe(16);
    expect(m.readUInt16LE(6)).toBe(5);
    expect(m.readUInt32LE(8)).toBe(7);
    expect(m.readInt32LE(16 + 4)).toBe(3);
  });

  it('reads the extended-ack message of an NLMSG_ERROR (capped)', () => {
    const errno = Buffer.alloc(4);
    errno.writeInt32LE(-17);
    const echoed = network.encodeMessage(16, 5, 1, Buffer.alloc(0));
    const tlv = network.encodeAttrs([{ type: NL.ERR_ATTR_MSG, data: Buffer.from('File exists\0') }]);
    const parsed = network.parseError(Buffer.concat([errno, echoed, tlv]), NL.F_CAPPED | NL.F_ACK_TLVS);
    expect(parsed).toEqual({ errno: 17, message: 'File exists' });
    expect(network.parseError(Buffer.concat([Buffer.alloc(4), echoed]), NL.F_CAPPED)).toEqual({ errno: 0 });
  });

  it('parses a link', () => {
    const p = ifinfomsg({ index: 4, flags: 1 }, [
      { type: IFLA.IFNAME, data: Buffer.from('br0\0') },
      { type: IFLA.MTU, data: Buffer.from([0xdc, 0x05, 0, 0]) },
      { type: IFLA.ADDRESS, data: Buffer.from([2, 0x42, 10, 0, 0, 1]) },
      { type: IFLA.LINKINFO, nested: [{ type: IFLA.INFO_KIND, data: Buffer.from('bridge\0') }] },
    ]);
    expect(network.parseLink(p)).toEqual({
      index: 4,
      name: 'br0',
      kind: 'bridge',
      infoKind: 'bridge',
      mtu: 1500,
      mac: '02:42:0a:00:00:01',
      up: true,
    });
  });
});

describe('addresses', () => {
  it('parses and prints IPv6 (RFC 5952)', () => {
    expect(formatIPv6(parseIPv6('fd00:0:0:0:0:0:0:2'))).toBe('fd00::2');
    expect(formatIPv6(parseIPv6('::1'))).toBe('::1');
    expect(formatIPv6(parseIPv6('::ffff:10.0.0.1'))).toBe('::ffff:a00:1');
    expect(() => parseIPv6('1::2::3')).toThrow(/not an IPv6/);
  });

  it('checks subnets and finds their gateway', () => {
    expect(network.makeSubnet('10.213.5.0/24')).toEqual({ cidr: '10.213.5.0/24', gateway: '10.213.5.1' });
    expect(() => network.makeSubnet('10.213.5.1/24')).toThrow(
      /host bits set \(the network is 10.213.5.0\/24\)/,
    );
    expect(() => network.makeSubnet('10.213.5.0/24', '10.213.6.1')).toThrow(/gateway/);
    expect(() => network.makeSubnet('10.213.5.0/31')).toThrow(/too small/);
    expect(network.overlaps('10.88.0.0/16', '10.88.3.0/24')).toBe(true);
    expect(network.overlaps('10.88.0.0/16', '10.89.3.0/24')).toBe(false);
  });

  it('types addresses so a missing prefix or octet does not compile', () => {
    expectTypeOf<'10.88.0.0/16'>().toExtend<IPv4Cidr>();
    expectTypeOf<'10.88.0.1'>().toExtend<IPv4Address>();
    expectTypeOf<'10.88.0.1'>().not.toExtend<IPv4Cidr>();
    expectTypeOf<Route['destination']>().toEqualTypeOf<'default' | IPv4Cidr>();
    const subnet: Subnet = { cidr: '10.88.0.0/16', gateway: '10.88.0.1' };
    expect(subnet.gateway).toBe('10.88.0.1');
    const refs: NetnsRef[] = [{ pid: 1 }, { path: '/run/netns/x' }, { fd: 3 }];
    expect(refs).toHaveLength(3);
  });
});

describe('-p', () => {
  const ip = '10.213.0.2' as IPv4Address;
  it('reads podman syntax', () => {
    expect(network.parsePublish('80', ip)).toEqual({
      protocol: 'tcp',
      hostPort: 80,
      containerIp: ip,
      containerPort: 80,
    });
    expect(network.parsePublish('8080:80/udp', ip)).toMatchObject({
      protocol: 'udp',
      hostPort: 8080,
      containerPort: 80,
    });
    expect(network.parsePublish('127.0.0.1:8080:80', ip)).toMatchObject({
      hostIp: '127.0.0.1',
      hostPort: 8080,
    });
    expect(network.parsePublish('127.0.0.1::80', ip)).toMatchObject({ hostIp: '127.0.0.1', hostPort: 80 });
  });
  it('names what is wrong', () => {
    expect(() => network.parsePublish('8080:80/sctp', ip)).toThrow(
      /-p "8080:80\/sctp": the protocol must be tcp or udp/,
    );
    expect(() => network.parsePublish('70000:80', ip)).toThrow(/port "70000" is not 1-65535/);
    expect(() => network.parsePublish('host:1:2', ip)).toThrow(/host address "host"/);
  });
});

describe('resolv.conf and hosts', () => {
  it('drops loopback nameservers and falls back as podman does', () => {
    const c = DnsFiles.parseResolvConf('nameserver 127.0.0.53\nsearch a.example b.example\noptions edns0\n');
    expect(c).toEqual({
      nameservers: ['127.0.0.53'],
      search: ['a.example', 'b.example'],
      options: ['edns0'],
    });
    expect(DnsFiles.formatResolvConf({ nameservers: ['10.0.0.1'], search: [], options: ['ndots:2'] })).toBe(
      '# written by berth\nnameserver 10.0.0.1\noptions ndots:2\n',
    );
  });
  it('reads --add-host', () => {
    expect(DnsFiles.parseAddHost('db:10.1.2.3')).toEqual({ address: '10.1.2.3', names: ['db'] });
    expect(DnsFiles.parseAddHost('v6:fd00::1')).toEqual({ address: 'fd00::1', names: ['v6'] });
    expect(() => DnsFiles.parseAddHost('db')).toThrow(/--add-host "db": must be NAME:IP/);
  });
});
