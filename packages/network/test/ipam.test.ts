import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileIpam, makeSubnet } from '../src/index.js';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const dist = join(import.meta.dirname, '..', 'dist', 'index.js');

describe('IPAM on disk', () => {
  let tmp: ReturnType<typeof tempDir>;
  let ipam: FileIpam;
  beforeEach(() => {
    tmp = tempDir();
    ipam = new FileIpam({ stateDir: tmp.dir });
  });
  afterEach(() => tmp.remove());

  it('gives the lowest free address, the same one again to the same container, and frees it', async () => {
    const subnet = makeSubnet('10.213.7.0/24');
    const a = await ipam.allocate('n1', subnet, 'a');
    const b = await ipam.allocate('n1', subnet, 'b');
    expect([a.address, b.address]).toEqual(['10.213.7.2/24', '10.213.7.3/24']);
    expect((await ipam.allocate('n1', subnet, 'a')).address).toBe('10.213.7.2/24');
    await ipam.release('n1', 'a');
    await ipam.release('n1', 'a'); // twice: not an error
    expect((await ipam.allocate('n1', subnet, 'c')).address).toBe('10.213.7.2/24');
    await ipam.release('n1', 'b');
    await ipam.release('n1', 'c');
    expect(await ipam.leases('n1')).toEqual([]);
    expect(existsSync(join(tmp.dir, 'n1.json'))).toBe(false);
  });

  it('honours --ip, refuses a taken or reserved one, and says when the subnet is full', async () => {
    const subnet = makeSubnet('10.213.8.0/29'); // hosts .1-.6, .1 the gateway
    expect((await ipam.allocate('n', subnet, 'x', '10.213.8.5')).address).toBe('10.213.8.5/29');
    await expect(ipam.allocate('n', subnet, 'y', '10.213.8.5')).rejects.toMatchObject({
      code: 'EIPAMCONFLICT',
      message: '--ip 10.213.8.5 is already leased to container x',
    });
    await expect(ipam.allocate('n', subnet, 'y', '10.213.8.1')).rejects.toMatchObject({
      code: 'EIPAMCONFLICT',
    });
    await expect(ipam.allocate('n', subnet, 'y', '10.213.9.1')).rejects.toMatchObject({
      code: 'EINVALIDNETWORK',
    });
    for (const id of ['p', 'q', 'r', 's']) await ipam.allocate('n', subnet, id);
    await expect(ipam.allocate('n', subnet, 'full')).rejects.toMatchObject({ code: 'EIPAMEXHAUSTED' });
    expect((await ipam.leases('n')).map((l) => l.containerId).sort()).toEqual(['p', 'q', 'r', 's', 'x']);
  });

  it('takes back the lease of a create that was killed', async () => {
    const subnet = makeSubnet('10.213.9.0/30'); // one address besides the gateway
    const child = spawn('sleep', ['60']);
    await new Promise((r) => child.once('spawn', r));
    await ipam.allocate('n', subnet, 'killed', undefined, { holder: { pid: child.pid! } });
    await expect(ipam.allocate('n', subnet, 'next')).rejects.toMatchObject({ code: 'EIPAMEXHAUSTED' });
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
    expect((await ipam.allocate('n', subnet, 'next')).address).toBe('10.213.9.2/30');
    expect((await ipam.leases('n')).map((l) => l.containerId)).toEqual(['next']);
  });

  it('gives 20 parallel creates in 20 processes 20 different addresses', async () => {
    expect(existsSync(dist), 'build @berth/network first (npm run build)').toBe(true);
    const script = `
      const { FileIpam, makeSubnet } = await import(${JSON.stringify(dist)});
      const ipam = new FileIpam({ stateDir: process.argv[1] });
      const l = await ipam.allocate('par', makeSubnet('10.213.10.0/24'), process.argv[2], undefined, { holder: { pid: 0 } });
      process.stdout.write(l.address);
    `;
    const outs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        run(process.execPath, ['--input-type=module', '-e', script, tmp.dir, `c${i}`]).then((r) => r.stdout),
      ),
    );
    expect(new Set(outs).size).toBe(20);
    const leases = await ipam.leases('par');
    expect(leases).toHaveLength(20);
    expect(new Set(leases.map((l) => l.address)).size).toBe(20);
    // and 20 parallel releases leave nothing
    await Promise.all(leases.map((l) => ipam.release('par', l.containerId)));
    expect(await ipam.leases('par')).toEqual([]);
  });
});
