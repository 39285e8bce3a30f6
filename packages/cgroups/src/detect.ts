import { readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupError, errnoOf } from './errors.js';
import type { CgroupLayout } from './types.js';

const CGROUP2_SUPER_MAGIC = 0x63677270;
const CGROUP_SUPER_MAGIC = 0x27e0eb;

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';

/** Where each hierarchy of this host is mounted. */
export interface CgroupHierarchy {
  layout: CgroupLayout;
  /** v1 controller (or `name=xyz` named hierarchy) to its mount point */
  v1: Record<string, string>;
  /** the cgroup2 mount point on v2 and hybrid hosts */
  unified?: string;
}

async function fsType(path: string): Promise<number | undefined> {
  try {
    return statfsSync(path).type;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Decides by filesystem magic, as runc and systemd do: a cgroup2 root is v2, a
 * cgroup2 at `<root>/unified` beside v1 mounts is hybrid, anything else with v1
 * mounts is v1.
 */
export async function detectCgroupLayout(root: string = DEFAULT_CGROUP_ROOT): Promise<CgroupLayout> {
  const rootType = await fsType(root);
  if (rootType === CGROUP2_SUPER_MAGIC) return 'v2';
  if (rootType === CGROUP_SUPER_MAGIC) return 'v1';
  if ((await fsType(join(root, 'unified'))) === CGROUP2_SUPER_MAGIC) return 'hybrid';
  const mounts = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  if (Object.keys(mounts.v1).length > 0) return 'v1';
  throw new CgroupError({
    code: 'ENOCGROUPFS',
    op: 'detect',
    path: root,
    message: `no cgroup filesystem found at ${root}`,
  });
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo: the super options of a `cgroup` mount name its controllers. */
export function parseCgroupMounts(mountinfo: string): { v1: Record<string, string>; unified?: string } {
  const v1: Record<string, string> = {};
  let unified: string | undefined;
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    const mountPoint = left[4];
    const fstype = right[0];
    const superOpts = right[2] ?? '';
    if (mountPoint === undefined) continue;
    const mp = unescapeMount(mountPoint);
    if (fstype === 'cgroup2') {
      unified ??= mp;
    } else if (fstype === 'cgroup') {
      for (const opt of superOpts.split(',')) {
        if (opt === 'rw' || opt === 'ro' || opt.startsWith('release_agent=') || opt === 'xattr') continue;
        if (opt === 'clone_children' || opt === 'noprefix' || opt === 'cpuset_v2_mode') continue;
        v1[opt] ??= mp;
      }
    }
  }
  return unified === undefined ? { v1 } : { v1, unified };
}

/**
 * Resolves the mount points. With a non-default `root` (a test tree, a chroot)
 * the conventional layout under that root is assumed, so a plain directory can
 * stand in for a hierarchy in unit tests. Detection runs once per root and
 * layout in a process (a failed one is not kept).
 */
export async function discoverHierarchy(
  root: string = DEFAULT_CGROUP_ROOT,
  layout?: CgroupLayout,
): Promise<CgroupHierarchy> {
  if (root !== DEFAULT_CGROUP_ROOT && layout !== undefined) {
    if (layout === 'v2') return { layout, v1: {}, unified: root };
    const v1: Record<string, string> = {};
    for (const c of V1_CONTROLLERS) v1[c] = join(root, c);
    return layout === 'hybrid' ? { layout, v1, unified: join(root, 'unified') } : { layout, v1 };
  }
  // A running host's cgroup mounts do not change: detected once per root (and layout) per
  // process, not by a statfs and a parse of /proc/self/mountinfo at every create and delete.
  const key = `${root}\0${layout ?? ''}`;
  let found = discovered.get(key);
  if (found === undefined) {
    found = await detectHierarchy(root, layout);
    discovered.set(key, found);
  }
  return { ...found, v1: { ...found.v1 } }; // a copy: the cached one stays as detected
}

const discovered = new Map<string, CgroupHierarchy>();

async function detectHierarchy(root: string, layout: CgroupLayout | undefined): Promise<CgroupHierarchy> {
  const detected = layout ?? (await detectCgroupLayout(root));
  if (detected === 'v2') return { layout: 'v2', v1: {}, unified: root };
  const mounts = parseCgroupMounts(readFileSync('/proc/self/mountinfo', 'utf8'));
  const v1: Record<string, string> = {};
  for (const [ctrl, mp] of Object.entries(mounts.v1)) {
    if (mp === root || mp.startsWith(`${root}/`)) v1[ctrl] = mp;
  }
  if (detected === 'hybrid') return { layout: 'hybrid', v1, unified: join(root, 'unified') };
  return { layout: 'v1', v1 };
}

/** The v1 controllers this package creates a directory in (named hierarchies are left alone). */
export const V1_CONTROLLERS = [
  'cpu',
  'cpuacct',
  'cpuset',
  'memory',
  'devices',
  'freezer',
  'blkio',
  'pids',
  'hugetlb',
  'net_cls',
  'net_prio',
  'perf_event',
  'rdma',
  'misc',
] as const;
