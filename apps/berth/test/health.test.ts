// Integration: CLI bugs with a test each (issue 13): an image run's snapshot and --name, and the
// pty relay's stdin (runs as root).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
});
afterAll(() => sb.cleanup());

/** Everything in the store besides what the store itself keeps: container snapshots and strays. */
const snapshots = () => {
  const containers = join(sb.store, 'containers');
  return existsSync(containers) ? readdirSync(containers) : [];
};
const storeEntries = () => readdirSync(sb.store).sort();

describe('berth run IMAGE: the snapshot', () => {
  it('refuses a bad --name before using it as a path: nothing is made, in the store or outside it', () => {
    sb.image(); // the store exists
    const before = storeEntries();
    for (const name of ['../escape', 'a/b', '..', 'x'.repeat(2000)]) {
      const r = sb.berth(['run', '--rm', '--name', name, 'busybox', 'true']);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`invalid container id ${JSON.stringify(name)}`);
    }
    expect(storeEntries()).toEqual(before);
    expect(snapshots()).toEqual([]);
    expect(sb.states()).toEqual([]);
  });

  it('removes the snapshot when the bundle it made is refused', () => {
    const id = sb.id('badbundle');
    // a uid past uint32: the snapshot is made (the user is looked up in its /etc/passwd), then the
    // bundle is refused
    const r = sb.berth(['run', '--rm', '--name', id, '--user', '99999999999', 'busybox', 'true']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/uid 99999999999 is not a user or group id/);
    expect(snapshots()).toEqual([]);
    expect(sb.states()).toEqual([]);
  });
});

describe('berth run -t: the pty relay', () => {
  it('passes every byte of stdin on while signals interrupt its writes', async () => {
    const N = 300_000;
    const child = spawn(
      process.execPath,
      [
        CLI,
        '--root',
        sb.root,
        'run',
        '--rm',
        '-t',
        '--name',
        sb.id('relay'),
        'busybox',
        'sh',
        '-c',
        // raw mode first (no line editing, no echo), then count what arrives
        `stty raw -echo; echo ready; timeout 20 head -c ${N} | wc -c`,
      ],
      { env: { ...process.env, BERTH_STORE: sb.store }, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    // 'close', not 'exit': what it printed is all read once its pipes have closed
    const exited = new Promise<number | null>((r) => child.on('close', r));
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready')) resolve();
      }),
    );
    // the launcher relays the pty: SIGWINCH (a terminal resize) interrupts its blocked writes
    const launcher = Number(
      readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(' ')[0],
    );
    const resize = setInterval(() => {
      try {
        process.kill(launcher, 'SIGWINCH');
      } catch {
        // gone
      }
    }, 1);
    child.stdin.end(Buffer.alloc(N, 'a'));
    const code = await exited;
    clearInterval(resize);
    expect(err).toBe('');
    expect(out.replace(/\r/g, '')).toBe(`ready\n${N}\n`);
    expect(code).toBe(0);
  }, 60_000);
});
