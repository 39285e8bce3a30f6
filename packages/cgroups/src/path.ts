import { CgroupError } from './errors.js';
import { defaultSlice, isManagerRunning, systemdManager } from './systemd/manager.js';
import type { CgroupDriver } from './types.js';

export interface ResolvePathOptions {
  driver?: CgroupDriver;
  /** with driver `systemd` on a host without systemd, map `slice:prefix:name` onto cgroupfs anyway (a test, a rescue) */
  fallbackToCgroupfs?: boolean;
  /** injectable for tests; defaults to whether the manager runs (systemd/manager.ts: /run/systemd/system, as sd_booted(3), or the user manager's socket) */
  systemdRunning?: boolean;
}

export interface ResolvedPath {
  /** normalised path inside a hierarchy, `/`-prefixed when absolute */
  path: string;
  /** relative paths are placed under the caller's own cgroup (runc semantics) */
  relative: boolean;
  driver: 'cgroupfs';
  /** set when the path came from the systemd `slice:prefix:name` form */
  systemd?: { slice: string; unit: string };
}

export function isSystemdRunning(): boolean {
  return isManagerRunning();
}

function pathError(cgroupsPath: string, message: string): CgroupError {
  return new CgroupError({ code: 'EPATH', op: 'resolve', path: cgroupsPath, message });
}

/** Rejects `..` outright: a cgroupsPath must never name a cgroup outside the tree it claims. */
export function normalizeCgroupsPath(cgroupsPath: string): ResolvedPath {
  if (cgroupsPath === '') throw pathError(cgroupsPath, 'cgroupsPath is empty');
  if (cgroupsPath.includes('\0')) throw pathError(cgroupsPath, 'cgroupsPath contains a NUL byte');
  const relative = !cgroupsPath.startsWith('/');
  const parts: string[] = [];
  for (const seg of cgroupsPath.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      throw pathError(cgroupsPath, `cgroupsPath ${JSON.stringify(cgroupsPath)} must not contain '..'`);
    }
    parts.push(seg);
  }
  if (parts.length === 0) {
    throw pathError(cgroupsPath, `cgroupsPath ${JSON.stringify(cgroupsPath)} names the root cgroup`);
  }
  return { path: (relative ? '' : '/') + parts.join('/'), relative, driver: 'cgroupfs' };
}

/** `test-a-b.slice` -> `/test.slice/test-a.slice/test-a-b.slice`, systemd's slice nesting. */
export function expandSlice(slice: string): string {
  const suffix = '.slice';
  if (!slice.endsWith(suffix) || slice.length <= suffix.length) {
    throw pathError(slice, `invalid slice name ${JSON.stringify(slice)}: must end with .slice`);
  }
  if (slice.includes('/'))
    throw pathError(slice, `invalid slice name ${JSON.stringify(slice)}: contains '/'`);
  const name = slice.slice(0, -suffix.length);
  if (name === '-') return '/';
  let path = '';
  let prefix = '';
  for (const component of name.split('-')) {
    if (component === '') {
      throw pathError(slice, `invalid slice name ${JSON.stringify(slice)}: empty component between dashes`);
    }
    path += `/${prefix}${component}${suffix}`;
    prefix += `${component}-`;
  }
  return path;
}

export function systemdUnitName(prefix: string, name: string): string {
  if (name.endsWith('.slice')) return name;
  return prefix === '' ? `${name}.scope` : `${prefix}-${name}.scope`;
}

export function resolveCgroupsPath(cgroupsPath: string, opts: ResolvePathOptions = {}): ResolvedPath {
  if ((opts.driver ?? 'cgroupfs') === 'cgroupfs') return normalizeCgroupsPath(cgroupsPath);

  const parts = cgroupsPath.split(':');
  if (parts.length !== 3) {
    throw pathError(
      cgroupsPath,
      `cgroupsPath ${JSON.stringify(cgroupsPath)} must have the form "slice:prefix:name" with the systemd cgroup driver`,
    );
  }
  const [sliceRaw, prefix, name] = parts as [string, string, string];
  if (name === '' || name.includes('/') || prefix.includes('/')) {
    throw pathError(
      cgroupsPath,
      `cgroupsPath ${JSON.stringify(cgroupsPath)}: name must be non-empty, without '/'`,
    );
  }
  const slice = sliceRaw === '' ? defaultSlice() : sliceRaw;
  const unit = systemdUnitName(prefix, name);
  const running = opts.systemdRunning ?? isSystemdRunning();
  if (!running && !opts.fallbackToCgroupfs) {
    throw new CgroupError({
      code: 'ESYSTEMD',
      op: 'resolve',
      path: cgroupsPath,
      message:
        `${systemdManager().kind === 'user' ? `the user's systemd is not running (no ${systemdManager().socket})` : 'systemd is not running (no /run/systemd/system)'}: cannot use the systemd cgroup driver for ${JSON.stringify(cgroupsPath)}; ` +
        'use the cgroupfs driver, or ask for the cgroupfs fallback explicitly',
    });
  }
  const dir = expandSlice(slice);
  const path = `${dir === '/' ? '' : dir}/${unit}`;
  return { path, relative: false, driver: 'cgroupfs', systemd: { slice, unit } };
}
