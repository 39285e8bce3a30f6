import { describe, expect, expectTypeOf, it } from 'vitest';
import type {
  Attachment,
  Bridge,
  BridgeStatic,
  IPv4Address,
  IPv4Cidr,
  Ipam,
  Lease,
  Link,
  NetnsRef,
  NetworkErrorCode,
  PortMapping,
  Route,
  Subnet,
} from './index.js';
import * as network from './index.js';

describe('@berth/network interface', () => {
  it('exports only kernel facts as values: no implementation yet', () => {
    expect(Object.keys(network).sort()).toEqual(['IFNAMSIZ', 'NETLINK_ROUTE', 'RTM']);
  });

  it('has the rtnetlink numbers of linux/netlink.h and linux/rtnetlink.h', () => {
    expect(network.NETLINK_ROUTE).toBe(0);
    expect(network.IFNAMSIZ).toBe(16);
    expect(network.RTM).toEqual({
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
    });
  });

  it('types addresses so a missing prefix or octet does not compile', () => {
    expectTypeOf<'10.88.0.0/16'>().toExtend<IPv4Cidr>();
    expectTypeOf<'10.88.0.1'>().toExtend<IPv4Address>();
    expectTypeOf<'10.88.0.1'>().not.toExtend<IPv4Cidr>();
    expectTypeOf<'10.88.0/16'>().not.toExtend<IPv4Cidr>();
    const subnet: Subnet = { cidr: '10.88.0.0/16', gateway: '10.88.0.1' };
    // @ts-expect-error a gateway is an address, not a network
    const bad: Subnet = { cidr: '10.88.0.0/16', gateway: '10.88.0.1/16' };
    expect([subnet.cidr, bad.cidr]).toEqual(['10.88.0.0/16', '10.88.0.0/16']);
  });

  it('has the verbs the runtime will call', () => {
    expectTypeOf<BridgeStatic['ensure']>().parameters.toEqualTypeOf<
      [name: string, subnet: Subnet, options?: { mtu?: number }]
    >();
    expectTypeOf<BridgeStatic['ensure']>().returns.resolves.toEqualTypeOf<Bridge>();
    expectTypeOf<Ipam['allocate']>().returns.resolves.toEqualTypeOf<Lease>();
    expectTypeOf<network.Network['attach']>().returns.resolves.toEqualTypeOf<Attachment>();
    expectTypeOf<network.Links['moveToNetns']>().parameters.toEqualTypeOf<
      [name: string, target: NetnsRef, newName?: string]
    >();
    expectTypeOf<Link['kind']>().toEqualTypeOf<'veth' | 'bridge' | 'device'>();
    expectTypeOf<Route['destination']>().toEqualTypeOf<'default' | IPv4Cidr>();
    expectTypeOf<PortMapping['protocol']>().toEqualTypeOf<'tcp' | 'udp'>();
    expectTypeOf<'ENETLINK'>().toExtend<NetworkErrorCode>();
    expectTypeOf<'EWHATEVER'>().not.toExtend<NetworkErrorCode>();
  });

  it('names a network namespace by pid, path or fd only', () => {
    const refs: NetnsRef[] = [{ pid: 1 }, { path: '/run/netns/x' }, { fd: 3 }];
    // @ts-expect-error a bare pid is ambiguous with an fd
    const bad: NetnsRef = 42;
    expect(refs.length + (bad ? 0 : 1)).toBe(3);
  });
});
