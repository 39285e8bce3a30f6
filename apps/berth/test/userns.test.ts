// Integration (root): user namespaces through the CLI — maps written by the launcher,
// files landing as the mapped ids, idmapped rootfs and bind mounts, joining by path.
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, Sandbox } from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: tests edit config.json freely
type Config = Record<string, any>;

const sb = new Sandbox();
// the container's root is a mapped id: it must be able to search the bundle's directories
chmodSync(sb.dir, 0o711);
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

/** A unique host id range for one test (parallel-safe: no two tests share ids). */
let nextRange = 300000 + (process.pid % 1000) * 1_000_000;
const range = () => {
  nextRange += 100000;
  return nextRange;
};

const lines = (s: string) =>
  s
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).join(' '));

function storeContainers(): string[] {
  const d = join(sb.store, 'containers');
  return existsSync(d) ? readdirSync(d) : [];
}

/** `run FLAGS` of busybox as NAME, without a network, with uids from HOST and gids from HOST+70000. */
function mappedRun(name: string, host: number, script: string, flags: string[] = []): string[] {
  return [
    'run',
    ...flags,
    '--name',
    name,
    '--network',
    'none',
    '--uidmap',
    `0:${host}:65536`,
    '--gidmap',
    `0:${host + 70000}:65536`,
    'busybox',
    'sh',
    '-c',
    script,
  ];
}

/** Where a container's writes land: its overlay's upper directory, or its private copy (no overlayfs). */
function writesOf(name: string): string {
  const upper = join(sb.store, 'containers', name, 'upper');
  return existsSync(upper) ? upper : join(sb.store, 'containers', name, 'rootfs');
}

describe('berth run IMAGE with a user namespace', () => {
  it('--uidmap/--gidmap: the maps read right inside, files land as the mapped ids outside', () => {
    const host = range();
    const name = sb.id('map');
    const r = sb.detached(
      mappedRun(
        name,
        host,
        'cat /proc/self/uid_map /proc/self/gid_map > /maps; id -u > /ids; echo hi > /made-by-root; sleep 300',
        ['-d'],
      ),
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const upper = writesOf(name);
    for (let i = 0; i < 100 && !existsSync(join(upper, 'made-by-root')); i++) spawnSync('sleep', ['0.05']);
    expect(lines(readFileSync(join(upper, 'maps'), 'utf8'))).toEqual([
      `0 ${host} 65536`,
      `0 ${host + 70000} 65536`,
    ]);
    expect(readFileSync(join(upper, 'ids'), 'utf8')).toBe('0\n');
    const made = statSync(join(upper, 'made-by-root'));
    expect([made.uid, made.gid]).toEqual([host, host + 70000]);
    // another user of the container: its own mapped ids
    const user = sb.id('map');
    const u = sb.berth(mappedRun(user, host, 'touch /tmp/by-1000; id -u', ['-u', '1000:1000']));
    expect(u.stderr).toBe('');
    expect(u.stdout).toBe('1000\n');
    const by1000 = statSync(join(writesOf(user), 'tmp', 'by-1000'));
    expect([by1000.uid, by1000.gid]).toEqual([host + 1000, host + 70000 + 1000]);
    sb.berth(['delete', '--force', user]);
    // the image's layers are shared and untouched: still owned by host root
    const layerBin = statSync(join(sb.image(), 'bin'));
    expect(layerBin.uid).toBe(0);
    expect(sb.berth(['delete', '--force', name]).status).toBe(0);
    expect(storeContainers()).not.toContain(name);
  });

  it("--uidmap with the copy snapshotter (no overlay): the private copy is the mapped root's", () => {
    const host = range();
    const name = sb.id('copy');
    const run = (args: string[]) =>
      spawnSync(process.execPath, [CLI, '--root', sb.root, ...args], {
        encoding: 'utf8',
        env: { ...process.env, BERTH_STORE: sb.store, BERTH_SNAPSHOTTER: 'copy' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    const r = run(
      mappedRun(
        name,
        host,
        'echo hi > /made-by-root && mkdir -p /tmp && touch /tmp/t && stat -c "%u %g" / /bin/busybox',
      ),
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // inside: the image's root-owned files are root's
    expect(lines(r.stdout)).toEqual(['0 0', '0 0']);
    const copy = join(sb.store, 'containers', name, 'rootfs');
    expect(existsSync(join(sb.store, 'containers', name, 'upper'))).toBe(false); // no overlay
    const made = statSync(join(copy, 'made-by-root'));
    expect([made.uid, made.gid]).toEqual([host, host + 70000]);
    const bin = statSync(join(copy, 'bin'));
    expect([bin.uid, bin.gid]).toEqual([host, host + 70000]);
    // the shared layers are untouched: still host root's
    expect(statSync(join(sb.image(), 'bin')).uid).toBe(0);
    expect(run(['delete', '--force', name]).status).toBe(0);
    expect(storeContainers()).not.toContain(name);
  });

  it('--userns=auto gives each container its own free range and frees it at delete', () => {
    const a = sb.id('auto');
    const b = sb.id('auto');
    for (const n of [a, b]) {
      const r = sb.detached([
        'run',
        '-d',
        '--name',
        n,
        '--network',
        'none',
        '--userns=auto',
        'busybox',
        'sleep',
        '300',
      ]);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
    const rangeOf = (n: string) =>
      JSON.parse(readFileSync(join(sb.store, 'containers', n, 'userns.json'), 'utf8')) as {
        start: number;
        size: number;
      };
    const ra = rangeOf(a);
    const rb = rangeOf(b);
    expect(ra.size).toBe(65536);
    expect(rb.start >= ra.start + ra.size || ra.start >= rb.start + rb.size).toBe(true);
    expect(ra.start).toBeGreaterThanOrEqual(100000);
    const state = JSON.parse(sb.berth(['state', a]).stdout) as { pid: number };
    expect(lines(readFileSync(`/proc/${state.pid}/uid_map`, 'utf8'))).toEqual([`0 ${ra.start} 65536`]);
    expect(statSync(`/proc/${state.pid}`).uid).toBe(ra.start);
    sb.berth(['delete', '--force', a]);
    // a's range is free again: the next automatic container may have it
    const c = sb.id('auto');
    const r = sb.berth([
      'run',
      '--rm',
      '--name',
      c,
      '--network',
      'none',
      '--userns=auto',
      'busybox',
      'cat',
      '/proc/self/uid_map',
    ]);
    expect(r.status).toBe(0);
    expect(lines(r.stdout)).toEqual([`0 ${ra.start} 65536`]);
    sb.berth(['delete', '--force', b]);
  });

  it("no other host user reaches a container's files, set-id programs it made included, with or without --userns (CVE-2021-41091)", () => {
    const plain = sb.id('suid');
    const mapped = sb.id('suid');
    const make = 'cp /bin/busybox /p && chmod 4755 /p && touch /made && exec sleep 300';
    const run = (name: string, ...flags: string[]) =>
      sb.detached(['run', '-d', '--name', name, '--network', 'none', ...flags, 'busybox', 'sh', '-c', make])
        .status;
    expect(run(plain)).toBe(0);
    expect(run(mapped, '--userns=auto')).toBe(0);
    // the store searchable by all, as an administrator's 0755 /var/lib/berth would be
    const modes = [sb.dir, sb.store].map((d) => statSync(d).mode & 0o7777);
    chmodSync(sb.dir, modes[0]! | 0o011);
    chmodSync(sb.store, 0o755);
    const upper = (n: string) => join(sb.store, 'containers', n, 'upper');
    const made = () => existsSync(join(upper(plain), 'made')) && existsSync(join(upper(mapped), 'made'));
    for (let i = 0; i < 100 && !made(); i++) spawnSync('sleep', ['0.05']);
    expect(existsSync(join(upper(plain), 'p'))).toBe(true);
    // as nobody, through a shell (setpriv finds its program before it drops root)
    const asNobody = (script: string, ...args: string[]) =>
      spawnSync(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', '--', 'sh', '-c', script, ...args],
        {
          encoding: 'utf8',
        },
      );
    try {
      // nobody gets as far as the store's containers/: what stops it is each container's own directory
      expect(asNobody('cd "$0"', join(sb.store, 'containers')).status).toBe(0);
      for (const n of [plain, mapped]) {
        // the container's set-uid busybox (root's, or the mapped root's) cannot even be reached
        const r = asNobody('"$0" id -u', join(upper(n), 'p'));
        expect(r.status).not.toBe(0);
        expect(r.stderr).toMatch(/Permission denied/);
      }
      expect(statSync(join(sb.store, 'containers', plain)).mode & 0o777).toBe(0o700);
      // with --userns only the container's root group may search it (for the files bound from it)
      const range = JSON.parse(readFileSync(join(sb.store, 'containers', mapped, 'userns.json'), 'utf8')) as {
        start: number;
      };
      const st = statSync(join(sb.store, 'containers', mapped));
      expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o710, 0, range.start]);
    } finally {
      chmodSync(sb.dir, modes[0]!);
      chmodSync(sb.store, modes[1]!);
      for (const n of [plain, mapped]) sb.berth(['delete', '--force', n]);
    }
  });

  it('refuses bad --uidmap/--userns values with a clear message, leaving nothing behind', () => {
    const before = storeContainers();
    const cases: Array<[string[], RegExp]> = [
      [['--uidmap', '0:100000'], /--uidmap "0:100000": expected CONTAINER:HOST:SIZE, three ids/],
      [['--uidmap', '0:100000:0'], /--uidmap 0:100000:0: SIZE must be at least 1/],
      [['--uidmap', 'x:1:1'], /--uidmap "x:1:1": expected CONTAINER:HOST:SIZE/],
      [['--gidmap', '0:100000:10'], /--gidmap needs --uidmap too/],
      [['--userns', 'private'], /--userns must be host, auto or keep-id, not "private"/],
      [['--userns=auto', '--uidmap', '0:1:1'], /cannot be used together/],
      [
        ['--uidmap', '0:400000:10', '--uidmap', '5:500000:10'],
        /--uidmap\[1\]: container ids 5-14 overlap --uidmap\[0\] \(0-9\)/,
      ],
      [['--uidmap', '0:0:65536'], /linux.uidMappings: maps container root to host root/],
    ];
    for (const [flags, message] of cases) {
      const r = sb.berth(['run', '--rm', '--network', 'none', ...flags, 'busybox', 'true']);
      expect(r.stderr).toMatch(message);
      expect(r.status).toBe(1);
    }
    expect(storeContainers()).toEqual(before);
    expect(sb.states()).toEqual([]);
  });

  it("-v SRC:DST:idmap: a host directory owned by root is the container root's, and stays host root's", () => {
    const host = range();
    const vol = join(sb.dir, `vol-${host}`);
    mkdirSync(vol, { mode: 0o755 });
    writeFileSync(join(vol, 'host-file'), 'x');
    const r = sb.berth([
      'run',
      '--rm',
      '--network',
      'none',
      '--uidmap',
      `0:${host}:65536`,
      '-v',
      `${vol}:/data:rw,idmap`,
      'busybox',
      'sh',
      '-c',
      'stat -c "%u %g" /data/host-file; echo from-container > /data/new',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(lines(r.stdout)).toEqual(['0 0']);
    const st = statSync(join(vol, 'new'));
    expect([st.uid, st.gid]).toEqual([0, 0]);
    expect(sb.berth(['run', '--rm', '-v', `${vol}:/data:idmap,bogus`, 'busybox', 'true']).stderr).toMatch(
      /must be SRC:DST\[:OPTIONS\], OPTIONS ro or rw and idmap/,
    );
  });

  it('keep-id keeps the sudo user as the same id, and runs as it', () => {
    const withEnv = (sudo: Record<string, string>, args: string[]) => {
      const env: NodeJS.ProcessEnv = { ...process.env, BERTH_STORE: sb.store, ...sudo };
      if (!sudo['SUDO_UID']) {
        delete env['SUDO_UID'];
        delete env['SUDO_GID'];
      }
      return spawnSync(process.execPath, [CLI, '--root', sb.root, ...args], { encoding: 'utf8', env });
    };
    const args = ['run', '--rm', '--network', 'none', '--userns=keep-id', 'busybox'];
    const r = withEnv({ SUDO_UID: '1234', SUDO_GID: '1235' }, [
      ...args,
      'sh',
      '-c',
      'id -u; id -g; cat /proc/self/uid_map',
    ]);
    expect(r.stderr).toBe('');
    const out = lines(r.stdout);
    expect(out.slice(0, 2)).toEqual(['1234', '1235']);
    // 0..1233 and 1235..65535 from a free range, 1234 as itself
    expect(out[2]).toMatch(/^0 \d+ 1234$/);
    expect(out[3]).toBe('1234 1234 1');
    expect(out[4]).toMatch(/^1235 \d+ 64301$/);
    const noSudo = withEnv({}, [...args, 'true']);
    expect(noSudo.stderr).toMatch(/keep-id as root keeps the user who ran sudo/);
    expect(noSudo.status).toBe(1);
  });
});

describe('bundles with a user namespace', () => {
  const userns =
    (host: number, extra: Record<string, unknown> = {}) =>
    (c: Config) => {
      c.root.readonly = false;
      c.linux.namespaces.push({ type: 'user' });
      c.linux.uidMappings = [{ containerID: 0, hostID: host, size: 65536 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: host, size: 65536 }];
      Object.assign(c, extra);
    };

  /** A bundle whose rootfs the mapped root owns, reachable by it (as runc needs for a joined user namespace). */
  const mappedBundle = (host: number, edit: (c: Config) => void) => {
    const b = sb.bundle(edit);
    spawnSync('chown', ['-R', `${host}:${host}`, join(b, 'rootfs')]);
    chmodSync(b, 0o711);
    return b;
  };

  /** A detached container with a user namespace of `host`'s range (`sleep 300`): the namespaces others join. */
  const startOwner = (host: number, name: string, edit: (c: Config) => void = () => {}) => {
    const id = sb.id(name);
    let config!: Config;
    const b = mappedBundle(host, (c) => {
      userns(host)(c);
      c.process.args = ['sleep', '300'];
      edit(c);
      config = c;
    });
    expect(sb.detached(['run', '-d', '-b', b, id])).toMatchObject({ status: 0, stderr: '' });
    const pid = (JSON.parse(sb.berth(['state', id]).stdout) as { pid: number }).pid;
    return { id, pid, config };
  };

  it('a rootfs owned by the mapped range is writable by container root', () => {
    const host = range();
    const b = sb.bundle(userns(host));
    spawnSync('chown', ['-R', `${host}:${host}`, join(b, 'rootfs')]);
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.process.args = ['sh', '-c', 'echo written > /root-file; ls -ln /root-file; cat /proc/self/uid_map'];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const r = sb.berth(['run', '-b', b, sb.id('own')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/ 0 +0 .*\/root-file/);
    expect(statSync(join(b, 'rootfs', 'root-file')).uid).toBe(host);
  });

  it('an idmapped rootfs owned by host root: usable by mapped root, what it writes lands as host 0', () => {
    const host = range();
    const b = sb.bundle(userns(host, { annotations: { 'org.berth.rootfs.idmap': 'true' } }));
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.process.args = ['sh', '-c', 'echo through-idmap > /etc/written; stat -c "%u %g" /etc/written /bin'];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const r = sb.berth(['run', '-b', b, sb.id('idmap')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(lines(r.stdout)).toEqual(['0 0', '0 0']);
    const st = statSync(join(b, 'rootfs', 'etc', 'written'));
    expect([st.uid, st.gid]).toEqual([0, 0]);
    expect(readFileSync(join(b, 'rootfs', 'etc', 'written'), 'utf8')).toBe('through-idmap\n');
  });

  it('idmap and ridmap bind mounts, with the container maps or their own', () => {
    const host = range();
    const data = join(sb.dir, `data-${host}`);
    const other = join(sb.dir, `other-${host}`);
    for (const d of [data, other]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'by-host-1000'), 'x');
      spawnSync('chown', ['1000:1000', join(d, 'by-host-1000')]);
    }
    const b = sb.bundle(userns(host));
    spawnSync('chown', ['-R', `${host}:${host}`, join(b, 'rootfs')]);
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.mounts.push(
      { destination: '/same', type: 'bind', source: data, options: ['rbind', 'idmap'] },
      {
        destination: '/own',
        type: 'bind',
        source: other,
        options: ['rbind', 'ridmap'],
        // runc's reading: an on-disk id (containerID) is seen as a host id (hostID)
        uidMappings: [{ containerID: 1000, hostID: host + 500, size: 1 }],
        gidMappings: [{ containerID: 1000, hostID: host + 600, size: 1 }],
      },
    );
    cfg.process.args = [
      'sh',
      '-c',
      'stat -c "%u %g" /same/by-host-1000 /own/by-host-1000; echo new > /same/new',
    ];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const r = sb.berth(['run', '-b', b, sb.id('bindmap')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(lines(r.stdout)).toEqual(['1000 1000', '500 600']);
    expect(statSync(join(data, 'new')).uid).toBe(0); // container root through the idmap: host 0
  });

  it('idmapped bind mounts without a user namespace: mappings alone ask for one, a source may repeat', () => {
    const host = range();
    const data = join(sb.dir, `plain-${host}`);
    mkdirSync(data, { recursive: true });
    writeFileSync(join(data, 'f'), 'x');
    spawnSync('chown', ['7:8', join(data, 'f')]);
    const b = sb.bundle();
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    const maps = (on: number, seen: number) => ({
      uidMappings: [{ containerID: on, hostID: seen, size: 10 }],
      gidMappings: [{ containerID: on, hostID: seen, size: 10 }],
    });
    // no "idmap" option: mounts with their own maps are idmapped all the same (runc 1.2)
    cfg.mounts.push(
      { destination: '/one', type: 'bind', source: data, options: ['bind'], ...maps(0, host) },
      { destination: '/two', type: 'bind', source: data, options: ['bind', 'ro'], ...maps(0, host + 1000) },
    );
    cfg.process.args = [
      'sh',
      '-c',
      'stat -c "%u %g" /one/f /two/f; touch /two/new 2>/dev/null && echo two-writable; grep -c idmapped /proc/self/mountinfo',
    ];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const r = sb.berth(['run', '-b', b, sb.id('plainmap')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(lines(r.stdout)).toEqual([`${host + 7} ${host + 8}`, `${host + 1007} ${host + 1008}`, '2']);
    expect(existsSync(join(data, 'new'))).toBe(false);
  });

  it('an idmapped copy of a shared host mount is a slave: mounts below it never reach the host', () => {
    // all in a private mount namespace of the test's own, where the source is made shared
    const host = range();
    const data = join(sb.dir, `shared-${host}`);
    mkdirSync(join(data, 'sub'), { recursive: true });
    const b = sb.bundle(userns(host));
    spawnSync('chown', ['-R', `${host}:${host}`, join(b, 'rootfs')]);
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.mounts.push(
      { destination: '/data', type: 'bind', source: data, options: ['rbind', 'idmap'] },
      { destination: '/data/sub', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] },
    );
    cfg.process.args = ['sh', '-c', 'grep -c " /data/sub " /proc/self/mountinfo'];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    for (const withUserns of [true, false]) {
      if (!withUserns) {
        cfg.linux.namespaces = cfg.linux.namespaces.filter((n: { type: string }) => n.type !== 'user');
        delete cfg.linux.uidMappings;
        delete cfg.linux.gidMappings;
        cfg.mounts[cfg.mounts.length - 2].uidMappings = [{ containerID: 0, hostID: host, size: 65536 }];
        cfg.mounts[cfg.mounts.length - 2].gidMappings = [{ containerID: 0, hostID: host, size: 65536 }];
        writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
      }
      const script = [
        `mount --bind ${data} ${data}`,
        `mount --make-shared ${data}`,
        `${process.execPath} ${CLI} --root ${sb.root} run -b ${b} ${sb.id('shared')} || exit 9`,
        `grep -c " ${data}/sub " /proc/self/mountinfo`,
        'true',
      ].join('; ');
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
        encoding: 'utf8',
        env: { ...process.env, BERTH_STORE: sb.store },
      });
      expect(r.stderr).toBe('');
      // the container saw its tmpfs; the namespace the source is shared in did not get it
      expect(lines(r.stdout)).toEqual(['1', '0']);
    }
  });

  it('an idmapped bind source the container user namespace cannot reach: prepared by the launcher', () => {
    const host = range();
    const closed = join(sb.dir, `closed-${host}`);
    mkdirSync(join(closed, 'dir'), { recursive: true });
    writeFileSync(join(closed, 'dir', 'f'), 'secret-ish\n');
    chmodSync(closed, 0o700); // host root's: the mapped root cannot search it
    const b = sb.bundle(userns(host));
    spawnSync('chown', ['-R', `${host}:${host}`, join(b, 'rootfs')]);
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.mounts.push({
      destination: '/in',
      type: 'bind',
      source: join(closed, 'dir'),
      options: ['bind', 'idmap'],
    });
    cfg.process.args = ['sh', '-c', 'cat /in/f; stat -c "%u" /in/f'];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const r = sb.berth(['run', '-b', b, sb.id('closed')]);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['secret-ish', '0']);
  });

  it('a bind source the mapped root cannot reach is bound all the same (staged by the launcher)', () => {
    const host = range();
    const closed = join(sb.dir, `closed-plain-${host}`);
    mkdirSync(join(closed, 'dir'), { recursive: true });
    writeFileSync(join(closed, 'dir', 'f'), 'through the stage\n');
    writeFileSync(join(closed, 'file'), 'a file source\n');
    chmodSync(closed, 0o700); // host root's: the mapped root cannot search it
    const b = sb.bundle(userns(host));
    spawnSync('chown', ['-R', `${host}:${host}`, join(b, 'rootfs')]);
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.mounts.push(
      { destination: '/in', type: 'bind', source: join(closed, 'dir'), options: ['rbind', 'ro'] },
      { destination: '/one', type: 'bind', source: join(closed, 'file'), options: ['bind'] },
    );
    cfg.process.args = ['sh', '-c', 'cat /in/f /one; touch /in/g 2>/dev/null || echo read-only'];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const id = sb.id('stage');
    const r = sb.berth(['run', '-b', b, id]);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['through the stage', 'a file source', 'read-only']);
    expect(existsSync(join(sb.root, id))).toBe(false); // the stage went with the container
  });

  it('a staged source on a read-only host mount stays read-only, even for a root with CAP_SYS_ADMIN', () => {
    const host = range();
    const data = join(sb.dir, `ro-host-${host}`);
    mkdirSync(data, { recursive: true });
    const b = sb.bundle(userns(host));
    spawnSync('chown', ['-R', `${host}:${host}`, join(b, 'rootfs')]);
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.mounts.push({ destination: '/d', type: 'bind', source: data, options: ['bind', 'rw'] });
    for (const set of ['bounding', 'effective', 'permitted'])
      cfg.process.capabilities[set].push('CAP_SYS_ADMIN');
    cfg.process.args = [
      'sh',
      '-c',
      'mount -o remount,bind,rw /d 2>/dev/null; touch /d/x 2>/dev/null || echo read-only',
    ];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    // the source is read-only where it is mounted (a namespace of the test's own)
    const script = [
      `mount --bind ${data} ${data}`,
      `mount -o remount,bind,ro ${data}`,
      `${process.execPath} ${CLI} --root ${sb.root} run -b ${b} ${sb.id('rohost')}`,
    ].join(' && ');
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
      encoding: 'utf8',
      env: { ...process.env, BERTH_STORE: sb.store },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('read-only\n');
    expect(existsSync(join(data, 'x'))).toBe(false);
  });

  it('refuses maps that are wrong before anything is made, naming the JSON path', () => {
    const host = range();
    const bad: Array<[(c: Config) => void, RegExp]> = [
      [
        (c) => {
          c.linux.uidMappings = [{ containerID: 0, hostID: host, size: 10 }];
        },
        /linux.uidMappings: requires a "user" entry in linux.namespaces/,
      ],
      [
        (c) => {
          userns(host)(c);
          c.linux.uidMappings.push({ containerID: 5, hostID: host + 100000, size: 10 });
        },
        /linux.uidMappings\[1\]: container ids 5-14 overlap linux.uidMappings\[0\]/,
      ],
      [
        (c) => {
          userns(host)(c);
          c.linux.gidMappings = [];
        },
        /linux.gidMappings: a new user namespace .* needs gid mappings/,
      ],
      [
        (c) => {
          userns(0)(c);
        },
        /linux.uidMappings: maps container root to host root, which undoes the user namespace; set the annotation org.berth.userns.host-root=true/,
      ],
      [
        (c) => {
          c.mounts.push({ destination: '/x', type: 'tmpfs', source: 'tmpfs', options: ['idmap'] });
          userns(host)(c);
        },
        /mounts\[\d+\]: idmapped mounts are only supported for bind mounts/,
      ],
    ];
    for (const [edit, message] of bad) {
      const id = sb.id('bad');
      const r = sb.berth(['create', '-b', sb.bundle(edit), id]);
      expect(r.stderr).toMatch(message);
      expect(r.status).toBe(1);
    }
    expect(sb.states()).toEqual([]);
  });

  it('maps container root to host root only when the annotation asks for it', () => {
    const b = sb.bundle(userns(0, { annotations: { 'org.berth.userns.host-root': 'true' } }));
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.process.args = ['cat', '/proc/self/uid_map'];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const r = sb.berth(['run', '-b', b, sb.id('rootroot')]);
    expect(r.stderr).toBe('');
    expect(lines(r.stdout)).toEqual(['0 0 65536']);
  });

  it('a create that fails inside the user namespace leaves nothing behind', () => {
    const host = range();
    const b = sb.bundle(userns(host, { annotations: { 'org.berth.rootfs.idmap': 'true' } }));
    const cfg = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8'));
    cfg.process.args = ['/no/such/binary'];
    writeFileSync(join(b, 'config.json'), JSON.stringify(cfg));
    const id = sb.id('fail');
    const r = sb.berth(['create', '-b', b, id]);
    expect(r.stderr).toMatch(/no\/such\/binary/);
    expect(r.status).toBe(1);
    sb.berth(['delete', '--force', id]);
    expect(sb.states()).toEqual([]);
  });

  it('joins the user namespace of another container by /proc/PID/ns/user', () => {
    const host = range();
    const { id: a, pid } = startOwner(host, 'owner');

    const bb = mappedBundle(host, (c) => {
      c.root.readonly = false;
      c.linux.namespaces.push({ type: 'user', path: `/proc/${pid}/ns/user` });
      c.process.args = [
        'sh',
        '-c',
        'readlink /proc/self/ns/user; cat /proc/self/uid_map; id -u; touch /joined',
      ];
    });
    const r = sb.berth(['run', '-b', bb, sb.id('joiner')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const out = lines(r.stdout);
    expect(out[0]).toBe(spawnSync('readlink', [`/proc/${pid}/ns/user`], { encoding: 'utf8' }).stdout.trim());
    expect(out.slice(1)).toEqual([`0 ${host} 65536`, '0']);
    expect(statSync(join(bb, 'rootfs', 'joined')).uid).toBe(host);
    // mappings given with the join must be the joined namespace's
    const bc = sb.bundle((c) => {
      c.linux.namespaces.push({ type: 'user', path: `/proc/${pid}/ns/user` });
      c.linux.uidMappings = [{ containerID: 0, hostID: host + 1, size: 65536 }];
      c.linux.gidMappings = [{ containerID: 0, hostID: host, size: 65536 }];
    });
    expect(sb.berth(['create', '-b', bc, sb.id('mismatch')]).stderr).toMatch(
      /linux.uidMappings: the mappings differ from those of the user namespace/,
    );
    sb.berth(['delete', '--force', a]);
  });

  it('joins a user namespace and a network namespace that user namespace does not own', () => {
    const host = range();
    const { id: a, pid } = startOwner(host, 'nsowner');
    // a network namespace of the host's user namespace, held by a bind mount (as `ip netns add`)
    const netns = join(sb.dir, `netns-${host}`);
    writeFileSync(netns, '');
    expect(spawnSync('unshare', ['-n', 'mount', '--bind', '/proc/self/ns/net', netns]).status).toBe(0);
    try {
      const bb = mappedBundle(host, (c) => {
        c.linux.namespaces = c.linux.namespaces.map((n: { type: string }) =>
          n.type === 'network' ? { type: 'network', path: netns } : n,
        );
        c.linux.namespaces.push({ type: 'user', path: `/proc/${pid}/ns/user` });
        // no sysfs of its own there (the network namespace is not the user namespace's): the host's
        c.mounts = c.mounts.map((m: { type?: string; destination: string }) =>
          m.type === 'sysfs'
            ? { type: 'bind', source: '/sys', destination: m.destination, options: ['rbind'] }
            : m,
        );
        c.process.args = ['readlink', '/proc/self/ns/net'];
      });
      const r = sb.berth(['run', '-b', bb, sb.id('netjoiner')]);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe(`net:[${statSync(netns).ino}]`);
    } finally {
      spawnSync('umount', [netns]);
      sb.berth(['delete', '--force', a]);
    }
  });

  it("joins every namespace of a container with a user and a time namespace (runc's join test)", () => {
    const host = range();
    const {
      id: a,
      pid,
      config: ca,
    } = startOwner(host, 'timeowner', (c) => {
      c.linux.namespaces.push({ type: 'time' });
      c.linux.timeOffsets = { boottime: { secs: 86400 * 365, nanosecs: 0 } };
    });
    const proc: Record<string, string> = { network: 'net', mount: 'mnt' };
    const bb = mappedBundle(host, (c) => {
      c.linux.namespaces = [...ca.linux.namespaces].map((n: { type: string }) =>
        n.type === 'mount'
          ? { type: 'mount' }
          : { type: n.type, path: `/proc/${pid}/ns/${proc[n.type] ?? n.type}` },
      );
      c.process.args = ['sh', '-c', 'readlink /proc/self/ns/time; cat /proc/uptime'];
    });
    const r = sb.berth(['run', '-b', bb, sb.id('timejoiner')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const [ns, uptime] = lines(r.stdout);
    expect(ns).toBe(spawnSync('readlink', [`/proc/${pid}/ns/time`], { encoding: 'utf8' }).stdout.trim());
    // the joined time namespace's boottime offset: a year more than the host's uptime
    const hostUptime = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    expect(Number(uptime!.split(' ')[0]) - hostUptime).toBeGreaterThan(86400 * 365 - 60);
    sb.berth(['delete', '--force', a]);
  });
});
