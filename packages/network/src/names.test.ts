// What goes into a container's /etc/hosts, /etc/resolv.conf and /etc/hostname is checked where it
// comes in, and the writers refuse anything that would add a line; subnets a bridge cannot use.
import { describe, expect, it } from 'vitest';
import { DnsFiles } from './dns.js';
import { makeSubnet } from './ip.js';

const injected = 'web\n10.244.3.66 bank.example';

describe('names in hosts, resolv.conf and hostname', () => {
  it('takes RFC 1123 hostnames and refuses anything else with the reason', () => {
    for (const ok of ['web', 'web-1', 'a.b.example', 'X9', 'a'.repeat(63)])
      expect(DnsFiles.checkHostname(ok)).toBe(ok);
    for (const bad of [
      injected,
      'web ',
      'we b',
      'web\t',
      '-web',
      'web-',
      'a..b',
      '',
      'a_b',
      'web#x',
      'a'.repeat(65),
      `${'a'.repeat(64)}.b`,
    ])
      expect(() => DnsFiles.checkHostname(bad)).toThrow(
        `--hostname ${JSON.stringify(bad)}: must be a hostname: letters, digits and hyphens in labels separated by dots (RFC 1123), at most 64 characters`,
      );
  });

  it("takes a container id's characters as a name in the hosts files, nothing that ends a word or a line", () => {
    for (const ok of ['web', 'my_app', 'a+b', 'x.y-z']) expect(DnsFiles.checkHostsName(ok)).toBe(ok);
    for (const bad of [injected, 'a b', 'a\rb', 'a\0b', 'a#b', '', 'é'])
      expect(() => DnsFiles.checkHostsName(bad, 'alias')).toThrow(
        `alias ${JSON.stringify(bad)}: must be letters, digits and _ + - . (it is a name in /etc/hosts)`,
      );
  });

  it('takes search domains and resolv.conf options as single words', () => {
    for (const ok of ['corp.example', 'corp.example.', '_svc.corp', '.'])
      expect(DnsFiles.checkSearchDomain(ok)).toBe(ok);
    for (const bad of ['corp.example\nnameserver 10.244.3.66', 'a b', '', 'a..b', '..'])
      expect(() => DnsFiles.checkSearchDomain(bad)).toThrow(
        `--dns-search ${JSON.stringify(bad)}: must be a domain name`,
      );
    for (const ok of ['ndots:5', 'edns0', 'single-request-reopen', 'timeout:2'])
      expect(DnsFiles.checkDnsOption(ok)).toBe(ok);
    for (const bad of ['ndots:5\nnameserver 1.2.3.4', 'ndots: 5', '', 'a=b'])
      expect(() => DnsFiles.checkDnsOption(bad)).toThrow(
        `--dns-option ${JSON.stringify(bad)}: must be a resolv.conf option`,
      );
  });

  it('the writers refuse a value with whitespace or a control character (the last line of defence)', () => {
    const refused = /is empty or holds whitespace or a control character, and is not written/;
    expect(() => DnsFiles.formatHosts([{ address: '10.1.1.2', names: [injected] }])).toThrow(refused);
    expect(() => DnsFiles.formatHosts([{ address: '10.1.1.2\n10.1.1.3', names: ['a'] }])).toThrow(refused);
    expect(() => DnsFiles.formatHosts([{ address: '10.1.1.2', names: ['a\u0085b'] }])).toThrow(refused);
    expect(() =>
      DnsFiles.formatResolvConf({
        nameservers: ['10.1.1.1'],
        search: ['corp\nnameserver 10.1.1.66'],
        options: [],
      }),
    ).toThrow(`resolv.conf search domain "corp\\nnameserver 10.1.1.66": is empty or holds whitespace`);
    expect(() => DnsFiles.formatResolvConf({ nameservers: ['10.1.1.1 x'], search: [], options: [] })).toThrow(
      refused,
    );
    expect(() => DnsFiles.formatResolvConf({ nameservers: [], search: [], options: ['a\u007f'] })).toThrow(
      refused,
    );
    expect(() => DnsFiles.formatHostname('web\nx')).toThrow(`hostname name "web\\nx": is empty or holds`);
    // what is well formed is written as before
    expect(DnsFiles.formatHosts([{ address: '10.1.1.2', names: ['web', 'c1'] }])).toBe('10.1.1.2\tweb c1\n');
    expect(
      DnsFiles.formatResolvConf({ nameservers: ['10.1.1.1'], search: ['a.example'], options: ['ndots:2'] }),
    ).toBe('# written by berth\nsearch a.example\nnameserver 10.1.1.1\noptions ndots:2\n');
    expect(DnsFiles.formatHostname('web')).toBe('web\n');
  });
});

describe('subnets a container network cannot use', () => {
  it('refuses loopback, multicast, link-local, 0.0.0.0/8 and 240.0.0.0/4, and what overlaps them', () => {
    const cases: Array<[string, string]> = [
      ['127.0.0.0/24', '127.0.0.0/8 (loopback)'],
      ['224.0.0.0/24', '224.0.0.0/4 (multicast)'],
      ['239.1.0.0/16', '224.0.0.0/4 (multicast)'],
      ['169.254.1.0/24', '169.254.0.0/16 (link-local)'],
      ['0.0.0.0/24', '0.0.0.0/8 ("this network" (RFC 1122))'],
      ['240.0.0.0/24', '240.0.0.0/4 (reserved, with the broadcast address 255.255.255.255)'],
      ['255.255.255.0/24', '240.0.0.0/4 (reserved, with the broadcast address 255.255.255.255)'],
      ['96.0.0.0/3', '127.0.0.0/8 (loopback)'],
      ['0.0.0.0/1', '0.0.0.0/8 ("this network" (RFC 1122))'],
    ];
    for (const [cidr, what] of cases)
      expect(() => makeSubnet(cidr)).toThrow(
        `subnet ${JSON.stringify(cidr)}: overlaps ${what}, which a container network cannot use: choose a private range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16`,
      );
  });

  it('takes the ranges next to them', () => {
    for (const cidr of [
      '1.0.0.0/24',
      '126.255.255.0/24',
      '128.0.0.0/24',
      '169.253.0.0/16',
      '169.255.0.0/16',
      '223.255.255.0/24',
      '10.0.0.0/8',
      '192.168.1.0/24',
    ])
      expect(makeSubnet(cidr).cidr).toBe(cidr);
  });
});
