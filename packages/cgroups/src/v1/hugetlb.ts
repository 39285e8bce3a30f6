import { parseUint, readOptional } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { CgroupStats } from '../stats.js';
import type { LinuxHugepageLimit } from '../types.js';

export function planHugetlbV1(limits: LinuxHugepageLimit[] | undefined): Plan {
  const plan = emptyPlan();
  (limits ?? []).forEach((h, i) => {
    plan.writes.push({
      controller: 'hugetlb',
      file: `hugetlb.${h.pageSize}.limit_in_bytes`,
      value: String(h.limit),
      field: `linux.resources.hugepageLimits[${i}]`,
    });
  });
  return plan;
}

export async function readHugetlbStatsV1(dir: string, sizes: string[], out: CgroupStats): Promise<void> {
  for (const size of sizes) {
    const [usage, max, failcnt] = await Promise.all([
      readOptional(dir, `hugetlb.${size}.usage_in_bytes`),
      readOptional(dir, `hugetlb.${size}.max_usage_in_bytes`),
      readOptional(dir, `hugetlb.${size}.failcnt`),
    ]);
    if (usage === undefined) continue;
    out.hugetlb[size] = { usage: parseUint(usage), max: parseUint(max), failcnt: parseUint(failcnt) };
  }
}
