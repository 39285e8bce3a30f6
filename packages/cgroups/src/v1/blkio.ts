import { readOptional } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { CgroupStats, IoEntry } from '../stats.js';
import type { LinuxBlockIO } from '../types.js';

const F = 'linux.resources.blockIO';

const THROTTLES = [
  ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device'],
  ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device'],
  ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device'],
  ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device'],
] as const;

/** CFQ files are gone from modern kernels; BFQ exposes the same knob as blkio.bfq.*. */
export function planBlkioV1(bio: LinuxBlockIO | undefined): Plan {
  const plan = emptyPlan();
  if (!bio) return plan;
  if (bio.weight !== undefined && bio.weight !== 0) {
    plan.writes.push({
      controller: 'blkio',
      file: 'blkio.weight',
      value: String(bio.weight),
      field: `${F}.weight`,
      alternatives: [{ file: 'blkio.bfq.weight', value: String(bio.weight) }],
    });
  }
  if (bio.leafWeight !== undefined && bio.leafWeight !== 0) {
    plan.writes.push({
      controller: 'blkio',
      file: 'blkio.leaf_weight',
      value: String(bio.leafWeight),
      field: `${F}.leafWeight`,
    });
  }
  (bio.weightDevice ?? []).forEach((d, i) => {
    const key = `${d.major}:${d.minor}`;
    if (d.weight !== undefined && d.weight !== 0) {
      const value = `${key} ${d.weight}`;
      plan.writes.push({
        controller: 'blkio',
        file: 'blkio.weight_device',
        value,
        key,
        reset: `${key} 0`,
        field: `${F}.weightDevice[${i}].weight`,
        alternatives: [{ file: 'blkio.bfq.weight_device', value }],
      });
    }
    if (d.leafWeight !== undefined && d.leafWeight !== 0) {
      plan.writes.push({
        controller: 'blkio',
        file: 'blkio.leaf_weight_device',
        value: `${key} ${d.leafWeight}`,
        key,
        reset: `${key} 0`,
        field: `${F}.weightDevice[${i}].leafWeight`,
      });
    }
  });
  for (const [field, file] of THROTTLES) {
    (bio[field] ?? []).forEach((d, i) => {
      const key = `${d.major}:${d.minor}`;
      plan.writes.push({
        controller: 'blkio',
        file,
        value: `${key} ${d.rate}`,
        key,
        reset: `${key} 0`,
        field: `${F}.${field}[${i}]`,
      });
    });
  }
  return plan;
}

/** `8:0 Read 4096` lines; the `Total` summary line carries no device and is skipped. */
export function parseBlkioRecursive(text: string | undefined): IoEntry[] {
  const out: IoEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, op, value] = line.trim().split(/\s+/);
    if (!dev || !op || value === undefined || !dev.includes(':')) continue;
    const [major, minor] = dev.split(':').map(Number);
    out.push({ major: major ?? 0, minor: minor ?? 0, op, value: Number(value) });
  }
  return out;
}

export async function readBlkioStatsV1(dir: string, out: CgroupStats): Promise<void> {
  const [bytes, ios] = await Promise.all([
    readOptional(dir, 'blkio.throttle.io_service_bytes_recursive'),
    readOptional(dir, 'blkio.throttle.io_serviced_recursive'),
  ]);
  out.io = { serviceBytes: parseBlkioRecursive(bytes), serviced: parseBlkioRecursive(ios) };
}
