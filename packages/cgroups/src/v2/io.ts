import { blkioWeightToIoWeight } from '../convert.js';
import { readOptional } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { CgroupStats, IoEntry } from '../stats.js';
import type { LinuxBlockIO } from '../types.js';

const F = 'linux.resources.blockIO';

const THROTTLES = [
  ['throttleReadBpsDevice', 'rbps'],
  ['throttleWriteBpsDevice', 'wbps'],
  ['throttleReadIOPSDevice', 'riops'],
  ['throttleWriteIOPSDevice', 'wiops'],
] as const;

/**
 * With BFQ the v1 weight is written unchanged to io.bfq.weight (same range);
 * otherwise converted to io.weight's 1..10000, as runc does.
 */
export function planIoV2(bio: LinuxBlockIO | undefined): Plan {
  const plan = emptyPlan();
  if (!bio) return plan;
  if (bio.weight !== undefined && bio.weight !== 0) {
    plan.writes.push({
      controller: 'io',
      file: 'io.bfq.weight',
      value: String(bio.weight),
      field: `${F}.weight`,
      alternatives: [{ file: 'io.weight', value: `default ${blkioWeightToIoWeight(bio.weight)}` }],
    });
  }
  (bio.weightDevice ?? []).forEach((d, i) => {
    if (d.weight === undefined || d.weight === 0) return;
    const key = `${d.major}:${d.minor}`;
    plan.writes.push({
      controller: 'io',
      file: 'io.bfq.weight',
      value: `${key} ${d.weight}`,
      key,
      reset: `${key} default`,
      field: `${F}.weightDevice[${i}].weight`,
      alternatives: [{ file: 'io.weight', value: `${key} ${blkioWeightToIoWeight(d.weight)}` }],
    });
  });
  for (const [field, knob] of THROTTLES) {
    (bio[field] ?? []).forEach((d, i) => {
      const key = `${d.major}:${d.minor}`;
      // rate 0 removes the limit in v1; `max` is the v2 spelling of that
      const value = `${key} ${knob}=${d.rate === 0 ? 'max' : d.rate}`;
      plan.writes.push({
        controller: 'io',
        file: 'io.max',
        value,
        key,
        reset: `${key} rbps=max wbps=max riops=max wiops=max`,
        field: `${F}.${field}[${i}]`,
      });
    });
  }
  return plan;
}

/** io.stat `8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...` in runc's Read/Write entry shape. */
export function parseIoStat(text: string | undefined): { serviceBytes: IoEntry[]; serviced: IoEntry[] } {
  const serviceBytes: IoEntry[] = [];
  const serviced: IoEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...kvs] = line.trim().split(/\s+/);
    if (!dev?.includes(':')) continue;
    const [major = 0, minor = 0] = dev.split(':').map(Number);
    const kv = Object.fromEntries(kvs.map((p) => p.split('=') as [string, string]));
    const push = (list: IoEntry[], key: string, op: string) => {
      if (kv[key] !== undefined) list.push({ major, minor, op, value: Number(kv[key]) });
    };
    push(serviceBytes, 'rbytes', 'Read');
    push(serviceBytes, 'wbytes', 'Write');
    push(serviced, 'rios', 'Read');
    push(serviced, 'wios', 'Write');
  }
  return { serviceBytes, serviced };
}

export async function readIoStatsV2(dir: string, out: CgroupStats): Promise<void> {
  out.io = parseIoStat(await readOptional(dir, 'io.stat'));
}
