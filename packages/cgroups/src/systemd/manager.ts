/**
 * Which systemd manager the systemd cgroup driver talks to, as runc decides: the system
 * manager (PID 1) for the host's root, and a user's manager for anyone else — a user
 * without root, and root in a user namespace run for a user (rootless podman's runtime:
 * `$XDG_RUNTIME_DIR` set, `$USER` not root). berth talks to the manager's private socket
 * directly (no bus daemon): `/run/systemd/private`, or `$XDG_RUNTIME_DIR/systemd/private`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { inUserNamespace } from '@berth/sys';

export interface SystemdManager {
  /** PID 1's manager, or the manager of the user berth runs for */
  kind: 'system' | 'user';
  /** its private socket */
  socket: string;
  /** the uid to authenticate as: this process's, as the manager (outside any user namespace) sees it */
  uid: number;
}

/** The manager for this process and environment (see the module's comment). */
export function systemdManager(env: Record<string, string | undefined> = process.env): SystemdManager {
  const uid = process.getuid?.() ?? 0;
  const nested = uid === 0 && inUserNamespace();
  const runtimeDir = env['XDG_RUNTIME_DIR'];
  const hasRuntimeDir = runtimeDir !== undefined && isAbsolute(runtimeDir);
  if (uid === 0 && !(nested && hasRuntimeDir && env['USER'] !== 'root'))
    return { kind: 'system', socket: '/run/systemd/private', uid };
  const dir = hasRuntimeDir ? runtimeDir : `/run/user/${uid}`;
  return { kind: 'user', socket: join(dir, 'systemd', 'private'), uid: nested ? outerUid(uid) : uid };
}

/**
 * `uid` as the parent user namespace sees it (the line of /proc/self/uid_map that maps it),
 * or `uid` itself where nothing maps it.
 */
export function outerUid(uid: number, uidMap?: string): number {
  let map = uidMap;
  if (map === undefined) {
    try {
      map = readFileSync('/proc/self/uid_map', 'latin1');
    } catch {
      return uid;
    }
  }
  for (const line of map.split('\n')) {
    const [inside, outside, count] = line.trim().split(/\s+/).map(Number);
    if (inside === undefined || outside === undefined || count === undefined) continue;
    if (uid >= inside && uid < inside + count) return outside + (uid - inside);
  }
  return uid;
}

/** Whether that manager runs: /run/systemd/system for the system's (sd_booted(3)), its socket for a user's. */
export function isManagerRunning(m: SystemdManager = systemdManager()): boolean {
  return m.kind === 'system' ? existsSync('/run/systemd/system') : existsSync(m.socket);
}

/** The slice a `:prefix:name` cgroupsPath (no slice) goes to: system.slice, or a user manager's user.slice. */
export function defaultSlice(m: SystemdManager = systemdManager()): string {
  return m.kind === 'user' ? 'user.slice' : 'system.slice';
}
