import { emptyPlan, type Plan } from '../plan.js';

/**
 * Raw v2 keys are written last so they override the structured fields, as in
 * runc. Key syntax was checked by validateResources; whether the file exists
 * is checked against the real cgroup before any write.
 */
export function planUnified(unified: Record<string, string> | undefined): Plan {
  const plan = emptyPlan();
  for (const [key, value] of Object.entries(unified ?? {})) {
    const controller = key.slice(0, key.indexOf('.'));
    plan.writes.push({
      controller,
      file: key,
      value,
      field: `linux.resources.unified[${JSON.stringify(key)}]`,
    });
  }
  return plan;
}
