import { memorySwapToV2, v2Limit } from '../convert.js';
import { parseKeyValues, parseUint, readOptional } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { CgroupStats } from '../stats.js';
import type { LinuxMemory } from '../types.js';

const F = 'linux.resources.memory';
const UINT64_MAX = 2 ** 64;

/**
 * v2 has no kernel-memory limits (accounted with memory.max) and no per-cgroup
 * swappiness or OOM-killer switch: the first is ignored like runc does, the
 * others are refused rather than silently dropped.
 */
export function planMemoryV2(mem: LinuxMemory | undefined): Plan {
  const plan = emptyPlan();
  if (!mem) return plan;
  const swap = memorySwapToV2(mem.swap, mem.limit);
  if (typeof swap === 'string') {
    plan.problems.push({ path: `${F}.swap`, message: swap });
  } else if (swap !== 0) {
    // swap first: lowering memory.max below usage is slower to settle than a swap change
    plan.writes.push({
      controller: 'memory',
      file: 'memory.swap.max',
      value: v2Limit(swap),
      field: `${F}.swap`,
    });
  }
  if (mem.limit !== undefined && mem.limit !== 0) {
    plan.writes.push({
      controller: 'memory',
      file: 'memory.max',
      value: v2Limit(mem.limit),
      field: `${F}.limit`,
    });
  }
  if (mem.reservation !== undefined && mem.reservation !== 0) {
    plan.writes.push({
      controller: 'memory',
      file: 'memory.low',
      value: v2Limit(mem.reservation),
      field: `${F}.reservation`,
    });
  }
  if (mem.swappiness !== undefined) {
    plan.problems.push({ path: `${F}.swappiness`, message: 'is not supported on cgroup v2' });
  }
  if (mem.disableOOMKiller) {
    plan.problems.push({ path: `${F}.disableOOMKiller`, message: 'is not supported on cgroup v2' });
  }
  return plan;
}

export async function readMemoryStatsV2(dir: string, out: CgroupStats): Promise<void> {
  const [current, peak, max, swapCurrent, swapPeak, swapMax, stat, events] = await Promise.all([
    readOptional(dir, 'memory.current'),
    readOptional(dir, 'memory.peak'),
    readOptional(dir, 'memory.max'),
    readOptional(dir, 'memory.swap.current'),
    readOptional(dir, 'memory.swap.peak'),
    readOptional(dir, 'memory.swap.max'),
    readOptional(dir, 'memory.stat'),
    readOptional(dir, 'memory.events'),
  ]);
  const raw = parseKeyValues(stat);
  const ev = parseKeyValues(events);
  const usage = parseUint(current);
  const swapUsage = parseUint(swapCurrent);
  out.memory = {
    ...out.memory,
    cache: raw['file'] ?? 0,
    usage: { usage, max: parseUint(peak), limit: parseUint(max, UINT64_MAX), failcnt: ev['max'] ?? 0 },
    // runc reports v2 swap as memory+swap to keep the v1 meaning
    swap: {
      usage: swapUsage + usage,
      max: parseUint(swapPeak),
      limit: parseUint(swapMax, UINT64_MAX),
      failcnt: 0,
    },
    raw,
    events: {
      low: ev['low'] ?? 0,
      high: ev['high'] ?? 0,
      max: ev['max'] ?? 0,
      oom: ev['oom'] ?? 0,
      oomKill: ev['oom_kill'] ?? 0,
    },
  };
}
