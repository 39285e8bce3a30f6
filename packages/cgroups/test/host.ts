// What this host's cgroups look like, read from the host (never assumed), and
// the rule for a test that needs something the host lacks.
import { readdirSync, readFileSync } from 'node:fs';
import { it } from 'vitest';
import { type Cgroup, type CgroupHierarchy, type CgroupLayout, discoverHierarchy } from '../src/index.js';
import { hugepageSizeName } from '../src/plan.js';

const words = (s: string) => s.trim().split(/\s+/).filter(Boolean);

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

export interface HostCgroups {
  layout: CgroupLayout;
  hierarchy: CgroupHierarchy;
  /** the cgroup2 mount point (v2 and hybrid) */
  unified: string | undefined;
  /** controllers the cgroup2 root lists in cgroup.controllers (what the driver may enable) */
  v2Controllers: Set<string>;
  /** v1 controllers with a mounted hierarchy */
  v1Controllers: Set<string>;
  /** hugepage sizes the kernel offers, in the cgroup file spelling (`2MB`, `1GB`) */
  hugepageSizes: string[];
  /** a real block device's major:minor, for blkio/io rules */
  blockDevice: { major: number; minor: number } | undefined;
  /** the highest cpu number the kernel could ever bring up */
  maxPossibleCpu: number;
}

function probeHugepageSizes(): string[] {
  try {
    return readdirSync('/sys/kernel/mm/hugepages')
      .map((n) => /^hugepages-(\d+)kB$/.exec(n))
      .flatMap((m) => (m ? [hugepageSizeName(Number(m[1]))] : []));
  } catch {
    return [];
  }
}

function probeBlockDevice(): { major: number; minor: number } | undefined {
  try {
    for (const name of readdirSync('/sys/block').sort()) {
      if (name.startsWith('loop') || name.startsWith('ram') || name.startsWith('zram')) continue;
      const m = /^(\d+):(\d+)/.exec(readOr(`/sys/block/${name}/dev`, ''));
      if (m) return { major: Number(m[1]), minor: Number(m[2]) };
    }
  } catch {}
  return undefined;
}

function probeMaxCpu(): number {
  const possible = readOr('/sys/devices/system/cpu/possible', '0').trim();
  return Math.max(...possible.split(',').map((r) => Number(r.split('-').pop())));
}

export async function probeHost(): Promise<HostCgroups> {
  const hierarchy = await discoverHierarchy();
  const unified = hierarchy.unified;
  return {
    layout: hierarchy.layout,
    hierarchy,
    unified,
    v2Controllers: new Set(unified ? words(readOr(`${unified}/cgroup.controllers`, '')) : []),
    v1Controllers: new Set(Object.keys(hierarchy.v1)),
    hugepageSizes: probeHugepageSizes(),
    blockDevice: probeBlockDevice(),
    maxPossibleCpu: probeMaxCpu(),
  };
}

export const host: HostCgroups = await probeHost();

/**
 * Host features a test may need that some supported hosts do not have by
 * design. A test needing one of these is skipped (and counted as skipped in
 * the summary) where it is absent; a test needing anything else fails, naming
 * what the host lacks.
 */
const MAY_BE_ABSENT: Record<string, string> = {
  'cgroup v1 controllers': 'v2-only hosts (Debian 12, Ubuntu 22.04+, Fedora: CI) have none',
  cgroup2: 'v1-only hosts have no cgroup2 mount',
  'a cgroup2 controller missing from the host': 'v2 hosts may list every controller',
  'a v1 controller missing from the host': 'hosts may mount every v1 controller',
  'the hugetlb controller on cgroup2': 'bound to v1 on v1 hosts; absent where cgroup2 lists no controllers',
  'hybrid layout': 'only hybrid hosts route controllers between v1 and cgroup2',
  'a controller on cgroup2': 'hybrid hosts may bind every controller to v1',
  'a cgroup2-only host': 'v1 and hybrid hosts (the development VM) have v1 hierarchies',
};

/**
 * `it`, when the host has `feature`; otherwise a skipped test (for features
 * some supported hosts lack by design) or a failing one naming the feature.
 */
export function itIf(feature: string, present: boolean): typeof it {
  if (present) return it;
  const why = MAY_BE_ABSENT[feature];
  if (why !== undefined) {
    return ((name: string, ...rest: unknown[]) =>
      it.skip(
        `${name} [skipped: this host lacks ${feature}: ${why}]`,
        ...(rest as []),
      )) as unknown as typeof it;
  }
  return ((name: string) =>
    it(name, () => {
      throw new Error(`this host lacks ${feature}, which this test needs`);
    })) as unknown as typeof it;
}

/** Whether the driver can use `ctrl` for a cgroup at the default root of this host. */
export function hostHas(ctrl: string): boolean {
  if (host.layout === 'v2') return host.v2Controllers.has(ctrl);
  return host.v1Controllers.has(ctrl);
}

/** `it` for a test that needs these controllers at the default root, named as this host's layout has them. */
export function itWith(...ctrls: string[]): typeof it {
  const missing = ctrls.filter((c) => !hostHas(c));
  const where = host.layout === 'v2' ? 'cgroup2' : 'v1';
  return itIf(
    `the ${where} ${missing.join(', ')} controller${missing.length > 1 ? 's' : ''}`,
    missing.length === 0,
  );
}

/** `it` for a test of v1 files: skipped on v2-only hosts, failing when a v1 host lacks one of `ctrls`. */
export function itV1(...ctrls: string[]): typeof it {
  if (host.v1Controllers.size === 0) return itIf('cgroup v1 controllers', false);
  const missing = ctrls.filter((c) => !host.v1Controllers.has(c));
  return itIf(`the v1 ${missing.join(', ')} controller`, missing.length === 0);
}

/** The limit file of `ctrl` (memory, pids) in this cgroup, wherever the layout keeps it. */
export function limitOf(cg: Cgroup, ctrl: 'memory' | 'pids'): string {
  const v1 = cg.paths[ctrl];
  const file = v1 !== undefined ? (ctrl === 'memory' ? 'memory.limit_in_bytes' : 'pids.max') : `${ctrl}.max`;
  return readFileSync(`${v1 ?? cg.paths['unified']}/${file}`, 'utf8').trim();
}
