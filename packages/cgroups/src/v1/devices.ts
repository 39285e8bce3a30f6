import { readCgroupFile, writeCgroupFile } from '../fsutil.js';
import { emptyPlan, type Plan } from '../plan.js';
import type { LinuxDeviceCgroup } from '../types.js';

/** `c 1:3 rwm`, with `*` for a wildcard number, as devices.allow/deny expect. */
export function deviceRuleLine(rule: LinuxDeviceCgroup): string {
  const type = rule.type ?? 'a';
  if (type === 'a' && (rule.major ?? -1) === -1 && (rule.minor ?? -1) === -1) return 'a';
  const num = (n: number | undefined) => (n === undefined || n === -1 ? '*' : String(n));
  return `${type} ${num(rule.major)}:${num(rule.minor)} ${rule.access || 'rwm'}`;
}

/**
 * Rules are written in order, the kernel's own model: `a` to devices.deny
 * switches to default-deny and clears exceptions, later rules add or remove
 * exceptions.
 */
export function planDevicesV1(rules: LinuxDeviceCgroup[] | undefined): Plan {
  const plan = emptyPlan();
  (rules ?? []).forEach((rule, i) => {
    plan.writes.push({
      controller: 'devices',
      file: rule.allow ? 'devices.allow' : 'devices.deny',
      value: deviceRuleLine(rule),
      field: `linux.resources.devices[${i}]`,
    });
  });
  return plan;
}

export async function snapshotDevicesV1(dir: string): Promise<string[]> {
  return (await readCgroupFile(dir, 'devices.list'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** Rebuilds a devices.list snapshot: reset to deny-all, then re-allow each entry. */
export async function restoreDevicesV1(dir: string, list: string[]): Promise<void> {
  if (list.length === 1 && list[0] === 'a *:* rwm') {
    await writeCgroupFile(dir, 'devices.allow', 'a');
    return;
  }
  await writeCgroupFile(dir, 'devices.deny', 'a');
  for (const line of list) await writeCgroupFile(dir, 'devices.allow', line);
}
