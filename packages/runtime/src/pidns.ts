import { readdir, readlink } from 'node:fs/promises';

/**
 * Every process in the pid namespace of `pid` (itself first), found by comparing
 * /proc/N/ns/pid links. With a private pid namespace this is exactly the
 * container's processes, with or without a cgroup to ask.
 */
export async function processesInPidNamespace(pid: number): Promise<number[]> {
  let ns: string;
  try {
    ns = await readlink(`/proc/${pid}/ns/pid`);
  } catch {
    return [];
  }
  const self = await readlink('/proc/self/ns/pid');
  if (ns === self) return [pid]; // shares our namespace: only the container's own process is its
  const out = [pid];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === pid) continue;
    try {
      if ((await readlink(`/proc/${name}/ns/pid`)) === ns) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
