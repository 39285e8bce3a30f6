import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Cgroup, LinuxDeviceCgroup, LinuxResources } from '@berth/cgroups';
import type { Spec } from '@berth/spec';
import { BerthError, inUserNamespace } from '@berth/sys';

/**
 * The device rules a container always gets after its own, as runc adds them:
 * mknod of anything, and the standard /dev nodes and terminals. Without these
 * the default config's "deny all" rule would leave no /dev/null.
 */
export const DEFAULT_DEVICE_RULES: readonly LinuxDeviceCgroup[] = [
  { allow: true, type: 'c', access: 'm' },
  { allow: true, type: 'b', access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' },
  { allow: true, type: 'c', major: 136, access: 'rwm' },
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' },
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' },
];

/**
 * The cgroupsPath a container without one gets: `/berth/ID`, or with the systemd driver a
 * scope in `slice` (system.slice; a user manager's user.slice, see @berth/cgroups' defaultSlice).
 */
export function defaultCgroupsPath(id: string, systemd: boolean, slice = 'system.slice'): string {
  return systemd ? `${slice}:berth:${id}` : `/berth/${id}`;
}

/**
 * linux.resources as applied: the config's device rules, then runc's defaults. A
 * `linux.devices` node gets no rule of its own (as in runc): making a node never grants
 * access to it, which is the config's `linux.resources.devices` to give (containerd and
 * podman add an allow rule for each device they pass), and a deny there holds.
 */
export function effectiveResources(spec: Spec): LinuxResources {
  const resources = (spec.linux?.resources ?? {}) as LinuxResources;
  return { ...resources, devices: [...(resources.devices ?? []), ...DEFAULT_DEVICE_RULES] };
}

/** Loads the cgroups package only when a command needs a cgroup. */
export async function cgroups(): Promise<typeof import('@berth/cgroups')> {
  return import('@berth/cgroups');
}

/**
 * The container's linux.resources checked, and where its cgroup will be (the layout and
 * one directory per hierarchy), before anything is made: what the plan needs, so that the
 * launcher can start while the cgroup is made (createCgroup).
 */
export async function locateCgroup(
  spec: Spec,
  cgroupsPath: string,
  systemd: boolean,
  /** told of each linux.resources field berth does not know (not an error: the runtime-spec's rule) */
  warn?: (message: string) => void,
): Promise<{ layout: Cgroup['layout']; paths: Record<string, string> }> {
  const cg = await cgroups();
  if (warn && spec.linux?.resources)
    for (const path of cg.unknownResourceFields(spec.linux.resources))
      warn(`${path}: not a field berth knows: ignored, as the runtime-spec asks (nothing applies it)`);
  const problems = cg.validateResources(effectiveResources(spec));
  if (problems.length) {
    throw new BerthError(problems.map((p) => `${p.path}: ${p.message}`).join('\n'), { code: 'EINVALIDSPEC' });
  }
  return cg.Cgroup.where(cgroupsPath, { driver: systemd ? 'systemd' : 'cgroupfs' });
}

/**
 * The first of a cgroup's directories (locateCgroup's `paths`) that this process cannot
 * make, as `DIR: why`, or undefined when it can make them all: the nearest existing
 * ancestor of each must be writable. Root in a user namespace (rootless podman's
 * runtime) usually cannot write the host's cgroup tree.
 */
export function uncreatableCgroup(paths: Record<string, string>): string | undefined {
  for (const path of new Set(Object.values(paths))) {
    let dir = path;
    while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
    try {
      accessSync(dir, constants.W_OK);
    } catch (e) {
      return `${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} on ${dir}`;
    }
  }
  return undefined;
}

/** Creates the container's cgroup and applies its limits; on any failure nothing is left. */
export async function createCgroup(
  spec: Spec,
  cgroupsPath: string,
  systemd: boolean,
  /** linux.resources were checked already (locateCgroup) */
  validated = false,
  /** the cgroup existed before the container: a failure leaves it, as it was, where it was */
  shared = false,
  /** with the systemd driver: the process systemd makes the container's scope with */
  scopePid?: number,
): Promise<Cgroup> {
  const cg = await cgroups();
  const resources = effectiveResources(spec);
  const problems = validated ? [] : cg.validateResources(resources);
  // root in a user namespace may not attach the device program (bpf needs the host's
  // CAP_SYS_ADMIN); nor can it make device nodes: the container has only those bound for it.
  // As runc's rootless cgroup manager, the device rules are left out there.
  if (inUserNamespace()) delete resources.devices;
  if (problems.length) {
    throw new BerthError(problems.map((p) => `${p.path}: ${p.message}`).join('\n'), { code: 'EINVALIDSPEC' });
  }
  const cgroup = await cg.Cgroup.create(cgroupsPath, {
    driver: systemd ? 'systemd' : 'cgroupfs',
    ...(scopePid !== undefined
      ? {
          scope: {
            pid: scopePid,
            ...(spec.linux?.resources ? { resources: spec.linux.resources as LinuxResources } : {}),
          },
        }
      : {}),
  });
  try {
    // checked above, before anything was made: once is enough
    await cgroup.apply(resources, { validated: true });
  } catch (e) {
    // apply has rolled back what it wrote; a cgroup berth did not create is never removed
    if (!shared) await cgroup.delete().catch(() => {});
    throw e;
  }
  return cgroup;
}

/** The container's cgroup, or undefined when it is gone. */
export async function loadCgroup(
  cgroupsPath: string | undefined,
  systemd: boolean,
  /** a rootless container's cgroup2 mount (its cgroup is there, on the v2 driver) */
  root?: string,
): Promise<Cgroup | undefined> {
  if (!cgroupsPath) return undefined;
  const cg = await cgroups();
  return cg.Cgroup.find(
    cgroupsPath,
    root ? { root, layout: 'v2' } : { driver: systemd ? 'systemd' : 'cgroupfs' },
  );
}
