/**
 * `linux.intelRdt`: a container's Intel RDT class of service, in the resctrl
 * filesystem (config-linux.md "IntelRdt"; the kernel's
 * Documentation/arch/x86/resctrl.rst).
 *
 * The resctrl mount is the host's: every path here is built from the mount
 * point found in /proc/self/mountinfo and one validated name, never from a
 * path in config.json. Planning is pure (`planIntelRdt`); `applyIntelRdt`
 * makes or checks the group and moves the container's process into it;
 * `removeIntelRdt` undoes only what `applyIntelRdt` made.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LinuxIntelRdt } from '@berth/spec';
import { BerthError } from '@berth/sys';

/** What `delete` needs: the group, and whether it is the container's to remove. */
export interface RdtRecord {
  /** the group's directory, below the resctrl mount */
  dir: string;
  /** berth made the group for this container: delete removes it once no task is left in it */
  created: boolean;
}

export interface RdtPlan {
  /** the group's name (closID, or the container id) */
  name: string;
  /** the group must already exist (closID with no schema: a pre-configured class) */
  mustExist: boolean;
  /** lines for the `schemata` file, in the order they are written (empty: none written) */
  writes: string[];
  /** lines an existing closID group's `schemata` must already hold */
  compare: string[];
  /** monitoring features the group must offer (from enableCMT / enableMBM) */
  monitoring: Array<'llc_occupancy' | 'mbm_total_bytes'>;
}

function invalid(message: string): BerthError {
  return new BerthError(message, { code: 'EINVALID' });
}

/** Directory names resctrl reserves at its root, and names that are not one path component. */
const RESERVED = new Set(['', '.', '..', 'info', 'mon_groups', 'mon_data']);

function schemaLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/** The rules of config-linux.md, without touching the host. */
export function planIntelRdt(rdt: LinuxIntelRdt, containerId: string): RdtPlan {
  const name = rdt.closID ?? containerId;
  if (RESERVED.has(name) || name.includes('/') || name.includes('\0') || name.includes('\n')) {
    throw invalid(
      `linux.intelRdt.closID: ${JSON.stringify(name)} is not a resctrl group name (one path component, not info, mon_groups or mon_data)`,
    );
  }
  if (
    rdt.memBwSchema !== undefined &&
    (!rdt.memBwSchema.startsWith('MB:') || rdt.memBwSchema.includes('\n'))
  ) {
    throw invalid('linux.intelRdt.memBwSchema: must start with "MB:" and be a single line');
  }
  // l3CacheSchema's own MB: lines give way to memBwSchema's
  const l3 = rdt.l3CacheSchema === undefined ? [] : schemaLines(rdt.l3CacheSchema);
  const combined = [
    ...(rdt.memBwSchema !== undefined ? l3.filter((l) => !l.startsWith('MB:')) : l3),
    ...(rdt.memBwSchema !== undefined ? [rdt.memBwSchema.trim()] : []),
  ];
  const schemata =
    rdt.schemata === undefined
      ? []
      : Array.isArray(rdt.schemata)
        ? rdt.schemata.flatMap(schemaLines)
        : schemaLines(rdt.schemata);
  const writes = [
    ...(combined.length ? [combined.join('\n')] : []),
    ...(schemata.length ? [schemata.join('\n')] : []),
  ];
  const monitoring: RdtPlan['monitoring'] = [];
  if (rdt.enableCMT || rdt.enableMonitoring) monitoring.push('llc_occupancy');
  if (rdt.enableMBM || rdt.enableMonitoring) monitoring.push('mbm_total_bytes');
  return {
    name,
    mustExist: rdt.closID !== undefined && writes.length === 0,
    writes,
    compare: rdt.closID !== undefined ? [...combined, ...schemata] : [],
    monitoring,
  };
}

/** The resctrl mount point in this mount namespace, from /proc/self/mountinfo. */
export function resctrlMount(mountinfo?: string): string | undefined {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/mountinfo', 'latin1');
    } catch {
      return undefined;
    }
  }
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0 || line.slice(sep + 3).split(' ')[0] !== 'resctrl') continue;
    // mount point: the fifth field, with mountinfo's octal escapes
    const point = line.slice(0, sep).split(' ')[4];
    if (point)
      return point.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  }
  return undefined;
}

/**
 * A schemata file as resctrl prints it, one resource per line
 * (`L3:0=7f0;1=1f`): each line the config asks for must be there, compared
 * domain by domain, since the kernel prints every domain and pads masks.
 */
export function schemataHolds(current: string, wanted: string[]): string | undefined {
  const have = new Map<string, Map<string, string>>();
  for (const line of schemaLines(current)) {
    const [res, doms] = line.split(':', 2) as [string, string | undefined];
    const m = new Map<string, string>();
    for (const d of (doms ?? '').split(';')) {
      const [id, v] = d.split('=');
      if (id !== undefined && v !== undefined) m.set(id.trim(), v.trim());
    }
    have.set(res.trim(), m);
  }
  for (const line of wanted) {
    const [res, doms] = line.split(':', 2) as [string, string | undefined];
    const m = have.get(res.trim());
    for (const d of (doms ?? '').split(';')) {
      const [id, v] = d.split('=');
      if (id === undefined || v === undefined) continue;
      const got = m?.get(id.trim());
      const same =
        got !== undefined &&
        (got === v.trim() ||
          (/^[0-9a-f]+$/i.test(got) &&
            /^[0-9a-f]+$/i.test(v.trim()) &&
            BigInt(`0x${got}`) === BigInt(`0x${v.trim()}`)));
      if (!same) return `${res.trim()}:${id.trim()}=${v.trim()} (the group has ${got ?? 'nothing'} there)`;
    }
  }
  return undefined;
}

function fsError(e: unknown, what: string): BerthError {
  const err = e as NodeJS.ErrnoException;
  return new BerthError(`linux.intelRdt: ${what}: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '), {
    code: 'EINTELRDT',
    cause: e,
  });
}

/**
 * Makes (or checks) the container's resctrl group and moves `pid` into it.
 * `root` is the resctrl mount (found in mountinfo when not given).
 */
export function applyIntelRdt(
  rdt: LinuxIntelRdt,
  containerId: string,
  pid: number,
  root = resctrlMount(),
): RdtRecord {
  if (!root) throw invalid('linux.intelRdt: Intel RDT (the resctrl filesystem) is not mounted on this host');
  const plan = planIntelRdt(rdt, containerId);
  for (const feature of plan.monitoring) {
    let features = '';
    try {
      features = readFileSync(join(root, 'info', 'L3_MON', 'mon_features'), 'latin1');
    } catch {
      // no monitoring at all
    }
    if (!features.split('\n').includes(feature)) {
      const field = feature === 'llc_occupancy' ? 'enableCMT' : 'enableMBM';
      throw invalid(`linux.intelRdt.${field}: this host's resctrl does not offer ${feature} monitoring`);
    }
  }
  const dir = join(root, plan.name);
  let created = false;
  try {
    mkdirSync(dir);
    created = true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fsError(e, `cannot create ${dir}`);
    if (rdt.closID === undefined)
      throw invalid(`linux.intelRdt: the resctrl group ${dir} already exists (named after this container)`);
  }
  if (plan.mustExist && created) {
    rmdirSync(dir);
    throw invalid(
      `linux.intelRdt.closID: no pre-configured resctrl group ${JSON.stringify(plan.name)} in ${root}`,
    );
  }
  try {
    if (created) {
      for (const text of plan.writes) writeFileSync(join(dir, 'schemata'), `${text}\n`);
    } else if (plan.compare.length) {
      const wrong = schemataHolds(readFileSync(join(dir, 'schemata'), 'latin1'), plan.compare);
      if (wrong)
        throw invalid(
          `linux.intelRdt: the existing group ${JSON.stringify(plan.name)} does not match: ${wrong}`,
        );
    }
    writeFileSync(join(dir, 'tasks'), String(pid));
  } catch (e) {
    if (created) rmdirIfEmpty(dir);
    throw e instanceof BerthError ? e : fsError(e, `cannot set up ${dir}`);
  }
  return { dir, created };
}

/** Moves a later process (`berth exec`) into the container's group. */
export function joinIntelRdt(record: RdtRecord, pid: number): void {
  try {
    writeFileSync(join(record.dir, 'tasks'), String(pid));
  } catch (e) {
    throw fsError(e, `cannot add process ${pid} to ${record.dir}`);
  }
}

function rmdirIfEmpty(dir: string): boolean {
  try {
    if (readFileSync(join(dir, 'tasks'), 'latin1').trim() !== '') return false;
    rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/**
 * Removes a group berth made, once no task is left in it (removing a group
 * with tasks would move another container sharing the closID to the default
 * class). A group that existed before is never removed.
 */
export function removeIntelRdt(record: RdtRecord | undefined): void {
  if (!record?.created) return;
  rmdirIfEmpty(record.dir);
}
