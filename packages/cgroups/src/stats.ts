export interface MemoryEntry {
  usage: number;
  max: number;
  limit: number;
  failcnt: number;
}

export interface IoEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

export interface CgroupStats {
  cpu: {
    usage: {
      /** nanoseconds */
      total: number;
      kernel: number;
      user: number;
      perCpu: number[];
      perCpuKernel: number[];
      perCpuUser: number[];
    };
    throttling: { periods: number; throttledPeriods: number; throttledTime: number };
  };
  memory: {
    cache: number;
    usage: MemoryEntry;
    swap: MemoryEntry;
    kernel: MemoryEntry;
    kernelTCP: MemoryEntry;
    raw: Record<string, number>;
    /** v2 memory.events; on v1 `oomKill` comes from memory.oom_control and `oom` counts the same kills */
    events: { low: number; high: number; max: number; oom: number; oomKill: number };
  };
  pids: { current: number /** 0 when unlimited, like runc */; limit: number };
  io: { serviceBytes: IoEntry[]; serviced: IoEntry[] };
  hugetlb: Record<string, { usage: number; max: number; failcnt: number }>;
}

export function emptyMemoryEntry(): MemoryEntry {
  return { usage: 0, max: 0, limit: 0, failcnt: 0 };
}

export function emptyStats(): CgroupStats {
  return {
    cpu: {
      usage: { total: 0, kernel: 0, user: 0, perCpu: [], perCpuKernel: [], perCpuUser: [] },
      throttling: { periods: 0, throttledPeriods: 0, throttledTime: 0 },
    },
    memory: {
      cache: 0,
      usage: emptyMemoryEntry(),
      swap: emptyMemoryEntry(),
      kernel: emptyMemoryEntry(),
      kernelTCP: emptyMemoryEntry(),
      raw: {},
      events: { low: 0, high: 0, max: 0, oom: 0, oomKill: 0 },
    },
    pids: { current: 0, limit: 0 },
    io: { serviceBytes: [], serviced: [] },
    hugetlb: {},
  };
}

function omitZero<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === 0 || v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

function memoryEntry(e: MemoryEntry): Record<string, number> {
  // runc: limit and failcnt always present, usage and max omitted when zero
  return { limit: e.limit, ...omitZero({ usage: e.usage, max: e.max }), failcnt: e.failcnt };
}

function blkio(entries: IoEntry[]) {
  return entries.map((e) => omitZero({ major: e.major, minor: e.minor, op: e.op, value: e.value }));
}

/**
 * The `data` object of `runc events --stats` (runc types.Stats), with runc's
 * `omitempty` rules, so tools that parse runc's output parse ours.
 */
export function toRuncStats(stats: CgroupStats): Record<string, unknown> {
  const { cpu, memory, pids, io, hugetlb } = stats;
  const runcBlkio: Record<string, unknown> = {};
  if (io.serviceBytes.length > 0) runcBlkio['ioServiceBytesRecursive'] = blkio(io.serviceBytes);
  if (io.serviced.length > 0) runcBlkio['ioServicedRecursive'] = blkio(io.serviced);
  const runcHugetlb: Record<string, unknown> = {};
  for (const [size, h] of Object.entries(hugetlb)) {
    runcHugetlb[size] = { ...omitZero({ usage: h.usage, max: h.max }), failcnt: h.failcnt };
  }
  const raw = Object.keys(memory.raw).length > 0 ? { raw: memory.raw } : {};
  return {
    cpu: {
      usage: {
        ...omitZero({
          total: cpu.usage.total,
          percpu: cpu.usage.perCpu,
          percpu_kernel: cpu.usage.perCpuKernel,
          percpu_user: cpu.usage.perCpuUser,
        }),
        kernel: cpu.usage.kernel,
        user: cpu.usage.user,
      },
      throttling: omitZero({
        periods: cpu.throttling.periods,
        throttledPeriods: cpu.throttling.throttledPeriods,
        throttledTime: cpu.throttling.throttledTime,
      }),
    },
    cpuset: {
      cpu_exclusive: 0,
      mem_hardwall: 0,
      mem_exclusive: 0,
      memory_migrate: 0,
      memory_spread_page: 0,
      memory_spread_slab: 0,
      memory_pressure: 0,
      sched_load_balance: 0,
      sched_relax_domain_level: 0,
    },
    memory: {
      ...omitZero({ cache: memory.cache }),
      usage: memoryEntry(memory.usage),
      swap: memoryEntry(memory.swap),
      kernel: memoryEntry(memory.kernel),
      kernelTCP: memoryEntry(memory.kernelTCP),
      ...raw,
      event_count: omitZero({
        low: memory.events.low,
        high: memory.events.high,
        max: memory.events.max,
        oom: memory.events.oom,
        oom_kill: memory.events.oomKill,
      }),
    },
    pids: omitZero({ current: pids.current, limit: pids.limit }),
    blkio: runcBlkio,
    hugetlb: runcHugetlb,
    intel_rdt: {},
    network_interfaces: null,
  };
}
