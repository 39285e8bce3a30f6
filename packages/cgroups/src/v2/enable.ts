import { dirname, relative } from 'node:path';
import type { CgroupProblem } from '../errors.js';
import { readCgroupFile, readOptional, writeCgroupFile } from '../fsutil.js';

const words = (s: string | undefined) => (s ?? '').trim().split(/\s+/).filter(Boolean);

/**
 * A v2 controller's files appear in a cgroup only once every ancestor lists it
 * in cgroup.subtree_control. Enables just the controllers asked for (not all,
 * as runc does) to disturb the host's tree as little as possible.
 */
export async function enableControllersV2(
  mount: string,
  dir: string,
  wanted: Map<string, string>,
): Promise<CgroupProblem[]> {
  const problems: CgroupProblem[] = [];
  const have = new Set(words(await readOptional(dir, 'cgroup.controllers')));
  const available = new Set(words(await readOptional(mount, 'cgroup.controllers')));
  const missing: string[] = [];
  for (const [ctrl, field] of wanted) {
    if (ctrl === 'cgroup') continue;
    // the root's list decides: a controller the root does not offer is not used even where an
    // ancestor's subtree_control still makes its files appear
    if (!available.has(ctrl)) {
      problems.push({
        path: field,
        message: `controller ${ctrl} is not available on this host (cgroup v2 at ${mount})`,
      });
    } else if (!have.has(ctrl)) {
      missing.push(ctrl);
    }
  }
  if (problems.length > 0 || missing.length === 0) return problems;
  const chain: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    chain.unshift(d);
    if (d === mount || relative(mount, d).startsWith('..') || d === '/') break;
  }
  for (const level of chain) {
    const enabled = new Set(words(await readCgroupFile(level, 'cgroup.subtree_control')));
    const add = missing.filter((c) => !enabled.has(c));
    if (add.length > 0)
      await writeCgroupFile(level, 'cgroup.subtree_control', add.map((c) => `+${c}`).join(' '));
  }
  return problems;
}
