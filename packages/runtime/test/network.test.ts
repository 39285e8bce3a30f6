// Integration (root): a container on a bridge network through the runtime, as a library.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec, formatSpec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-runtime-net-'));
const root = join(dir, 'run');
const stateDir = join(dir, 'net');
const used = execFileSync('ip', ['-4', 'route', 'show']).toString();
let third = 1 + (randomBytes(1)[0]! % 250);
while (used.includes(`10.213.${third}.`)) third = 1 + (randomBytes(1)[0]! % 250);
const bridge = `br${randomBytes(4).toString('hex')}`;
process.env['BERTH_DEFAULT_SUBNET'] = `10.213.${third}.0/24`;
process.env['BERTH_DEFAULT_BRIDGE'] = bridge;

afterAll(() => {
  spawnSync('ip', ['link', 'del', bridge]);
  const listed = spawnSync('nft', ['-a', 'list', 'chain', 'ip', 'berth', 'postrouting'], {
    encoding: 'utf8',
  }).stdout;
  for (const m of listed.matchAll(new RegExp(`"berth:n:${bridge}" # handle (\\d+)`, 'g')))
    spawnSync('nft', ['delete', 'rule', 'ip', 'berth', 'postrouting', 'handle', m[1]!]);
  rmSync(dir, { recursive: true, force: true });
});

/** A bundle with a network namespace of its own and the files a bridge network binds. */
function bundle(name: string): { bundle: string; files: string } {
  const b = join(dir, name);
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc'])
    mkdirSync(join(b, 'rootfs', d), { recursive: true });
  copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
  for (const applet of ['sh', 'sleep', 'cat']) symlinkSync('busybox', join(b, 'rootfs/bin', applet));
  const files = join(b, 'net');
  mkdirSync(files);
  const spec = defaultSpec();
  spec.process!.terminal = false;
  spec.process!.args = ['sleep', '600'];
  for (const f of ['hosts', 'resolv.conf', 'hostname']) {
    writeFileSync(join(files, f), '');
    spec.mounts!.push({
      destination: `/etc/${f}`,
      type: 'bind',
      source: join(files, f),
      options: ['rbind', 'rw'],
    });
  }
  writeFileSync(join(b, 'config.json'), formatSpec(spec));
  return { bundle: b, files };
}

const leases = () => {
  const f = join(stateDir, 'leases', 'bridge.json');
  return existsSync(f) ? (JSON.parse(readFileSync(f, 'utf8')) as Array<{ containerId: string }>) : [];
};
const ports = () => readdirSync(join('/sys/class/net', bridge, 'brif'));

describe('Runtime with a bridge network', () => {
  it('attaches at create, keeps the attachment in the state, and delete leaves nothing', async () => {
    const rt = new Runtime({ root });
    const { bundle: b, files } = bundle('one');
    const st = await rt.create('net-one', b, {
      network: { network: 'bridge', stateDir, filesDir: files, hostname: 'one', addHosts: ['db:10.9.9.9'] },
    });
    const record = rt.store.read('net-one');
    expect(record.network).toMatchObject({ network: 'bridge', address: `10.213.${third}.2/24`, bridge });
    const inside = execFileSync('nsenter', [
      '-t',
      String(st.pid),
      '-n',
      'ip',
      '-4',
      '-o',
      'addr',
      'show',
      'eth0',
    ]).toString();
    expect(inside).toContain(`inet 10.213.${third}.2/24`);
    // the files were filled before the container bind-mounted them
    const hosts = execFileSync('nsenter', ['-t', String(st.pid), '-m', 'cat', '/etc/hosts']).toString();
    expect(hosts).toContain(`10.213.${third}.2\tnet-one one`);
    expect(hosts).toContain('10.9.9.9\tdb');
    expect(ports()).toHaveLength(1);
    await rt.delete('net-one', { force: true });
    expect(ports()).toEqual([]);
    expect(leases()).toEqual([]);
  });

  it('a create whose network fails leaves no state, veth or lease', async () => {
    const rt = new Runtime({ root });
    const first = bundle('first');
    await rt.create('net-first', first.bundle, {
      network: { network: 'bridge', stateDir, ip: `10.213.${third}.50` },
    });
    const second = bundle('second');
    await expect(
      rt.create('net-second', second.bundle, {
        network: { network: 'bridge', stateDir, ip: `10.213.${third}.50` },
      }),
    ).rejects.toMatchObject({ code: 'EIPAMCONFLICT' });
    expect(existsSync(join(root, 'net-second'))).toBe(false);
    expect(leases().map((l) => l.containerId)).toEqual(['net-first']);
    expect(ports()).toHaveLength(1);
    // bad input is refused before anything is made
    await expect(
      rt.create('net-third', bundle('third').bundle, {
        network: { network: 'bridge', stateDir, publish: ['80/sctp'] },
      }),
    ).rejects.toMatchObject({
      code: 'EINVALIDNETWORK',
      message: '-p "80/sctp": the protocol must be tcp or udp',
    });
    expect(existsSync(join(root, 'net-third'))).toBe(false);
    await rt.delete('net-first', { force: true });
    expect(leases()).toEqual([]);
    expect(ports()).toEqual([]);
  });

  it('attaches through a CNI conflist (Debian’s bridge and host-local plugins) and DELs on delete', async () => {
    const rt = new Runtime({ root });
    const cniBridge = `bc${randomBytes(4).toString('hex')}`;
    const hostLocal = join(dir, 'host-local');
    const conflist = join(dir, 'test.conflist');
    writeFileSync(
      conflist,
      JSON.stringify({
        cniVersion: '1.0.0',
        name: 'berth-test',
        plugins: [
          {
            type: 'bridge',
            bridge: cniBridge,
            isGateway: true,
            ipMasq: false,
            ipam: { type: 'host-local', ranges: [[{ subnet: `10.214.${third}.0/24` }]], dataDir: hostLocal },
          },
        ],
      }),
    );
    const { bundle: b, files } = bundle('cni');
    try {
      const st = await rt.create('net-cni', b, { network: { network: `cni:${conflist}`, filesDir: files } });
      expect(rt.store.read('net-cni').network).toMatchObject({
        network: `cni:${conflist}`,
        address: `10.214.${third}.2/24`,
      });
      const inside = execFileSync('nsenter', [
        '-t',
        String(st.pid),
        '-n',
        'ip',
        '-4',
        '-o',
        'addr',
        'show',
        'eth0',
      ]).toString();
      expect(inside).toContain(`inet 10.214.${third}.2/24`);
      expect(readFileSync(join(files, 'hosts'), 'utf8')).toContain(`10.214.${third}.2\tnet-cni`);
      expect(readdirSync(join(hostLocal, 'berth-test'))).toContain(`10.214.${third}.2`);
      await rt.delete('net-cni', { force: true });
      expect(readdirSync(join(hostLocal, 'berth-test'))).not.toContain(`10.214.${third}.2`);
      expect(readdirSync(join('/sys/class/net', cniBridge, 'brif'))).toEqual([]);
    } finally {
      spawnSync('ip', ['link', 'del', cniBridge]);
    }
  });
});
