import { dirname, relative } from 'node:path';
import type { CgroupProblem } from '../errors.js';
import { readCgroupFile, readOptional, writeCgroupFile } from '../fsutil.js';

const words = (s: string | undefined) => (s ?? '').trim().split(/\s+/).filter(Boolean);

/**
 * A v2 controller's files appear in a cgroup only once every ancestor lists it
 * in cgroup.subtree_control. Enables the controllers asked for, and says which
 * the host does not have (see also enableAvailableV2, which creating a cgroup
 * does on a cgroup2-only host).
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
  for (const level of levelsAbove(mount, dir)) {
    const enabled = new Set(words(await readCgroupFile(level, 'cgroup.subtree_control')));
    const add = missing.filter((c) => !enabled.has(c));
    if (add.length > 0)
      await writeCgroupFile(level, 'cgroup.subtree_control', add.map((c) => `+${c}`).join(' '));
  }
  return problems;
}

/** The levels from `mount` down to the parent of `dir`, top first (none when `dir` is not under `mount`). */
function levelsAbove(mount: string, dir: string): string[] {
  if (relative(mount, dir).startsWith('..') || dir === mount) return [];
  const chain: string[] = [];
  for (let d = dirname(dir); ; d = dirname(d)) {
    chain.unshift(d);
    if (d === mount || d === '/') break;
  }
  return chain;
}

/**
 * Makes every controller each level above `dir` has available to it available to `dir` too, as
 * runc and crun do on a cgroup2-only host: a container without a memory limit still has
 * memory.current and memory.stat (what containerd, the kubelet and `berth events --stats`
 * read), and sees its controllers in its cgroup namespace. Best effort, one controller at a
 * time where the whole list is refused (a level with processes of its own cannot give domain
 * controllers to its children): what is asked for is checked by enableControllersV2.
 */
export async function enableAvailableV2(mount: string, dir: string): Promise<void> {
  for (const level of levelsAbove(mount, dir)) {
    const offered = words(await readOptional(level, 'cgroup.controllers'));
    const enabled = new Set(words(await readOptional(level, 'cgroup.subtree_control')));
    const add = offered.filter((c) => !enabled.has(c));
    if (add.length === 0) continue;
    try {
      await writeCgroupFile(level, 'cgroup.subtree_control', add.map((c) => `+${c}`).join(' '));
    } catch {
      for (const c of add) await writeCgroupFile(level, 'cgroup.subtree_control', `+${c}`).catch(() => {});
    }
  }
}
