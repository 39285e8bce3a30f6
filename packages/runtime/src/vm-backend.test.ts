import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSpec, type Spec } from '@berth/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { bindSources, hostResources } from './vm-backend.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-vm-binds-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function withBinds(...sources: string[]): Spec {
  const spec = defaultSpec();
  spec.mounts = [
    ...(spec.mounts ?? []),
    ...sources.map((source, i) => ({ destination: `/b${i}`, type: 'bind', source, options: ['rbind'] })),
  ];
  return spec;
}

describe('bindSources (what a VM container binds)', () => {
  it('copies a file (also through a symlink) and shares a directory', () => {
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
    symlinkSync('hosts', join(dir, 'hosts-link'));
    mkdirSync(join(dir, 'data'));
    const { files, shares } = bindSources(
      withBinds(join(dir, 'hosts'), join(dir, 'hosts-link'), join(dir, 'data')),
    );
    expect(files.map((f) => [f.path, Buffer.from(f.data).toString()])).toEqual([
      [join(dir, 'hosts'), '127.0.0.1 localhost\n'],
      [join(dir, 'hosts-link'), '127.0.0.1 localhost\n'],
    ]);
    expect(shares).toEqual([{ path: join(dir, 'data'), guestPath: join(dir, 'data'), readonly: false }]);
  });

  it('refuses a FIFO at once, naming the mount, without opening it (an open would block until a writer came)', async () => {
    const fifo = join(dir, 'fifo');
    await new Promise((r, j) => spawn('mkfifo', [fifo]).once('exit', r).once('error', j));
    const spec = withBinds(fifo);
    const index = spec.mounts!.length - 1;
    // a writer after 3 s ends a blocked open (this thread cannot run a timer while it blocks)
    const writer = spawn('sh', ['-c', `sleep 3; exec 3>"${fifo}"; sleep 1`], { stdio: 'ignore' });
    const t0 = Date.now();
    try {
      expect(() => bindSources(spec)).toThrow(
        `mounts[${index}].source: ${fifo} is a FIFO: only regular files and directories can be bound into a VM`,
      );
      expect(Date.now() - t0).toBeLessThan(1000);
    } finally {
      writer.kill('SIGKILL');
    }
  });

  it('refuses a device node, naming the mount', () => {
    const spec = withBinds('/dev/null');
    expect(() => bindSources(spec)).toThrow(
      `mounts[${spec.mounts!.length - 1}].source: /dev/null is a character device: only regular files and directories can be bound into a VM`,
    );
  });

  it('names a source that does not exist', () => {
    expect(() => bindSources(withBinds(join(dir, 'missing')))).toThrow(
      /mounts\[\d+\]\.source: .*missing: ENOENT/,
    );
  });
});

describe('hostResources (the limits of a VM container on the host)', () => {
  it('keeps CPU, pids and io, raises memory (and memory+swap) to the VM host limit, and drops the guest device rules', () => {
    const limit = 128 << 20;
    const host = 448 << 20;
    expect(
      hostResources(
        {
          cpu: { quota: 20_000, period: 100_000, cpus: '0' },
          memory: { limit, swap: 2 * limit, reservation: 64 << 20 },
          pids: { limit: 64 },
          blockIO: { weight: 100 },
          devices: [{ allow: false, access: 'rwm' }],
        },
        host,
      ),
    ).toEqual({
      cpu: { quota: 20_000, period: 100_000, cpus: '0' },
      memory: { limit: host, swap: 2 * limit + host - limit, reservation: 64 << 20 },
      pids: { limit: 64 },
      blockIO: { weight: 100 },
      devices: [{ allow: true, access: 'rwm' }],
    });
    expect(hostResources({ memory: { limit: -1 } }, host).memory).toEqual({ limit: -1 });
    expect(hostResources(undefined, host)).toEqual({ devices: [{ allow: true, access: 'rwm' }] });
  });
});
