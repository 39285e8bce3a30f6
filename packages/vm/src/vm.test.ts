// Unit tests: the pure parts of the VM backend (no root, no QEMU).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BACKEND_ANNOTATION,
  cpusetCount,
  DEFAULT_KERNEL_DIR,
  extractVmlinux,
  GUEST_MODULES,
  guestCmdline,
  guestKernelChoice,
  hasGuestModules,
  MMIO_SLOTS,
  macFromAddress,
  modinfoField,
  moduleLoadOrder,
  parseStatus,
  planQemu,
  STATUS_READ_MAX,
  selectBackend,
  sizeFromResources,
  VMM_CONSOLE_FD,
  VMM_STATUS_FD,
  writeCpio,
} from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-vm-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Reads a newc archive back: name, mode, size, data (an independent reader for the writer). */
function readCpio(buf: Buffer): Array<{ name: string; mode: number; data: Buffer; rdev: [number, number] }> {
  const out: Array<{ name: string; mode: number; data: Buffer; rdev: [number, number] }> = [];
  let at = 0;
  const field = (i: number) => Number.parseInt(buf.toString('latin1', at + 6 + i * 8, at + 14 + i * 8), 16);
  for (;;) {
    expect(buf.toString('latin1', at, at + 6)).toBe('070701');
    const mode = field(1);
    const size = field(6);
    const rdev: [number, number] = [field(9), field(10)];
    const namesize = field(11);
    const name = buf.toString('utf8', at + 110, at + 110 + namesize - 1);
    at += 110 + namesize;
    at += (4 - (at % 4)) % 4;
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode, data: buf.subarray(at, at + size), rdev });
    at += size;
    at += (4 - (at % 4)) % 4;
  }
}

describe('newc cpio', () => {
  it('writes directories, files and device nodes the kernel can unpack', () => {
    const archive = writeCpio([
      { type: 'dir', path: 'dev' },
      { type: 'char', path: 'dev/console', major: 5, minor: 1 },
      { type: 'file', path: '/init', data: Buffer.from('#!agent'), mode: 0o700 },
      { type: 'file', path: 'plan', data: new Uint8Array([1, 2, 3, 4, 5]) },
    ]);
    expect(archive.length % 4).toBe(0);
    const entries = readCpio(archive);
    expect(entries.map((e) => [e.name, e.mode.toString(8)])).toEqual([
      ['dev', '40755'],
      ['dev/console', '20600'],
      ['init', '100700'],
      ['plan', '100644'],
    ]);
    expect(entries[1]!.rdev).toEqual([5, 1]);
    expect(entries[2]!.data.toString()).toBe('#!agent');
    expect([...entries[3]!.data]).toEqual([1, 2, 3, 4, 5]);
  });

  it('agrees with GNU cpio when it is installed, and refuses paths that climb out', () => {
    const archive = writeCpio([{ type: 'file', path: 'a/b', data: Buffer.from('x') }]);
    const r = spawnSync('cpio', ['-t'], { input: archive, encoding: 'utf8' });
    if (r.status === 0) expect(r.stdout.trim()).toBe('a/b');
    expect(() => writeCpio([{ type: 'file', path: '../etc/passwd', data: Buffer.alloc(0) }])).toThrow(
      /bad path/,
    );
    expect(() => writeCpio([{ type: 'dir', path: 'a/./b' }])).toThrow(/bad path/);
  });
});

describe('guest kernel', () => {
  const mod = (depends: string) =>
    Buffer.concat([
      Buffer.from('\x7fELF junk\0license=GPL\0'),
      Buffer.from(`depends=${depends}\0vermagic=6.1\0`),
    ]);
  const files = new Map<string, () => Buffer>([
    ['virtio_ring', () => mod('')],
    ['virtio', () => mod('virtio_ring')],
    ['virtio_mmio', () => mod('virtio,virtio_ring')],
    ['netfs', () => mod('')],
    ['fscache', () => mod('netfs')],
    ['9pnet', () => mod('')],
    ['9p', () => mod('9pnet,fscache,netfs')],
  ]);

  it('reads depends= from a module and orders dependencies first', () => {
    expect(modinfoField(mod('a,b'), 'depends')).toBe('a,b');
    expect(modinfoField(mod(''), 'depends')).toBe('');
    expect(modinfoField(Buffer.from('nothing'), 'depends')).toBeUndefined();
    expect(moduleLoadOrder(['virtio_mmio', '9p'], files)).toEqual([
      'virtio_ring',
      'virtio',
      'virtio_mmio',
      '9pnet',
      'netfs',
      'fscache',
      '9p',
    ]);
    // a builtin needs no loading
    expect(moduleLoadOrder(['9p'], files, new Set(['netfs', 'fscache']))).toEqual(['9pnet', '9p']);
  });

  it('names a missing module and a dependency cycle', () => {
    expect(() => moduleLoadOrder(['9p'], new Map([['9p', () => mod('9pnet')]]))).toThrow(
      /module 9pnet \(needed by 9p\) is not in the package/,
    );
    const cyclic = new Map<string, () => Buffer>([
      ['a', () => mod('b')],
      ['b', () => mod('a')],
    ]);
    expect(() => moduleLoadOrder(['a'], cyclic)).toThrow(/cycle: a -> b -> a/);
  });

  it('passes over a cache entry made before berth loaded virtio_net and virtio_balloon', () => {
    const older = ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_console', '9pnet', '9pnet_virtio', '9p'];
    expect(GUEST_MODULES).toContain('virtio_net');
    expect(GUEST_MODULES).toContain('virtio_balloon');
    expect(hasGuestModules({ modules: older.map((name) => ({ name })) })).toBe(false);
    const now = [...older, 'failover', 'net_failover', 'virtio_net', 'virtio_balloon'];
    expect(hasGuestModules({ modules: now.map((name) => ({ name })) })).toBe(true);
    // a wanted module the kernel has built in is in no entry's module list
    expect(hasGuestModules({ modules: older.map((name) => ({ name })), wanted: [...GUEST_MODULES] })).toBe(
      true,
    );
  });

  it('extracts the ELF payload of a compressed kernel image', () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), Buffer.alloc(1000, 7)]);
    const image = join(dir, 'bzImage');
    // a setup header, a decoy gzip stream that is not an ELF file, then the kernel
    writeFileSync(
      image,
      Buffer.concat([
        Buffer.alloc(512, 1),
        gzipSync(Buffer.from('not elf')),
        gzipSync(elf),
        Buffer.alloc(64),
      ]),
    );
    extractVmlinux(image, join(dir, 'vmlinux'));
    expect(readFileSync(join(dir, 'vmlinux')).equals(elf)).toBe(true);
    writeFileSync(image, Buffer.alloc(4096, 3));
    expect(() => extractVmlinux(image, join(dir, 'vmlinux2'))).toThrow(/no xz, zstd or gzip ELF payload/);
  });
});

describe('the guest kernel the environment names', () => {
  it('is taken from a user who is not root, never by root (whoever set it could have written it)', () => {
    const saved = { ...process.env };
    const euid = process.geteuid;
    try {
      process.env['BERTH_VM_KERNEL'] = '/tmp/someones-kernel';
      process.env['BERTH_VM_KERNELS'] = '/tmp/someones-kernels';
      process.geteuid = () => 0;
      expect(guestKernelChoice('/cache')).toEqual({ dir: DEFAULT_KERNEL_DIR });
      process.geteuid = () => 1000;
      expect(guestKernelChoice('/cache')).toEqual({
        dir: '/tmp/someones-kernels',
        override: '/tmp/someones-kernel',
      });
      delete process.env['BERTH_VM_KERNELS'];
      process.env['BERTH_VM_CACHE'] = '/home/u/.cache/berth/vm';
      expect(guestKernelChoice('/cache').dir).toBe(join('/cache', 'kernels'));
    } finally {
      process.geteuid = euid;
      for (const k of ['BERTH_VM_KERNEL', 'BERTH_VM_KERNELS', 'BERTH_VM_CACHE'])
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
    }
  });
});

describe('backend selection', () => {
  it('takes --backend, else the annotation, else container; other values are errors naming their source', () => {
    expect(BACKEND_ANNOTATION).toBe('org.berth.backend');
    expect(selectBackend(undefined)).toBe('container');
    expect(selectBackend({ 'org.berth.backend': 'vm' })).toBe('vm');
    expect(selectBackend({ 'org.berth.backend': 'vm' }, 'container')).toBe('container');
    expect(selectBackend({}, 'vm')).toBe('vm');
    expect(() => selectBackend({ 'org.berth.backend': 'kata' })).toThrow(
      /annotations\["org.berth.backend"\]: "kata" is not a backend/,
    );
    expect(() => selectBackend(undefined, 'qemu')).toThrow(/--backend: "qemu"/);
  });
});

describe('VM size from linux.resources', () => {
  const host = { cpus: 8, memoryMiB: 16384 };
  const defaults = { vcpus: 1, memoryMiB: 256 };

  it('rounds the CPU quota up, counts a cpuset, never exceeds the host', () => {
    expect(sizeFromResources(undefined, defaults, host)).toEqual(defaults);
    expect(sizeFromResources({ cpu: { quota: 150000, period: 100000 } }, defaults, host).vcpus).toBe(2);
    expect(sizeFromResources({ cpu: { cpus: '0-2,5' } }, defaults, host).vcpus).toBe(4);
    expect(sizeFromResources({ cpu: { quota: 5_000_000, period: 100000 } }, defaults, host).vcpus).toBe(8);
    expect(cpusetCount('3')).toBe(1);
    expect(() => cpusetCount('2-1')).toThrow(/linux.resources.cpu.cpus/);
  });

  it('adds the guest overhead to a memory limit and refuses a VM too small or too large', () => {
    expect(sizeFromResources({ memory: { limit: 100 * 1024 * 1024 + 1 } }, defaults, host).memoryMiB).toBe(
      101 + 64,
    );
    expect(() => sizeFromResources({ memory: { limit: 32 * 1024 * 1024 } }, defaults, host)).toThrow(
      /linux.resources.memory.limit: .* too little for a VM/,
    );
    expect(() => sizeFromResources({ memory: { limit: 64 * 1024 ** 3 } }, defaults, host)).toThrow(
      /the host has 16384 MiB/,
    );
  });
});

describe('the QEMU command line', () => {
  const config = {
    qemu: '/usr/bin/qemu-system-x86_64',
    accel: 'tcg' as const,
    size: { vcpus: 2, memoryMiB: 320 },
    kernel: '/k/vmlinux',
    initrd: '/run/x/initrd',
    cmdline: guestCmdline('tcg'),
    share: {
      kind: '9p' as const,
      path: '/b/root,fs',
      tag: 'rootfs',
      securityModel: 'passthrough' as const,
      readonly: true,
    },
    shares: [{ path: '/srv/data', readonly: false }],
    runDir: '/run/x',
    stdoutFd: 1,
    stderrFd: 3,
    socketFds: [3],
    sandbox: true,
  };

  it('is a TCG microvm with the measured settings, its size, and the rootfs over 9p', () => {
    const argv = planQemu(config);
    const after = (flag: string) => argv[argv.indexOf(flag) + 1];
    expect(after('-M')).toBe('microvm,pit=on,pic=off,rtc=on,isa-serial=on');
    expect(after('-accel')).toBe('tcg');
    expect(argv).not.toContain('-cpu'); // TCG: the default CPU
    expect(after('-smp')).toBe('2');
    expect(after('-m')).toBe('320M');
    expect(argv).toContain('-no-reboot');
    // the monitor pause and resume use: a socket in the run directory only
    expect(after('-qmp')).toMatch(/^unix:\/.*\/qmp\.sock,server=on,wait=off$/);
    expect(after('-sandbox')).toMatch(/^on,.*spawn=deny/);
    expect(after('-append')).toMatch(/tsc_early_khz=\d+/);
    // a comma in a path is doubled, not an option separator
    expect(argv).toContain('local,id=root,path=/b/root,,fs,security_model=passthrough,readonly=on');
    expect(argv).toContain('local,id=share0,path=/srv/data,security_model=passthrough');
    expect(argv).toContain('virtio-9p-device,fsdev=share0,mount_tag=share0');
    // stdout is reopened through /dev/fd; a socket (stderr here) is taken over as a socket
    expect(argv).toContain('file,id=stdout,path=/dev/fd/1,append=on');
    expect(argv).toContain('socket,id=stderr,fd=3');
    expect(argv).toContain('socket,id=ctl,path=/run/x/ctl.sock,server=on,wait=off');
    // what the guest writes to the status port and the console goes to berth-vmm, never to a file
    expect(argv).toContain(`socket,id=status,fd=${VMM_STATUS_FD}`);
    expect(argv).toContain(`socket,id=con,fd=${VMM_CONSOLE_FD}`);
    expect(argv.filter((a) => a.startsWith('file,'))).toEqual(['file,id=stdout,path=/dev/fd/1,append=on']);
    for (const name of [
      'ctl',
      'status',
      'stdin',
      'stdout',
      'stderr',
      'exec-stdin',
      'exec-stdout',
      'exec-stderr',
    ])
      expect(argv.some((a) => a.endsWith(`name=berth.${name}`))).toBe(true);
  });

  it("has a balloon, and a virtio-net NIC on a tap berth made only when asked, within microvm's transports", () => {
    const plain = planQemu(config);
    expect(plain).toContain('virtio-balloon-device,id=balloon0');
    expect(plain).not.toContain('-netdev');
    const argv = planQemu({ ...config, net: { tap: 'bv0123456789ab', mac: '02:b7:0a:4d:00:02' } });
    // QEMU opens the tap by name and runs no script (its sandbox forbids spawning anyway)
    expect(argv[argv.indexOf('-netdev') + 1]).toBe(
      'tap,id=net0,ifname=bv0123456789ab,script=no,downscript=no',
    );
    expect(argv).toContain('virtio-net-device,netdev=net0,mac=02:b7:0a:4d:00:02');
    const transports = argv.filter(
      (a, i) => argv[i - 1] === '-device' && /^virtio-[a-z0-9-]+-device/.test(a),
    );
    // serial, rootfs, one share, balloon, NIC
    expect(transports).toHaveLength(5);
    expect(transports.length).toBeLessThanOrEqual(MMIO_SLOTS);
    expect(planQemu({ ...config, balloon: false })).not.toContain('virtio-balloon-device,id=balloon0');
  });

  it('derives a locally administered MAC from the lease, and refuses what is not an address', () => {
    expect(macFromAddress('10.77.0.2/16')).toBe('02:b7:0a:4d:00:02');
    expect(macFromAddress('192.168.255.1')).toBe('02:b7:c0:a8:ff:01');
    expect(() => macFromAddress('10.77.0/16')).toThrow(/not an IPv4 address/);
    expect(() => macFromAddress('10.77.0.256')).toThrow(/not an IPv4 address/);
  });

  it('uses the host CPU with KVM and no TSC hint', () => {
    const argv = planQemu({ ...config, accel: 'kvm', cmdline: guestCmdline('kvm') });
    expect(argv[argv.indexOf('-cpu') + 1]).toBe('host');
    expect(argv[argv.indexOf('-append') + 1]).not.toMatch(/tsc_early_khz/);
  });
});

describe('the status file berth-vmm keeps', () => {
  it('parses created, started, errors, exec exits and the exit status', () => {
    expect(parseStatus('')).toEqual({ started: false, execs: 0, faults: 0 });
    expect(parseStatus('created 81\nstarted\nexecs 3 5\nexit 137\nfaults 2\n')).toEqual({
      created: 81,
      started: true,
      execs: 3,
      lastExec: 5,
      exit: 137,
      faults: 2,
    });
    expect(parseStatus('error 12 2 open_exec_fifo\nexit 1\n').error).toEqual({
      step: 12,
      errno: 2,
      syscall: 'open exec fifo',
    });
    expect(parseStatus('fail 2 /config\n').fail).toBe('/config (errno 2)');
  });

  it('ignores malformed numbers and reads no more than STATUS_READ_MAX characters', () => {
    expect(parseStatus('created -1\nexit 256\nexit x\nexecs 1\nerror a 2 x\ncreated 0\n')).toEqual({
      started: false,
      execs: 0,
      faults: 0,
    });
    expect(parseStatus(`${'A'.repeat(STATUS_READ_MAX)}\nexit 0\n`).exit).toBeUndefined();
  });
});
