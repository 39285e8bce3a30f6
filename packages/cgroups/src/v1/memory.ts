import { parseKeyValues, parseUint, readOptional } from '../fsutil.js';
import { emptyPlan, type Plan, type Write } from '../plan.js';
import type { CgroupStats, MemoryEntry } from '../stats.js';
import type { LinuxMemory } from '../types.js';

const F = 'linux.resources.memory';

/**
 * `memory.limit_in_bytes` must stay <= `memory.memsw.limit_in_bytes`, so the
 * order of the two writes depends on the current limit (as in runc): growing
 * writes memsw first, shrinking writes the limit first.
 */
export function planMemoryV1(mem: LinuxMemory | undefined, currentLimit: number | undefined): Plan {
  const plan = emptyPlan();
  if (!mem) return plan;
  const w = (file: string, value: number | string, field: string, extra: Partial<Write> = {}) =>
    plan.writes.push({ controller: 'memory', file, value: String(value), field: `${F}.${field}`, ...extra });

  const limit = mem.limit ?? 0;
  let swap = mem.swap ?? 0;
  if (limit === -1 && swap === 0) swap = -1;
  if (limit !== 0 && swap !== 0) {
    if (swap === -1 || (currentLimit ?? Number.MAX_SAFE_INTEGER) < swap) {
      w('memory.memsw.limit_in_bytes', swap, 'swap');
      w('memory.limit_in_bytes', limit, 'limit');
    } else {
      w('memory.limit_in_bytes', limit, 'limit');
      w('memory.memsw.limit_in_bytes', swap, 'swap');
    }
  } else {
    if (limit !== 0) w('memory.limit_in_bytes', limit, 'limit');
    if (swap !== 0) w('memory.memsw.limit_in_bytes', swap, 'swap');
  }
  if (mem.reservation !== undefined && mem.reservation !== 0) {
    w('memory.soft_limit_in_bytes', mem.reservation, 'reservation');
  }
  // kernel memory limits are deprecated and gone from newer kernels: best effort
  if (mem.kernel !== undefined && mem.kernel !== 0) {
    w('memory.kmem.limit_in_bytes', mem.kernel, 'kernel', { optional: true });
  }
  if (mem.kernelTCP !== undefined && mem.kernelTCP !== 0) {
    w('memory.kmem.tcp.limit_in_bytes', mem.kernelTCP, 'kernelTCP', { optional: true });
  }
  if (mem.swappiness !== undefined) w('memory.swappiness', mem.swappiness, 'swappiness');
  if (mem.useHierarchy !== undefined) w('memory.use_hierarchy', mem.useHierarchy ? 1 : 0, 'useHierarchy');
  if (mem.disableOOMKiller) w('memory.oom_control', 1, 'disableOOMKiller');
  return plan;
}

async function entry(dir: string, prefix: string): Promise<MemoryEntry> {
  const [usage, max, limit, failcnt] = await Promise.all([
    readOptional(dir, `${prefix}.usage_in_bytes`),
    readOptional(dir, `${prefix}.max_usage_in_bytes`),
    readOptional(dir, `${prefix}.limit_in_bytes`),
    readOptional(dir, `${prefix}.failcnt`),
  ]);
  return {
    usage: parseUint(usage),
    max: parseUint(max),
    limit: parseUint(limit),
    failcnt: parseUint(failcnt),
  };
}

export async function readMemoryStatsV1(dir: string, out: CgroupStats): Promise<void> {
  const [usage, swap, kernel, kernelTCP, stat, oom] = await Promise.all([
    entry(dir, 'memory'),
    entry(dir, 'memory.memsw'),
    entry(dir, 'memory.kmem'),
    entry(dir, 'memory.kmem.tcp'),
    readOptional(dir, 'memory.stat'),
    readOptional(dir, 'memory.oom_control'),
  ]);
  const raw = parseKeyValues(stat);
  const oomControl = parseKeyValues(oom);
  out.memory = {
    ...out.memory,
    cache: raw['total_cache'] ?? raw['cache'] ?? 0,
    usage,
    swap,
    kernel,
    kernelTCP,
    raw,
    events: {
      ...out.memory.events,
      oom: oomControl['oom_kill'] ?? 0,
      oomKill: oomControl['oom_kill'] ?? 0,
    },
  };
}
