// attach (and attachCni) check every name they write into hosts, resolv.conf and hostname before
// anything is made; network create refuses subnets a bridge cannot use. Nothing here makes a link.
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { attach, attachCni, NetworkStore, NftNat } from '../src/index.js';
import { tempDir, uniqueName } from './helpers.js';

describe('names and subnets refused before anything is made (root)', () => {
  const tmp = tempDir();
  const bridge = uniqueName('bt');
  const store = new NetworkStore({
    dir: join(tmp.dir, 'state'),
    defaultSubnet: '10.213.250.0/24',
    defaultBridge: bridge,
  });
  const nat = new NftNat({ table: uniqueName('bt_') });
  afterAll(() => tmp.remove());

  it('attach refuses a hostname, alias, search domain or option that would add a line to a file', async () => {
    // a network that does not exist: were a name not refused first, attach would stop there, making nothing
    const base = {
      containerId: 'c1',
      network: uniqueName('none'),
      netns: { pid: process.pid },
      store,
      nat,
      filesDir: join(tmp.dir, 'files'),
    };
    const cases: Array<[Record<string, unknown>, string]> = [
      [
        { hostname: 'web\n10.244.3.66 bank.example' },
        'hostname "web\\n10.244.3.66 bank.example": must be letters, digits and _ + - . (it is a name in /etc/hosts)',
      ],
      [{ aliases: ['db', 'x y'] }, 'alias "x y": must be letters'],
      [{ containerId: 'c\n1' }, 'container id "c\\n1": must be letters'],
      [
        { dnsSearch: ['corp.example\nnameserver 10.244.3.66'] },
        '--dns-search "corp.example\\nnameserver 10.244.3.66": must be a domain name',
      ],
      [
        { dnsOptions: ['ndots:1\nnameserver 10.244.3.66'] },
        '--dns-option "ndots:1\\nnameserver 10.244.3.66": must be a resolv.conf option',
      ],
    ];
    for (const [extra, message] of cases)
      await expect(attach({ ...base, ...extra } as Parameters<typeof attach>[0])).rejects.toMatchObject({
        code: 'EINVALIDNETWORK',
        message: expect.stringContaining(message),
      });
    expect(existsSync(join(tmp.dir, 'files'))).toBe(false);
    expect(existsSync(join(tmp.dir, 'state'))).toBe(false);
    expect(readdirSync('/sys/class/net')).not.toContain(bridge);
  });

  it('attachCni refuses a bad hostname before any plugin runs', async () => {
    const conflist = join(tmp.dir, 'c.conflist');
    writeFileSync(
      conflist,
      JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'no-such-plugin' }] }),
    );
    await expect(
      attachCni({
        containerId: 'c1',
        netns: '/proc/self/ns/net',
        conflist,
        hostname: 'a\nb',
        filesDir: join(tmp.dir, 'cf'),
      }),
    ).rejects.toThrow('hostname "a\\nb": must be letters, digits and _ + - . (it is a name in /etc/hosts)');
    expect(existsSync(join(tmp.dir, 'cf'))).toBe(false);
  });

  it('network create refuses loopback, multicast, link-local and reserved subnets', async () => {
    for (const [subnet, what] of [
      ['127.0.0.0/24', 'loopback'],
      ['224.0.0.0/24', 'multicast'],
      ['169.254.0.0/24', 'link-local'],
      ['0.0.0.0/8', '"this network"'],
      ['240.0.0.0/4', 'reserved'],
    ])
      await expect(store.create(uniqueName('n'), { subnet: subnet! })).rejects.toMatchObject({
        code: 'EINVALIDNETWORK',
        message: expect.stringMatching(
          new RegExp(`^subnet "${subnet!.replace(/\./g, '\\.')}": overlaps [0-9./]+ \\(${what}`),
        ),
      });
    expect((await store.list()).map((n) => n.name)).toEqual(['bridge']);
  });
});
