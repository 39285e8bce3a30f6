// Bad input: one clear line, non-zero exit, nothing left behind (runs as root).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostBoundingSet } from '@berth/runtime';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Sandbox } from './helpers.js';

const sb = new Sandbox();
afterEach(() => {
  expect(sb.mounts()).toEqual([]);
  expect(sb.cgroups()).toEqual([]);
  expect(sb.states()).toEqual([]);
});
afterAll(() => sb.cleanup());

function fails(args: string[], message: string | RegExp): void {
  const r = sb.berth(args);
  expect(r.status).toBe(1);
  if (typeof message === 'string') expect(r.stderr).toBe(`berth: ${message}\n`);
  else expect(r.stderr).toMatch(message);
}

describe('bad input', () => {
  it('invalid JSON names the file, line and column', () => {
    const b = sb.bundle();
    writeFileSync(join(b, 'config.json'), '{\n  "ociVersion": "1.2.0",\n}\n');
    fails(
      ['create', '-b', b, sb.id()],
      `${join(b, 'config.json')}:3:1: invalid JSON: trailing comma before '}'`,
    );
  });

  it('a config that fails validation lists every problem with its JSON path', () => {
    const b = sb.bundle((c) => {
      c.linux.namespaces.push({ type: 'foo' });
      c.process.args = [];
    });
    fails(
      ['run', '-b', b, sb.id()],
      /process\.args: must be a non-empty array of strings\n.*linux\.namespaces\[5\]\.type: "foo" is not a namespace type/s,
    );
  });

  it('a missing rootfs, a missing bundle, an id with / or ..', () => {
    const b = sb.bundle((c) => {
      c.root.path = 'nowhere';
    });
    fails(
      ['create', '-b', b, sb.id()],
      `root.path: ${join(b, 'nowhere')} does not exist or is not a directory`,
    );
    fails(
      ['create', '-b', join(sb.dir, 'no-bundle'), sb.id()],
      `bundle ${join(sb.dir, 'no-bundle')} has no config.json`,
    );
    fails(
      ['create', '-b', b, 'a/b'],
      'invalid container id "a/b": use letters, digits and _ + - . (not "." or "..")',
    );
    fails(['create', '-b', b, '..'], /invalid container id "\.\."/);
  });

  it('an id that exists, and commands on an id that does not', () => {
    const b = sb.bundle((c) => {
      c.process.args = ['sleep', '30'];
    });
    const id = sb.id('dup');
    expect(sb.detached(['create', '-b', b, id])).toMatchObject({ status: 0, stderr: '' });
    fails(['create', '-b', b, id], `container ${id} already exists`);
    expect(sb.berth(['delete', id]).status).toBe(0);
    for (const cmd of ['start', 'state', 'kill', 'delete', 'pause', 'resume'])
      fails([cmd, 'nope'], 'container nope does not exist');
  });

  it('a failure inside the container names the step, and leaves nothing', () => {
    const b = sb.bundle((c) => {
      c.mounts.push({ destination: '/mnt/bad', type: 'nosuchfs', source: 'none' });
    });
    // the entry of config.json first: the bundle's default mounts come before it
    const index = JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')).mounts.length - 1;
    fails(['run', '-b', b, sb.id()], `mounts[${index}]: mount none on /mnt/bad: ENODEV (no such device)`);
    const c = sb.bundle((c) => {
      c.process.args = ['/bin/not-there'];
    });
    fails(
      ['create', '-b', c, sb.id()],
      'find executable "/bin/not-there" in the container: ENOENT (no such file or directory)',
    );
    // a missing working directory is made (runc's rule); a file in the way is the error
    const d = sb.bundle((c) => {
      c.process.cwd = '/etc/passwd/dir';
    });
    fails(['run', '-b', d, sb.id()], 'create working directory /etc/passwd/dir: ENOTDIR (not a directory)');
  });

  it('a negative process.oomScoreAdj: applied, or (without CAP_SYS_RESOURCE) an error that says why', () => {
    const b = sb.bundle((c) => {
      c.process.args = ['cat', '/proc/self/oom_score_adj'];
      c.process.oomScoreAdj = -998; // what containerd gives a pod's sandbox
    });
    if (hostBoundingSet() & (1n << 24n)) {
      expect(sb.berth(['run', '-b', b, sb.id()])).toMatchObject({ status: 0, stdout: '-998\n' });
    } else {
      fails(
        ['run', '-b', b, sb.id()],
        "set process.oomScoreAdj to -998 (/proc/self/oom_score_adj): EACCES (permission denied): a score below the runtime's own needs CAP_SYS_RESOURCE, which this host's bounding set lacks",
      );
    }
  });

  it('unsupported features are refused plainly, not ignored', () => {
    const b = sb.bundle((c) => {
      c.linux.personality = { domain: 'LINUX', flags: ['SHORT_INODE'] };
    });
    fails(
      ['run', '-b', b, sb.id()],
      'linux.personality.flags: berth knows no personality flags (runc ignores them; berth does not skip what it cannot apply)',
    );
  });

  it('an unknown linux.resources field is a warning, not an error (the runtime-spec forbids failing on it)', () => {
    const b = sb.bundle((c) => {
      c.process.args = ['true'];
      c.linux.resources = { ...c.linux.resources, CPU: { cpus: '0' }, memory: { limitt: 1 } };
    });
    const r = sb.berth(['run', '-b', b, sb.id()]);
    expect(r.status).toBe(0);
    expect(r.stderr.split('\n').sort()).toEqual([
      '',
      'berth: warning: linux.resources.CPU: not a field berth knows: ignored, as the runtime-spec asks (nothing applies it)',
      'berth: warning: linux.resources.memory.limitt: not a field berth knows: ignored, as the runtime-spec asks (nothing applies it)',
    ]);
    // with --log, the warnings go there only, as runc's: a shim runs `create` with the
    // container's own stdio, where a warning would read as the container's output
    const log = join(sb.dir, 'warnings.json');
    const c = sb.bundle((c) => {
      c.process.args = ['sh', '-c', 'echo out; echo err >&2'];
      c.linux.resources = { ...c.linux.resources, CPU: { cpus: '0' } };
    });
    const logged = sb.berth(['--log', log, '--log-format', 'json', 'run', '-b', c, sb.id()]);
    expect(logged).toMatchObject({ status: 0, stdout: 'out\n', stderr: 'err\n' });
    const entries = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(entries).toMatchObject([
      { level: 'warning', msg: expect.stringMatching(/^linux\.resources\.CPU: /) },
    ]);
  });

  it('usage errors say what is wrong', () => {
    fails(['frobnicate'], 'unknown command "frobnicate" (see berth --help)');
    fails(['create'], 'berth create needs CONTAINER_ID (see berth create --help)');
    fails(['kill', 'x', 'SIGNOPE'], 'unknown signal "SIGNOPE"');
    fails(['list', '--format', 'xml'], '--format must be table or json, not "xml"');
    fails(['run', '--bogus', 'busybox'], 'unknown option --bogus');
  });

  it('writes runc-style log lines to --log, as JSON with --log-format json', () => {
    const log = join(sb.dir, 'berth.log');
    fails(['--log', log, '--log-format', 'json', 'state', 'ghost'], 'container ghost does not exist');
    const line = JSON.parse(readFileSync(log, 'utf8').trim());
    expect(line).toMatchObject({
      level: 'error',
      msg: 'container ghost does not exist',
      code: 'ENOTFOUND',
      path: 'ghost',
    });
    expect(Number.isNaN(Date.parse(line.time))).toBe(false);
    const text = join(sb.dir, 'berth-text.log');
    fails(['--log', text, 'state', 'ghost'], 'container ghost does not exist');
    expect(readFileSync(text, 'utf8')).toMatch(
      /^time="[^"]+" level=error msg="container ghost does not exist"\n$/,
    );
    // opened first, as runc does: a log that cannot be written stops the command before it acts
    const id = sb.id('nolog');
    fails(
      ['--log', join(sb.dir, 'no/such/dir/berth.log'), 'run', '-d', '--name', id, 'busybox', 'true'],
      /^berth: --log .*no\/such\/dir\/berth\.log: cannot open it: ENOENT\n$/,
    );
    expect(sb.states()).not.toContain(id);
  });

  it('--debug logs what berth does: to stderr, or to --log (text or JSON) and not stderr', () => {
    const b = sb.bundle((c) => {
      c.process.args = ['true'];
    });
    const r = sb.berth(['--debug', 'run', '-b', b, sb.id('debug')]);
    expect(r.status).toBe(0);
    const lines = r.stderr.trim().split('\n');
    expect(lines.every((l) => /^time="[^"]+" level=debug msg=".*"$/.test(l))).toBe(true);
    expect(r.stderr).toMatch(/msg="[^"]*: plan\[0\] /); // the launcher's plan, step by step
    expect(r.stderr).toMatch(/msg="[^"]*: container process \d+/);
    expect(r.stderr).toMatch(/msg="delete [^"]*: cgroup, network and state removed"/);
    const log = join(sb.dir, 'debug.json');
    const j = sb.berth(['--log', log, '--log-format', 'json', '--debug', 'run', '-b', b, sb.id('debug')]);
    expect(j).toMatchObject({ status: 0, stderr: '' });
    const entries = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(entries.length).toBeGreaterThan(10);
    expect(entries.every((e) => e.level === 'debug' && typeof e.msg === 'string' && e.time)).toBe(true);
    // without --debug: nothing
    const quiet = sb.berth(['run', '-b', b, sb.id('debug')]);
    expect(quiet).toMatchObject({ status: 0, stderr: '' });
  });

  it('leaves no image snapshot behind when an image run fails', () => {
    // a missing working directory is made (runc's rule): a file there is an error
    fails(
      ['run', '--rm', '-w', '/etc/passwd', 'busybox', 'true'],
      /create working directory \/etc\/passwd: ENOTDIR/,
    );
    const containers = join(sb.store, 'containers');
    expect(existsSync(containers) ? readdirSync(containers) : []).toEqual([]);
  });
});

describe('locking', () => {
  it('serializes concurrent creates of one id: exactly one wins', async () => {
    const b = sb.bundle((c) => {
      c.process.args = ['sleep', '30'];
    });
    const id = sb.id('race');
    const runs = Array.from({ length: 4 }, () => {
      const child = sb.spawn(['create', '-b', b, id]);
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
      });
      child.stdout.resume();
      // a refused create's message is all read once its stderr has ended; the one that made the
      // container is not waited for so (the container holds its pipes)
      return new Promise<{ code: number | null; err: string }>((r) =>
        child.on('exit', (code) => {
          if (code === 0 || child.stderr.readableEnded) r({ code, err });
          else child.stderr.once('end', () => r({ code, err }));
        }),
      );
    });
    const results = await Promise.all(runs);
    expect(results.filter((r) => r.code === 0)).toHaveLength(1);
    for (const r of results.filter((r) => r.code !== 0))
      expect(r.err).toBe(`berth: container ${id} already exists\n`);
    expect(sb.berth(['delete', id]).status).toBe(0);
  });
});
