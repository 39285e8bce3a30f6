import { readFileSync } from 'node:fs';

/** /proc/self/cgroup: controller (or `unified` for the `0::` line) to this process's cgroup path. */
export function parseProcCgroup(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const ctrls = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (ctrls === '') out['unified'] = path;
    else for (const c of ctrls.split(',')) out[c] = path;
  }
  return out;
}

export async function ownCgroups(pid: number | 'self' = 'self'): Promise<Record<string, string>> {
  return parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
}
