// Integration: real containers through the CLI (runs as root).
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, cgroupLayout, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

describe('berth run IMAGE (the built-in busybox)', () => {
  it('runs a command as PID 1 with its own hostname and only lo', () => {
    const r = sb.berth([
      'run',
      '--rm',
      '--network',
      'none', // the default as root is the bridge network (test/network.test.ts)
      '--hostname',
      'box1',
      'busybox',
      'sh',
      '-c',
      'echo pid=$$; hostname; ls /sys/class/net',
    ]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('pid=1\nbox1\nlo\n');
    expect(sb.states()).toEqual([]);
  });

  it("returns the container's exit status, and 128+N for a signal", () => {
    expect(sb.berth(['run', '--rm', 'busybox', 'sh', '-c', 'exit 42']).status).toBe(42);
    // PID 1 cannot kill itself: a child of it is killed and its status passed on with exit
    expect(
      sb.berth(['run', '--rm', 'busybox', 'sh', '-c', 'sh -c "kill -TERM \\$\\$"; exit $?']).status,
    ).toBe(143);
  });

  it('passes env, cwd, user and stdin (-i) through', () => {
    const r = sb.berth(
      [
        'run',
        '--rm',
        '-i',
        '-e',
        'GREETING=hi there',
        '-w',
        '/tmp',
        '-u',
        'nobody',
        'busybox',
        'sh',
        '-c',
        'echo "$GREETING"; pwd; id -u; cat',
      ],
      'from stdin\n',
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('hi there\n/tmp\n65534\nfrom stdin\n');
  });

  it('writes to an overlay: the image layer stays untouched, and --read-only refuses writes', () => {
    expect(sb.berth(['run', '--rm', 'busybox', 'true']).status).toBe(0);
    const layers = join(sb.store, 'layers', 'sha256');
    const [layer] = readdirSync(layers).filter((n) => !n.startsWith('.'));
    const image = join(layers, layer!);
    expect(existsSync(join(image, 'bin/ls'))).toBe(true);
    expect(
      sb.berth(['run', '--rm', 'busybox', 'sh', '-c', 'echo x > /etc/written && rm /bin/ls']).status,
    ).toBe(0);
    expect(existsSync(join(image, 'etc/written'))).toBe(false);
    expect(existsSync(join(image, 'bin/ls'))).toBe(true);
    const r = sb.berth(['run', '--rm', '--read-only', 'busybox', 'sh', '-c', 'touch /x']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/Read-only file system/);
  });

  it('applies --memory, --cpus and --pids-limit to the container cgroup', () => {
    const r = sb.berth([
      'run',
      '--rm',
      '--memory',
      '64M',
      '--cpus',
      '0.5',
      '--pids-limit',
      '50',
      'busybox',
      'sh',
      '-c',
      // the container sees its own cgroup at /sys/fs/cgroup, in the files this host's layout has
      cgroupLayout === 'v2'
        ? 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max'
        : 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/pids/pids.max',
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual(
      cgroupLayout === 'v2'
        ? ['67108864', '50000 100000', '50', '']
        : ['67108864', '50000', '100000', '50', ''],
    );
  });

  it('bind-mounts a volume, read-only with :ro', () => {
    const host = join(sb.dir, 'vol');
    mkdirSync(host);
    writeFileSync(join(host, 'f'), 'from host');
    const r = sb.berth([
      'run',
      '--rm',
      '-v',
      `${host}:/data:ro`,
      'busybox',
      'sh',
      '-c',
      'cat /data/f; touch /data/g',
    ]);
    expect(r.stdout).toBe('from host');
    expect(r.status).toBe(1);
    expect(existsSync(join(host, 'g'))).toBe(false);
  });

  it('keeps a stopped container without --rm until delete removes it and its snapshot', () => {
    const id = sb.id('keep');
    expect(sb.berth(['run', '--name', id, 'busybox', 'true']).status).toBe(0);
    const state = JSON.parse(sb.berth(['state', id]).stdout);
    expect(state.status).toBe('stopped');
    expect(existsSync(join(sb.store, 'containers', id))).toBe(true);
    expect(sb.berth(['delete', id]).status).toBe(0);
    expect(existsSync(join(sb.store, 'containers', id))).toBe(false);
    expect(sb.states()).toEqual([]);
  });

  it('passes a signal sent to berth on to the container', async () => {
    const id = sb.id('sig');
    const child = sb.spawn([
      'run',
      '--rm',
      '--name',
      id,
      'busybox',
      'sh',
      '-c',
      'trap "echo got-term; exit 7" TERM; echo ready; while true; do sleep 0.1; done',
    ]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    // 'close', not 'exit': what it printed is all read once its pipes have closed
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    for (let i = 0; i < 200 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 20));
    const pid = JSON.parse(sb.berth(['state', id]).stdout).pid as number;
    child.kill('SIGTERM');
    expect(await exited).toBe(7);
    expect(out).toContain('got-term');
    expect(alive(pid)).toBe(false);
    expect(sb.states()).toEqual([]);
  });
});
