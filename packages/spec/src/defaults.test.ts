import { execFile } from 'node:child_process';
import { existsSync, statfsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { OCI_VERSION } from './constants.js';
import { defaultSpec } from './defaults.js';
import { formatSpec } from './format.js';
import { parseSpec } from './parse.js';
import { validateSpec } from './validate.js';

const run = promisify(execFile);
const RUNC = '/usr/sbin/runc';
const dirs: string[] = [];

afterEach(async () => {
  for (const dir of dirs.splice(0)) {
    await rm(dir, { recursive: true, force: true });
    expect(existsSync(dir)).toBe(false);
  }
});

/**
 * What the real runc writes, parsed; runc refuses to overwrite, so each call gets a fresh dir.
 * `cgroup2`: as on a host whose cgroups are v2 only (runc in a mount namespace of its own where
 * /sys/fs/cgroup is a cgroup2 mount), whatever this host's layout is.
 */
async function runcSpec(args: string[], cgroup2 = false): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-spec-runc-'));
  dirs.push(dir);
  if (cgroup2) {
    const script =
      '{ [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] || mount -t cgroup2 cgroup2 /sys/fs/cgroup; } && exec "$0" spec "$@"';
    await run('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, RUNC, ...args], { cwd: dir });
  } else await run(RUNC, ['spec', ...args], { cwd: dir });
  return JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
}

/** This host's layout, as runc reads it: is /sys/fs/cgroup cgroup2 (then runc adds a cgroup namespace)? */
const hostV2 = statfsSync('/sys/fs/cgroup').type === 0x63677270;

describe('defaultSpec matches runc spec', () => {
  it('matches `runc spec` field by field, ociVersion aside', async () => {
    const runc = await runcSpec([]);
    const ours = defaultSpec({ cgroupNamespace: hostV2 }) as unknown as Record<string, unknown>;
    expect(typeof runc['ociVersion']).toBe('string');
    expect(ours['ociVersion']).toBe(OCI_VERSION);
    expect({ ...ours, ociVersion: 'x' }).toStrictEqual({ ...runc, ociVersion: 'x' });
    // same key order too, so `berth spec` and `runc spec` diff line by line
    expect(Object.keys(ours)).toEqual(Object.keys(runc));
  });

  it('matches `runc spec --rootless` field by field, ociVersion aside', async () => {
    const runc = await runcSpec(['--rootless']);
    const ours = defaultSpec({ rootless: true, cgroupNamespace: hostV2 }) as unknown as Record<
      string,
      unknown
    >;
    expect({ ...ours, ociVersion: 'x' }).toStrictEqual({ ...runc, ociVersion: 'x' });
  });

  it('matches what runc writes on a host whose cgroups are v2 only: a cgroup namespace too', async () => {
    for (const rootless of [false, true]) {
      const runc = await runcSpec(rootless ? ['--rootless'] : [], true);
      const ours = defaultSpec({ rootless, cgroupNamespace: true }) as unknown as Record<string, unknown>;
      expect({ ...ours, ociVersion: 'x' }).toStrictEqual({ ...runc, ociVersion: 'x' });
      expect(
        defaultSpec({ rootless, cgroupNamespace: true }).linux?.namespaces?.map((n) => n.type),
      ).toContain('cgroup');
    }
  });

  it('maps the given host ids in a rootless spec', () => {
    const spec = defaultSpec({ rootless: true, hostUid: 1000, hostGid: 1001 });
    expect(spec.linux?.uidMappings).toEqual([{ containerID: 0, hostID: 1000, size: 1 }]);
    expect(spec.linux?.gidMappings).toEqual([{ containerID: 0, hostID: 1001, size: 1 }]);
    expect(spec.linux?.namespaces?.map((n) => n.type)).toContain('user');
    expect(spec.linux?.namespaces?.map((n) => n.type)).not.toContain('network');
    expect(spec.linux?.resources).toBeUndefined();
  });

  it('returns a fresh object every time', () => {
    const a = defaultSpec();
    a.process?.capabilities?.bounding?.push('CAP_SYS_ADMIN');
    a.mounts?.pop();
    const b = defaultSpec();
    expect(b.process?.capabilities?.bounding).toEqual([
      'CAP_AUDIT_WRITE',
      'CAP_KILL',
      'CAP_NET_BIND_SERVICE',
    ]);
    expect(b.mounts).toHaveLength(7);
  });

  it('the runc output itself validates clean', async () => {
    expect(validateSpec(await runcSpec([]))).toEqual([]);
    expect(validateSpec(await runcSpec(['--rootless']))).toEqual([]);
  });
});

describe('formatSpec', () => {
  it('writes 2-space JSON with a trailing newline that parses back', () => {
    const text = formatSpec(defaultSpec());
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.split('\n')[1]).toBe(`  "ociVersion": "${OCI_VERSION}",`);
    expect(parseSpec(text)).toEqual(defaultSpec());
  });
});
