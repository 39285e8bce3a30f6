/**
 * Rootless berth: who runs it, where its state, images and caches go, which
 * ids it may map, and what it refuses because only root may do it.
 *
 * berth is rootless when its effective uid is not 0. Then:
 * - container state is kept in `$XDG_RUNTIME_DIR/berth` (else `/run/user/UID/berth`
 *   when that directory exists and is the user's), images in
 *   `${XDG_DATA_HOME:-~/.local/share}/berth`, caches in `${XDG_CACHE_HOME:-~/.cache}/berth`;
 *   each is made with mode 0700 and must belong to the user;
 * - containers get a user namespace mapping container root to the user, and the
 *   user's subordinate ids (/etc/subuid, /etc/subgid) to container ids 1..N, written
 *   by newuidmap/newgidmap; without ranges, only the user's own id is mapped.
 */
import { accessSync, chmodSync, constants, lstatSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import type { IDMapping, Spec } from '@berth/spec';
import { BerthError, inUserNamespace } from '@berth/sys';

/** Whether berth runs without root (effective uid not 0). */
export function isRootless(): boolean {
  return (process.geteuid?.() ?? 0) !== 0;
}

const euid = (): number => process.geteuid?.() ?? 0;
const egid = (): number => process.getegid?.() ?? 0;

type Env = Record<string, string | undefined>;

function rootlessError(message: string, path?: string): BerthError {
  return new BerthError(message, { code: 'EROOTLESS', ...(path ? { path } : {}) });
}

/** The user's home: $HOME when absolute, else the password database's. */
function home(env: Env): string {
  const h = env['HOME'];
  return h && isAbsolute(h) ? h : homedir();
}

/** An XDG base directory variable: used only when absolute (the XDG rule), else `fallback`. */
function xdg(env: Env, name: string, fallback: string): string {
  const v = env[name];
  return v && isAbsolute(v) ? v : fallback;
}

/**
 * Where a rootless berth keeps container state (runc's --root): `$XDG_RUNTIME_DIR/berth`,
 * else `/run/user/UID/berth` when /run/user/UID exists and belongs to the user.
 */
export function rootlessStateRoot(env: Env = process.env, uid = euid()): string {
  const runtimeDir = env['XDG_RUNTIME_DIR'];
  if (runtimeDir && isAbsolute(runtimeDir)) return join(runtimeDir, 'berth');
  const fallback = `/run/user/${uid}`;
  try {
    const st = statSync(fallback);
    if (st.isDirectory() && st.uid === uid) return join(fallback, 'berth');
  } catch {
    // reported below
  }
  throw rootlessError(
    `rootless berth keeps container state in $XDG_RUNTIME_DIR/berth, but XDG_RUNTIME_DIR is not set and ${fallback} is not a directory of yours: set XDG_RUNTIME_DIR (a directory of your own, ideally on tmpfs) or pass --root DIR`,
    fallback,
  );
}

/** Where a rootless berth keeps images: `${XDG_DATA_HOME:-~/.local/share}/berth`. */
export function rootlessStoreRoot(env: Env = process.env): string {
  return join(xdg(env, 'XDG_DATA_HOME', join(home(env), '.local', 'share')), 'berth');
}

/** Where a rootless berth keeps caches: `${XDG_CACHE_HOME:-~/.cache}/berth`. */
export function rootlessCacheDir(env: Env = process.env): string {
  return join(xdg(env, 'XDG_CACHE_HOME', join(home(env), '.cache')), 'berth');
}

/**
 * Whether root here should keep its state under $XDG_RUNTIME_DIR, as runc decides:
 * it is set, and berth runs as root in a user namespace (rootless podman's or
 * rootlesskit's) for a user other than root ($USER unset or not "root").
 */
function honoursRuntimeDir(env: Env): boolean {
  const dir = env['XDG_RUNTIME_DIR'];
  if (!dir || !isAbsolute(dir)) return false;
  if (env['USER'] === 'root') return false;
  return inUserNamespace();
}

/**
 * Container state: `$BERTH_ROOT`, else /run/berth as root, else the rootless state
 * root. Root in a user namespace with $XDG_RUNTIME_DIR set (rootless podman runs its
 * runtime so) keeps it in `$XDG_RUNTIME_DIR/berth`, as runc keeps its in `…/runc`.
 */
export function defaultStateRoot(env: Env = process.env): string {
  if (env['BERTH_ROOT']) return env['BERTH_ROOT'];
  if (isRootless()) return rootlessStateRoot(env);
  return honoursRuntimeDir(env) ? join(env['XDG_RUNTIME_DIR']!, 'berth') : '/run/berth';
}

/** The image store: `$BERTH_STORE`, else /var/lib/berth as root, else the rootless store. */
export function defaultStoreRoot(env: Env = process.env): string {
  if (env['BERTH_STORE']) return env['BERTH_STORE'];
  return isRootless() ? rootlessStoreRoot(env) : '/var/lib/berth';
}

/**
 * Makes `dir` (and missing parents) with mode 0700 and checks that it is a real
 * directory (not a symlink) that belongs to `uid` and that nobody else may write.
 * Anything else is refused, naming the path: a directory another user made or
 * can write could be used to swap what berth reads and writes there.
 */
export function ensurePrivateDir(dir: string, uid = euid()): string {
  let made: string | undefined;
  try {
    made = mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw rootlessError(`cannot create ${dir}: ${(e as Error).message}`, dir);
  }
  const st = lstatSync(dir);
  if (!st.isDirectory())
    throw rootlessError(`refusing to use ${dir}: it is not a directory (a symlink?)`, dir);
  if (st.uid !== uid)
    throw rootlessError(`refusing to use ${dir}: it belongs to uid ${st.uid}, not to you (uid ${uid})`, dir);
  if ((st.mode & 0o022) !== 0)
    throw rootlessError(
      `refusing to use ${dir}: group or others may write to it (mode ${(st.mode & 0o7777).toString(8)}); chmod 700 it`,
      dir,
    );
  if (made !== undefined && (st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700); // against a lax umask
  return dir;
}

// ---------------------------------------------------------------------------
// Subordinate ids

/** One range of /etc/subuid or /etc/subgid: `count` ids from `start`. */
export interface SubIdRange {
  start: number;
  count: number;
}

const MAX_ID = 0xffffffff;

/**
 * The ranges of `user` in an /etc/subuid or /etc/subgid text, in file order.
 * As shadow-utils does, a line's first field matches the user's name or the
 * user's uid as a decimal number; comments, blank and malformed lines are skipped.
 */
export function parseSubIds(text: string, user: { name: string; uid: number }): SubIdRange[] {
  const out: SubIdRange[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length !== 3) continue;
    const [owner, s, c] = f as [string, string, string];
    if (owner !== user.name && owner !== String(user.uid)) continue;
    if (!/^[0-9]+$/.test(s) || !/^[0-9]+$/.test(c)) continue;
    const start = Number(s);
    const count = Number(c);
    if (count === 0 || start + count - 1 > MAX_ID) continue;
    out.push({ start, count });
  }
  return out;
}

/** The user's ranges in `file` (none when the file is missing or unreadable). */
export function readSubIds(file: string, user: { name: string; uid: number }): SubIdRange[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return parseSubIds(text, user);
}

/** The kernel's limit on lines in uid_map and gid_map. */
const MAX_MAP_LINES = 340;

/**
 * Container 0 → `own`, then container 1, 2, … → each subordinate range in turn
 * (as podman does). Ranges that contain `own` are left out (a host id may be
 * mapped once), as are ranges beyond the kernel's 340 lines.
 */
export function rootlessMappings(own: number, ranges: readonly SubIdRange[]): IDMapping[] {
  const maps: IDMapping[] = [{ containerID: 0, hostID: own, size: 1 }];
  let next = 1;
  for (const r of ranges) {
    if (maps.length >= MAX_MAP_LINES) break;
    if (own >= r.start && own < r.start + r.count) continue;
    if (next + r.count - 1 > MAX_ID) break;
    maps.push({ containerID: next, hostID: r.start, size: r.count });
    next += r.count;
  }
  return maps;
}

export interface RootlessIds {
  uidMappings: IDMapping[];
  gidMappings: IDMapping[];
  /** true when /etc/subuid and /etc/subgid gave ranges and newuidmap/newgidmap exist */
  subordinate: boolean;
}

export interface RootlessIdOptions {
  /** default: the current user's name */
  user?: string;
  uid?: number;
  gid?: number;
  /** default /etc/subuid, /etc/subgid */
  subuidFile?: string;
  subgidFile?: string;
  /** where to look for newuidmap/newgidmap (default /usr/bin:/usr/sbin:/bin:/sbin, then $PATH) */
  path?: string;
}

/**
 * The id maps of a rootless container: container root is the user, and
 * container ids 1..N the user's subordinate ids when both files give the user
 * ranges and newuidmap/newgidmap are installed; else only the user's own ids.
 */
export function rootlessIds(options: RootlessIdOptions = {}): RootlessIds {
  const uid = options.uid ?? euid();
  const gid = options.gid ?? egid();
  const name = options.user ?? userName(uid);
  const user = { name, uid };
  const subuids = readSubIds(options.subuidFile ?? '/etc/subuid', user);
  const subgids = readSubIds(options.subgidFile ?? '/etc/subgid', user);
  const tools = findIdmapTools(options.path);
  const subordinate = subuids.length > 0 && subgids.length > 0 && tools !== undefined;
  return {
    uidMappings: rootlessMappings(uid, subordinate ? subuids : []),
    gidMappings: rootlessMappings(gid, subordinate ? subgids : []),
    subordinate,
  };
}

function userName(uid: number): string {
  try {
    return userInfo().username;
  } catch {
    return String(uid); // no passwd entry: match /etc/subuid lines by uid only
  }
}

const SYSTEM_PATH = '/usr/bin:/usr/sbin:/bin:/sbin';

/**
 * Absolute paths of newuidmap and newgidmap (the system's first, then $PATH's:
 * they are setuid-root programs a distribution installs), or undefined when
 * either is missing.
 */
export function findIdmapTools(
  path = `${SYSTEM_PATH}${delimiter}${process.env['PATH'] ?? ''}`,
): { newuidmap: string; newgidmap: string } | undefined {
  const find = (name: string) => {
    for (const dir of path.split(delimiter)) {
      if (!dir || !isAbsolute(dir)) continue;
      const p = join(dir, name);
      try {
        accessSync(p, constants.X_OK);
        if (statSync(p).isFile()) return p;
      } catch {
        // next
      }
    }
    return undefined;
  };
  const newuidmap = find('newuidmap');
  const newgidmap = find('newgidmap');
  return newuidmap && newgidmap ? { newuidmap, newgidmap } : undefined;
}

/** How the maps of a new user namespace are written. */
export type IdmapWriter =
  | { mode: 0 } // the launcher's parent writes /proc/PID/{setgroups,gid_map,uid_map} itself
  | { mode: 1; newuidmap: string; newgidmap: string }; // the setuid helpers of shadow-utils

const isOwnOnly = (maps: readonly IDMapping[] | undefined, id: number): boolean =>
  maps?.length === 1 && maps[0]!.hostID === id && maps[0]!.size === 1;

/**
 * Who writes the maps when berth is not root. The kernel lets an unprivileged
 * process write one line mapping its own uid (and its own gid, after "deny" in
 * setgroups); anything more needs newuidmap/newgidmap, which check the ranges
 * against /etc/subuid and /etc/subgid. As root: mode 0.
 */
export function rootlessIdmapWriter(
  uidMappings: readonly IDMapping[] | undefined,
  gidMappings: readonly IDMapping[] | undefined,
  path?: string,
): IdmapWriter {
  if (!isRootless()) return { mode: 0 };
  if (isOwnOnly(uidMappings, euid()) && isOwnOnly(gidMappings, egid())) return { mode: 0 };
  const tools = findIdmapTools(path);
  if (!tools)
    throw rootlessError(
      'linux.uidMappings: mapping more than your own uid and gid without root needs newuidmap and newgidmap (apt-get install uidmap) and ranges in /etc/subuid and /etc/subgid',
    );
  return { mode: 1, ...tools };
}

// ---------------------------------------------------------------------------
// Specs

/** Mount options naming ids, which a user namespace may not have mapped (runc's ToRootless drops them). */
const ID_OPTION = /^(uid|gid)=([0-9]+)$/;

/**
 * Turns a container's config into one a rootless berth can run, as `runc spec
 * --rootless` and podman do: a new user namespace with `ids`, no cgroup limits
 * that cannot be had (see `rootlessCgroupProblem`), `/sys` bound from the host
 * when the container shares the host's network namespace (sysfs needs one of
 * its own), and no uid=/gid= mount options naming ids the namespace lacks.
 */
export function toRootlessSpec(spec: Spec, ids: RootlessIds): Spec {
  const out = structuredClone(spec);
  out.linux ??= {};
  const linux = out.linux;
  const namespaces = (linux.namespaces ?? []).filter((n) => n.type !== 'user');
  namespaces.unshift({ type: 'user' });
  linux.namespaces = namespaces;
  linux.uidMappings = ids.uidMappings;
  linux.gidMappings = ids.gidMappings;
  const ownNet = namespaces.some((n) => n.type === 'network' && !n.path);
  const mapped = (kind: string, id: number) =>
    (kind === 'uid' ? ids.uidMappings : ids.gidMappings).some(
      (m) => id >= m.containerID && id < m.containerID + m.size,
    );
  out.mounts = (out.mounts ?? []).map((m) => {
    if (!ownNet && m.destination.replace(/\/+$/, '') === '/sys' && m.type === 'sysfs')
      return {
        destination: '/sys',
        type: 'none',
        source: '/sys',
        options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
      };
    if (!m.options) return m;
    const options = m.options.filter((o) => {
      const id = ID_OPTION.exec(o);
      return !id || mapped(id[1]!, Number(id[2]));
    });
    return { ...m, options };
  });
  return out;
}

// ---------------------------------------------------------------------------
// Refusals

/** Filesystems the kernel lets a user namespace mount (FS_USERNS_MOUNT), and bind mounts. */
const USERNS_FS = new Set([
  'proc',
  'sysfs',
  'tmpfs',
  'devpts',
  'mqueue',
  'cgroup',
  'cgroup2',
  'overlay',
  'fuse',
  'ramfs',
  'none',
  'bind',
]);

/**
 * What in `spec` a rootless berth cannot do, as one message naming the JSON
 * path, or undefined: a container without a user namespace of its own (or one
 * joined by path) or without maps for it, mounts of filesystems a user
 * namespace may not mount, and device cgroup rules that deny
 * particular devices (an unprivileged user has no device cgroup; a user
 * namespace cannot make device nodes, so the catch-all "deny all" holds by
 * itself, and allow rules grant nothing the host does not already give).
 */
export function rootlessSpecProblem(spec: Spec): string | undefined {
  const linux = spec.linux ?? {};
  const ns = linux.namespaces ?? [];
  const userNs = ns.find((n) => n.type === 'user');
  if (!userNs)
    return 'linux.namespaces: berth without root needs a user namespace (add {"type": "user"} with linux.uidMappings and linux.gidMappings, as `berth spec --rootless` writes)';
  if (!userNs.path && !(linux.uidMappings?.length && linux.gidMappings?.length))
    return 'linux.uidMappings: berth without root needs uid and gid mappings for its user namespace (container 0 to your own id at least)';
  const mounts = spec.mounts ?? [];
  const m = mounts.findIndex(
    (x) =>
      x.type !== undefined &&
      !USERNS_FS.has(x.type) &&
      !(x.options ?? []).some((o) => o === 'bind' || o === 'rbind'),
  );
  if (m >= 0)
    return `mounts[${m}].type: ${JSON.stringify(mounts[m]!.type)} cannot be mounted by berth without root (a user namespace may mount only ${[...USERNS_FS].filter((t) => t !== 'none' && t !== 'bind').join(', ')} and binds)`;
  const rules = linux.resources?.devices ?? [];
  const i = rules.findIndex(
    (r) =>
      !r.allow &&
      ((r.type !== undefined && r.type !== 'a') || r.major !== undefined || r.minor !== undefined),
  );
  if (i >= 0)
    return `linux.resources.devices[${i}]: denying a particular device needs root (berth without root has no device cgroup to enforce it)`;
  return undefined;
}

/** A cgroup limit (a `linux.resources` field other than device rules) that was asked for, as a JSON path. */
export function askedLimit(spec: Spec): string | undefined {
  const r = spec.linux?.resources;
  if (!r) return undefined;
  for (const [key, value] of Object.entries(r)) {
    if (key === 'devices' || value === undefined || value === null) continue;
    if (Array.isArray(value) ? value.length === 0 : typeof value === 'object' && !Object.keys(value).length)
      continue;
    return `linux.resources.${key}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// cgroups

/** Where a rootless container's cgroup goes, or why there is none. */
export type RootlessCgroup =
  | { kind: 'delegated'; mount: string; parent: string }
  | { kind: 'none'; reason: string };

/**
 * The cgroup v2 subtree this user may use, as podman does: the current
 * process's cgroup's parent when it belongs to the user (systemd's user@.service
 * or an admin delegated it), else the current cgroup itself. The mount is the
 * host's cgroup2 mount (/sys/fs/cgroup on v2 hosts, /sys/fs/cgroup/unified on
 * hybrid ones, where it has no v1 controllers but still tracks, freezes and
 * kills the container's processes). Anything else: no cgroup, with the reason.
 */
export function rootlessCgroup(
  options: { mountinfo?: string; procCgroup?: string; uid?: number } = {},
): RootlessCgroup {
  const uid = options.uid ?? euid();
  const mountinfo = options.mountinfo ?? readFileSync('/proc/self/mountinfo', 'utf8');
  const mount = cgroup2Mount(mountinfo);
  if (!mount) return { kind: 'none', reason: 'this host has no cgroup v2 hierarchy' };
  const procCgroup = options.procCgroup ?? readFileSync('/proc/self/cgroup', 'utf8');
  const own = /^0::(\/.*)$/m.exec(procCgroup)?.[1];
  if (!own) return { kind: 'none', reason: 'this process is in no cgroup v2 cgroup' };
  for (const rel of own === '/' ? ['/'] : [dirname(own), own]) {
    const dir = join(mount, rel);
    if (ownsCgroup(dir, uid)) return { kind: 'delegated', mount, parent: rel };
  }
  return {
    kind: 'none',
    reason: `no cgroup v2 subtree is delegated to you (${own === '/' ? `${mount} belongs` : `${join(mount, own)} and its parent belong`} to someone else; systemd delegates one to user@UID.service, or an admin can chown one)`,
  };
}

/** The mount point of the cgroup2 hierarchy in a mountinfo text. */
function cgroup2Mount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    if (line.slice(sep + 3).split(' ')[0] !== 'cgroup2') continue;
    const mp = line.slice(0, sep).split(' ')[4];
    if (mp) return mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  }
  return undefined;
}

/** A cgroup directory the user may make children in and move processes into. */
function ownsCgroup(dir: string, uid: number): boolean {
  try {
    const st = statSync(dir);
    if (!st.isDirectory() || st.uid !== uid) return false;
    if (statSync(join(dir, 'cgroup.procs')).uid !== uid) return false;
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The cgroup a rootless container gets: in the delegated v2 subtree, or none. */
export interface RootlessCgroupChoice {
  cgroup?: import('@berth/cgroups').Cgroup;
  /** the cgroup's path inside the cgroup2 hierarchy, and that hierarchy's mount */
  cgroupsPath?: string;
  cgroupRoot?: string;
}

/**
 * Makes a rootless container's cgroup `berth-ID` in the delegated cgroup v2
 * subtree (see `rootlessCgroup`) with the limits the config asks for, device
 * rules aside (an unprivileged user cannot attach the device program). Where
 * there is no such subtree, limits that were asked for are an error naming
 * the reason, and a container without limits runs without a cgroup (runc
 * rootless does the same), with a warning.
 */
export async function createRootlessCgroup(
  spec: Spec,
  id: string,
  warn: (message: string) => void,
  where: RootlessCgroup = rootlessCgroup(),
): Promise<RootlessCgroupChoice> {
  const limit = askedLimit(spec);
  if (where.kind === 'none') {
    if (limit)
      throw rootlessError(
        `${limit}: berth without root can only apply cgroup limits in a cgroup v2 subtree delegated to the user, and ${where.reason}`,
      );
    warn(
      `running without a cgroup (berth without root: ${where.reason}); pause, resume, update and stats need one`,
    );
    return {};
  }
  const cg = await import('@berth/cgroups');
  const { devices: _devices, ...resources } = (spec.linux?.resources ??
    {}) as import('@berth/cgroups').LinuxResources;
  const problems = cg.validateResources(resources);
  if (problems.length)
    throw new BerthError(problems.map((p) => `${p.path}: ${p.message}`).join('\n'), { code: 'EINVALIDSPEC' });
  const requested = spec.linux?.cgroupsPath;
  // a config's cgroupsPath is taken inside the delegated subtree: the user owns nothing else
  const name = requested ? requested.replace(/^\/+/, '') : `berth-${id}`;
  if (!name || name.split('/').some((p) => p === '..' || p === '.'))
    throw new BerthError(
      `linux.cgroupsPath: ${JSON.stringify(requested)} is not a path below the delegated cgroup`,
      {
        code: 'EINVALIDSPEC',
      },
    );
  const cgroupsPath = join(where.parent, name);
  const cgroup = await cg.Cgroup.create(cgroupsPath, { root: where.mount, layout: 'v2' });
  try {
    await cgroup.apply(resources, { validated: true });
  } catch (e) {
    await cgroup.delete().catch(() => {});
    const msg = (e as Error).message;
    throw limit
      ? rootlessError(
          `${limit}: cannot apply it in the delegated cgroup ${join(where.mount, cgroupsPath)}: ${msg}`,
        )
      : e;
  }
  return { cgroup, cgroupsPath, cgroupRoot: where.mount };
}

/**
 * The image store's directory, ready to use: `defaultStoreRoot()` (or `dir`);
 * without root it is made with mode 0700 and must belong to the user.
 */
export function storeRoot(dir: string = defaultStoreRoot()): string {
  return isRootless() ? ensurePrivateDir(dir) : dir;
}
