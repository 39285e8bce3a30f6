import { parseKeyValues, parseUint, readOptional } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { CgroupStats } from '../stats.js';
import type { LinuxHugepageLimit } from '../types.js';

export function planHugetlbV2(limits: LinuxHugepageLimit[] | undefined): Plan {
  const plan = emptyPlan();
  (limits ?? []).forEach((h, i) => {
    plan.writes.push({
      controller: 'hugetlb',
      file: `hugetlb.${h.pageSize}.max`,
      value: String(h.limit),
      field: `linux.resources.hugepageLimits[${i}]`,
    });
  });
  return plan;
}

export async function readHugetlbStatsV2(dir: string, sizes: string[], out: CgroupStats): Promise<void> {
  for (const size of sizes) {
    const [current, events] = await Promise.all([
      readOptional(dir, `hugetlb.${size}.current`),
      readOptional(dir, `hugetlb.${size}.events`),
    ]);
    if (current === undefined) continue;
    // v2 keeps no high-water mark; runc reports usage as max too
    const usage = parseUint(current);
    out.hugetlb[size] = { usage, max: usage, failcnt: parseKeyValues(events)['max'] ?? 0 };
  }
}
