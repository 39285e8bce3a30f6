// Users of the tests that run berth without root (rootless.test.ts: berth as the user;
// clients/podman-rootless.test.ts: rootless podman, which runs berth as root in its user
// namespace). The tests run as root: each user is made with useradd under a unique name,
// with or without /etc/subuid and /etc/subgid ranges, and removed with its ranges afterwards.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from './helpers.js';

const NODE_MODULES = fileURLToPath(new URL('../../../node_modules', import.meta.url));
/** The size of each user's subordinate range. */
export const RANGE = 65536;

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** its XDG_RUNTIME_DIR: a private directory in its home */
  runtimeDir: string;
  /** the first subordinate id (undefined: the user has none) */
  subStart?: number;
}

/** Removes `name`'s lines from /etc/subuid and /etc/subgid (rewritten atomically). */
function removeSubIds(name: string): void {
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    if (!existsSync(f)) continue;
    const lines = readFileSync(f, 'utf8').split('\n');
    const kept = lines.filter((l) => !l.startsWith(`${name}:`));
    if (kept.length === lines.length) continue;
    const tmp = `${f}.berth-test-${process.pid}`;
    writeFileSync(tmp, kept.join('\n'), { mode: statSync(f).mode & 0o777 });
    execFileSync('mv', ['-f', tmp, f]);
  }
}

function addSubIds(name: string, start: number): void {
  for (const f of ['/etc/subuid', '/etc/subgid']) {
    const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
    writeFileSync(f, `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${name}:${start}:${RANGE}\n`);
  }
}

/** The users one test file made: `make` them, `remove` them all at the end (also after a failure). */
export class TestUsers {
  private readonly made: string[] = []; // names to remove, recorded as soon as they exist

  /** A new user (unique name), with or without subordinate ids, and a private XDG_RUNTIME_DIR. */
  make(withRanges: boolean): TestUser {
    const name = `berthrl${randomBytes(4).toString('hex')}`;
    const r = spawnSync('useradd', ['-m', '-s', '/bin/sh', name], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr}`);
    this.made.push(name);
    // useradd may allocate ranges by itself: the test decides which the user has
    removeSubIds(name);
    const [, , uid, gid, , home] = execFileSync('getent', ['passwd', name], { encoding: 'utf8' })
      .trim()
      .split(':');
    // a block of its own far above the ids useradd hands out
    const subStart = withRanges ? 1_000_000 + (randomBytes(2).readUInt16LE(0) % 4000) * RANGE : undefined;
    if (subStart !== undefined) addSubIds(name, subStart);
    const user: TestUser = {
      name,
      uid: Number(uid),
      gid: Number(gid),
      home: home!,
      runtimeDir: join(home!, '.rt'),
    };
    if (subStart !== undefined) user.subStart = subStart;
    mkdirSync(user.runtimeDir, { mode: 0o700 });
    chownSync(user.runtimeDir, user.uid, user.gid);
    return user;
  }

  /** Removes every user made, their homes and ranges; returns what could not be done. */
  remove(): string[] {
    const errors: string[] = [];
    for (const name of this.made) {
      removeSubIds(name);
      const r = spawnSync('userdel', ['-r', name], { encoding: 'utf8' });
      // exit 12: the mail spool was missing, which useradd does not make here
      if (r.status !== 0 && r.status !== 12) errors.push(`userdel ${name}: ${r.status} ${r.stderr}`);
    }
    for (const name of this.made) {
      for (const f of ['/etc/subuid', '/etc/subgid'])
        if (existsSync(f) && readFileSync(f, 'utf8').includes(`${name}:`))
          errors.push(`${f} still names ${name}`);
    }
    return errors;
  }
}

/** Whether `path` and every directory above it are root's and writable by nobody else. */
function rootOnlyPath(path: string): boolean {
  for (let p = path; ; p = dirname(p)) {
    const st = statSync(p);
    if (st.uid !== 0 || (st.mode & 0o022) !== 0) return false;
    if (dirname(p) === p) return true;
  }
}

/**
 * The CLI as the test users can run it, in a root-owned directory nobody else may write (so
 * every user trusts the launcher it finds): a copy of the bundles, which needs koffi and
 * @berth/sys (its launcher) from node_modules (`nodePath`): the repository's when `user` can
 * read it, else copies of those two. `bin` runs it with that NODE_PATH whatever the caller's
 * environment (a client such as podman gives its runtime only a few variables).
 */
export class UsersCli {
  readonly dir: string;
  readonly cli: string;
  readonly bin: string;
  nodePath = NODE_MODULES;

  /** `parent`: where the copy goes (a root-owned directory every user may search). */
  constructor(user: TestUser, parent = '/run') {
    this.dir = mkdtempSync(join(parent, 'berth-rltest-'));
    this.cli = join(this.dir, 'cli.cjs');
    this.bin = join(this.dir, 'berth');
    chmodSync(this.dir, 0o755);
    copyFileSync(CLI, this.cli);
    chmodSync(this.cli, 0o644);
    // its second bundle (the image, network and VM code), which it reads from beside itself
    copyFileSync(join(dirname(CLI), 'more.cjs'), join(this.dir, 'more.cjs'));
    chmodSync(join(this.dir, 'more.cjs'), 0o644);
    const sys = realpathSync(join(NODE_MODULES, '@berth', 'sys'));
    const readable = spawnSync('setpriv', [
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      '--init-groups',
      '--',
      'sh',
      '-c',
      'test -r "$0/koffi/package.json" && test -r "$1/dist/launcher.json" && test -r "$1/package.json"',
      NODE_MODULES,
      sys,
    ]);
    if (readable.status !== 0 || !rootOnlyPath(sys)) {
      // the repository is not readable by other users, or sits where another user could replace
      // it (a clone in /tmp: berth would not trust its launcher there): what the CLI loads at
      // run time, copied
      this.nodePath = join(this.dir, 'node_modules');
      cpSync(join(NODE_MODULES, 'koffi'), join(this.nodePath, 'koffi'), {
        recursive: true,
        dereference: true,
      });
      // koffi 3 keeps its native module in a package of its own per platform (@koromix/koffi-linux-x64)
      if (existsSync(join(NODE_MODULES, '@koromix')))
        cpSync(join(NODE_MODULES, '@koromix'), join(this.nodePath, '@koromix'), {
          recursive: true,
          dereference: true,
        });
      for (const part of ['package.json', 'dist', 'native'])
        cpSync(join(sys, part), join(this.nodePath, '@berth', 'sys', part), {
          recursive: true,
          dereference: true,
        });
    }
    writeFileSync(
      this.bin,
      `#!/bin/sh\nNODE_PATH='${this.nodePath}' exec '${process.execPath}' '${this.cli}' "$@"\n`,
    );
    execFileSync('chmod', ['-R', 'go+rX,go-w', this.dir]);
    chmodSync(this.bin, 0o755);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
