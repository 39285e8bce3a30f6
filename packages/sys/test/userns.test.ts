// Integration (root): the launcher's user-namespace mechanism (userns.h, ops 45-48).
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWUSER,
  type IdmapWriterStep,
  type LaunchError,
  launch,
  MS,
  type PlanStep,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-userns-'));
chmodSync(dir, 0o755); // mapped root must reach the idmapped mount below it
afterAll(() => {
  spawnSync('umount', ['-R', '-l', dir]);
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `steps` then `sh -c script` (host binaries: no pivot), returns stdout or the launch error. */
async function run(
  steps: PlanStep[],
  script: string,
): Promise<{ out: string; error?: LaunchError; code: number }> {
  const l = launch(
    [...steps, { op: 'exec', path: '/bin/sh', argv: ['sh', '-c', script], env: ['PATH=/usr/bin:/bin'] }],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  l.process.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  let error: LaunchError | undefined;
  try {
    await l.expect('pid');
    await l.expect('eof');
  } catch (e) {
    error = e as LaunchError;
  }
  const code = await l.exited;
  await new Promise((r) => setTimeout(r, 20));
  return { out, code, ...(error ? { error } : {}) };
}

const maps = (u: string, g: string, writer: IdmapWriterStep = { mode: 0 }) =>
  ({ op: 'idmap', uidMap: u, gidMap: g, setgroups: 0, writer }) as PlanStep;

describe('user namespaces in the launcher', () => {
  it('writes the maps of its child (writer 0) and the child becomes root inside', async () => {
    const r = await run(
      [
        maps('0 200000 65536\n', '0 300000 1000\n1000 5000 1\n'),
        { op: 'clone', flags: CLONE_NEWUSER | CLONE_NEWNS, detach: false },
        { op: 'usernsRoot', setgroups: 0 },
      ],
      'cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u; id -g',
    );
    expect(r.error).toBeUndefined();
    const lines = r.out
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines).toEqual(['0 200000 65536', '0 300000 1000', '1000 5000 1', 'allow', '0', '0']);
    expect(r.code).toBe(0);
  });

  it('writes setgroups "deny" before gid_map when asked, and creds work without setgroups', async () => {
    const r = await run(
      [
        { op: 'idmap', uidMap: '0 200000 10\n', gidMap: '0 200000 10\n', setgroups: 1, writer: { mode: 0 } },
        { op: 'clone', flags: CLONE_NEWUSER | CLONE_NEWNS, detach: false },
        { op: 'usernsRoot', setgroups: 1 },
        { op: 'creds', uid: 1, gid: 1, groups: [] },
      ],
      'cat /proc/self/setgroups; id -u',
    );
    expect(r.error).toBeUndefined();
    expect(r.out.trim().split('\n')).toEqual(['deny', '1']);
  });

  it('refuses maps that do not go to a new user namespace of its own child', async () => {
    // no clone after the maps: nothing to write them to (the plan never names a pid)
    const a = await run([maps('0 200000 1\n', '0 200000 1\n')], 'true');
    expect(a.error?.message).toMatch(/idmap: no clone with CLONE_NEWUSER follows/);
    // a clone without CLONE_NEWUSER: the maps would go to a process of the host's user namespace
    const b = await run(
      [maps('0 200000 1\n', '0 200000 1\n'), { op: 'clone', flags: CLONE_NEWNS, detach: false }],
      'true',
    );
    expect(b.error?.message).toMatch(/idmap: no clone with CLONE_NEWUSER follows/);
  });

  it('reports a map the kernel refuses, and the child never runs', async () => {
    const marker = join(dir, 'ran');
    const r = await run(
      [
        maps('0 200000 10\n5 300000 10\n', '0 200000 10\n'), // overlapping inside ranges
        { op: 'clone', flags: CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID, detach: false },
        { op: 'usernsRoot', setgroups: 0 },
      ],
      `touch ${marker}`,
    );
    expect(r.error?.message).toMatch(/write the user namespace id maps.*write uid_map.*EINVAL/);
    expect(() => statSync(marker)).toThrow();
  });

  it('runs newuidmap/newgidmap-style tools (writer 1) with the pid and the triples, and reports their stderr', async () => {
    // stand-ins with newuidmap's calling convention, run by the launcher as root
    const tool = (name: string, file: string) => {
      const p = join(dir, name);
      writeFileSync(
        p,
        `#!/bin/sh\npid=$1; shift\necho "$@" > ${join(dir, `${name}.args`)}\nprintf '%s %s %s\\n' "$@" > /proc/$pid/${file}\n`,
      );
      chmodSync(p, 0o755);
      return p;
    };
    const newuidmap = tool('fake-newuidmap', 'uid_map');
    const newgidmap = tool('fake-newgidmap', 'gid_map');
    const r = await run(
      [
        {
          op: 'idmap',
          uidMap: '0 400000 100\n100 500000 5\n',
          gidMap: '0 400000 100\n',
          setgroups: 0,
          writer: { mode: 1, newuidmap, newgidmap },
        },
        { op: 'clone', flags: CLONE_NEWUSER | CLONE_NEWNS, detach: false },
        { op: 'usernsRoot', setgroups: 0 },
      ],
      'cat /proc/self/uid_map; id -u',
    );
    expect(r.error).toBeUndefined();
    expect(readFileSync(join(dir, 'fake-newuidmap.args'), 'utf8')).toBe('0 400000 100 100 500000 5\n');
    expect(readFileSync(join(dir, 'fake-newgidmap.args'), 'utf8')).toBe('0 400000 100\n');
    expect(
      r.out
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/).join(' ')),
    ).toEqual(['0 400000 100', '100 500000 5', '0']);

    const failing = join(dir, 'failing-newuidmap');
    writeFileSync(failing, '#!/bin/sh\necho "newuidmap: range not allowed" >&2\nexit 1\n');
    chmodSync(failing, 0o755);
    const f = await run(
      [
        {
          op: 'idmap',
          uidMap: '0 400000 1\n',
          gidMap: '0 400000 1\n',
          setgroups: 0,
          writer: { mode: 1, newuidmap: failing, newgidmap },
        },
        { op: 'clone', flags: CLONE_NEWUSER | CLONE_NEWNS, detach: false },
      ],
      'true',
    );
    expect(f.error?.message).toMatch(/id maps.*: newuidmap: range not allowed: EPERM/);
  });

  it('makes idmapped bind mounts: files written as mapped root land as host 0', async () => {
    const src = join(dir, 'store');
    const tgt = join(dir, 'view');
    mkdirSync(src, { recursive: true });
    mkdirSync(tgt, { recursive: true });
    writeFileSync(join(src, 'owned-by-0'), 'x');
    const m = {
      uidMap: '0 600000 65536\n',
      gidMap: '0 600000 65536\n',
      setgroups: 0 as const,
      writer: { mode: 0 as const },
    };
    const r = await run(
      [
        { op: 'unshare', flags: CLONE_NEWNS },
        { op: 'mount', target: '/', flags: MS.SLAVE | MS.REC },
        { op: 'idmapUserns', slot: 0, ...m },
        { op: 'idmapBind', source: src, target: tgt, slot: 0, recursive: false },
        { op: 'idmap', ...m },
        { op: 'clone', flags: CLONE_NEWUSER | CLONE_NEWNS, detach: false },
        { op: 'usernsRoot', setgroups: 0 },
      ],
      `stat -c %u ${tgt}/owned-by-0; echo new > ${tgt}/written; stat -c %u ${tgt}/written`,
    );
    expect(r.error).toBeUndefined();
    expect(r.out.trim().split('\n')).toEqual(['0', '0']);
    expect(statSync(join(src, 'written')).uid).toBe(0); // through the idmapped mount: host 0 on disk
    // the idmapped mount lived in the launcher's private mount namespace only
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(tgt);
  });
});
