// What the library-mode tests share: a scratch directory with a state root, busybox
// bundles, and a list of whatever a container could have left behind.
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCgroupMounts } from '@berth/cgroups';
import { defaultSpec, formatSpec } from '@berth/spec';

export interface LibraryFixture {
  /** The scratch directory: bundles, state root, outputs. */
  dir: string;
  /** The Runtime's state root. */
  root: string;
  /** A random tag for unique ids. */
  tag: string;
  /** A busybox bundle running `args`. */
  bundle(args: string[]): string;
  /** What of ours could be left: state directories, cgroups, mounts, processes (children, or rooted in `dir`). */
  leftovers(ids: string[]): string[];
  /** Removes the scratch directory. */
  cleanup(): void;
}

/** Every cgroup directory a container `id` could have: one per hierarchy of this host (v1, v2 or hybrid). */
function cgroupDirs(id: string): string[] {
  const { v1, unified } = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  const mounts = [...new Set([...Object.values(v1), ...(unified ? [unified] : [])])];
  return mounts.map((m) => join(m, 'berth', id));
}

export function libraryFixture(prefix: string): LibraryFixture {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const root = join(dir, 'run');
  return {
    dir,
    root,
    tag: randomBytes(3).toString('hex'),
    bundle(args) {
      const b = mkdtempSync(join(dir, 'bundle-'));
      for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp'])
        mkdirSync(join(b, 'rootfs', d), { recursive: true });
      copyFileSync('/bin/busybox', join(b, 'rootfs/bin/busybox'));
      for (const applet of ['sh', 'true', 'sleep']) symlinkSync('busybox', join(b, 'rootfs/bin', applet));
      const spec = defaultSpec();
      spec.process!.terminal = false;
      spec.process!.args = args;
      writeFileSync(join(b, 'config.json'), formatSpec(spec));
      return b;
    },
    leftovers(ids) {
      const left: string[] = [];
      if (existsSync(root))
        for (const d of readdirSync(root)) {
          // the lock directory stays; a lock file left in it is a leftover
          if (d === '@locks') for (const l of readdirSync(join(root, d))) left.push(`lock ${l}`);
          else left.push(`state ${d}`);
        }
      for (const id of ids) for (const c of cgroupDirs(id)) if (existsSync(c)) left.push(`cgroup ${c}`);
      for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n'))
        if (l.includes(dir)) left.push(`mount ${l}`);
      for (const p of readdirSync('/proc')) {
        if (!/^\d+$/.test(p)) continue;
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          const rootDir = readlinkSync(`/proc/${p}/root`);
          if (ppid === process.pid || rootDir.startsWith(dir))
            left.push(`process ${p}: ${stat.slice(0, 60)}`);
        } catch {
          // exited meanwhile
        }
      }
      return left;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
