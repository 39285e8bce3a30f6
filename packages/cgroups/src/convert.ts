/**
 * The v1 -> v2 conversions runc and crun apply, so the same config.json gives
 * the same kernel values whichever runtime runs it.
 */

/**
 * cpu.shares [2, 262144] -> cpu.weight [1, 10000]. This is the quadratic in
 * log space runc >= 1.3 and crun >= 1.23 use: it maps the v1 default 1024 to
 * the v2 default 100 (the older linear formula mapped 1024 to 39).
 */
export function cpuSharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  const l = Math.log2(shares);
  const exponent = (l * l + 125 * l) / 612 - 7 / 34;
  return Math.ceil(10 ** exponent);
}

/** The pre-1.3 runc formula, kept for callers that must match old runc numbers. */
export function cpuSharesToWeightLinear(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** blkio.weight [10, 1000] -> io.weight [1, 10000] (runc ConvertBlkIOToIOWeightValue). */
export function blkioWeightToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * OCI `memory.swap` is memory+swap (v1 memsw); v2 memory.swap.max is swap
 * alone. Returns -1 for "max", 0 for "leave unset", or an error message.
 */
export function memorySwapToV2(swap: number | undefined, limit: number | undefined): number | string {
  const s = swap ?? 0;
  const m = limit ?? 0;
  // unlimited memory with no swap request means "both unlimited", as with v1
  if (m === -1 && s === 0) return -1;
  if (s === -1 || s === 0) return s;
  if (m === 0 || m === -1) return 'cannot set a swap limit without a memory limit';
  if (s < m) return `must be >= memory.limit (${m}): it is memory+swap, not swap alone`;
  return s - m;
}

/** `cpu.max` content from OCI quota/period (runc semantics: quota <= 0 means max). */
export function cpuMaxValue(quota: number | undefined, period: number | undefined): string | undefined {
  if ((quota ?? 0) === 0 && (period ?? 0) === 0) return undefined;
  let value = quota !== undefined && quota > 0 ? String(quota) : 'max';
  if (period !== undefined && period !== 0) value += ` ${period}`;
  return value;
}

/** `-1` means unlimited in the OCI spec; the kernel wants `max` on v2 and `-1` on v1. */
export function v2Limit(n: number): string {
  return n === -1 ? 'max' : String(n);
}
