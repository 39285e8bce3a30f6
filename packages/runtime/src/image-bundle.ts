import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { defaultSpec, formatSpec, type Spec } from '@berth/spec';
import { BerthError } from '@berth/sys';
import type { DefaultImage } from './builtin.js';

export interface ImageRunOptions {
  /** Replaces the image's Cmd. */
  args?: string[];
  /** KEY=VALUE entries added to (or replacing in) the image's Env. */
  env?: string[];
  cwd?: string;
  /** `uid[:gid]` or a user name from the image's /etc/passwd. */
  user?: string;
  terminal?: boolean;
  hostname?: string;
  readonly?: boolean;
  /** `none` (the default): a network namespace with only lo; `host`: the host's network. */
  network?: 'none' | 'host';
  /** Bind mounts: `SRC:DST[:ro]`. */
  volumes?: string[];
}

export interface ImageBundle {
  bundle: string;
  overlay: { lower: string[]; upper: string; work: string };
  ownedDirs: string[];
  spec: Spec;
}

/** A random container id, like podman's: 12 hex digits. */
export function randomId(): string {
  return randomBytes(6).toString('hex');
}

function mergeEnv(base: string[], extra: string[]): string[] {
  const out = new Map<string, string>();
  for (const e of [...base, ...extra]) {
    const eq = e.indexOf('=');
    if (eq <= 0)
      throw new BerthError(`environment entry ${JSON.stringify(e)} must be KEY=VALUE`, { code: 'EINVAL' });
    out.set(e.slice(0, eq), e);
  }
  return [...out.values()];
}

function lookupUser(rootfs: string, user: string): { uid: number; gid: number } {
  const [u = '', g] = user.split(':');
  const fromFile = (file: string, name: string): string[] | undefined => {
    try {
      return readFileSync(join(rootfs, 'etc', file), 'utf8')
        .split('\n')
        .map((l) => l.split(':'))
        .find((f) => f[0] === name);
    } catch {
      return undefined;
    }
  };
  let uid: number;
  let gid = 0;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
  } else {
    const entry = fromFile('passwd', u);
    if (!entry)
      throw new BerthError(`user ${JSON.stringify(u)} is not in the image's /etc/passwd`, {
        code: 'ENOTFOUND',
      });
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (g !== undefined) {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const entry = fromFile('group', g);
      if (!entry)
        throw new BerthError(`group ${JSON.stringify(g)} is not in the image's /etc/group`, {
          code: 'ENOTFOUND',
        });
      gid = Number(entry[2]);
    }
  }
  return { uid, gid };
}

/**
 * Makes a bundle for running `image`: config.json from berth's defaults and the
 * image's config and the user's flags, and an empty upper/work pair for the
 * overlay snapshot the container mounts over the image (inside its own mount
 * namespace, so no host mount is ever left behind).
 */
export function makeImageBundle(
  store: string,
  id: string,
  image: DefaultImage,
  o: ImageRunOptions = {},
): ImageBundle {
  const dir = join(store, 'containers', id);
  try {
    mkdirSync(join(store, 'containers'), { recursive: true, mode: 0o711 });
    mkdirSync(dir, { mode: 0o711 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new BerthError(`container ${id} already exists`, { code: 'EEXIST', path: id });
    }
    throw e;
  }
  try {
    for (const d of ['rootfs', 'upper', 'work']) mkdirSync(join(dir, d));
    const spec = defaultSpec();
    const proc = spec.process!;
    proc.terminal = o.terminal === true;
    proc.args = o.args?.length ? o.args : image.config.Cmd;
    proc.env = mergeEnv(image.config.Env, [...(o.terminal ? ['TERM=xterm'] : []), ...(o.env ?? [])]);
    proc.cwd = o.cwd ?? image.config.WorkingDir ?? '/';
    if (!isAbsolute(proc.cwd))
      throw new BerthError(`--workdir ${JSON.stringify(proc.cwd)} must be an absolute path`, {
        code: 'EINVAL',
      });
    if (o.user) proc.user = { ...lookupUser(image.rootfs, o.user) };
    spec.root = { path: join(dir, 'rootfs'), readonly: o.readonly === true };
    spec.hostname = o.hostname ?? id.slice(0, 63);
    if (o.network === 'host') {
      spec.linux!.namespaces = spec.linux!.namespaces!.filter((n) => n.type !== 'network');
      // the host's sysfs cannot be mounted without a network namespace of our own: bind it
      spec.mounts = spec.mounts!.map((m) =>
        m.destination === '/sys'
          ? {
              destination: '/sys',
              type: 'bind',
              source: '/sys',
              options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
            }
          : m,
      );
    }
    for (const v of o.volumes ?? []) {
      const [src, dst, mode, ...more] = v.split(':');
      if (!src || !dst || more.length || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) {
        throw new BerthError(`volume ${JSON.stringify(v)} must be SRC:DST[:ro|rw]`, { code: 'EINVAL' });
      }
      if (!isAbsolute(dst))
        throw new BerthError(`volume ${JSON.stringify(v)}: DST must be an absolute path`, { code: 'EINVAL' });
      spec.mounts!.push({
        destination: dst,
        type: 'bind',
        source: resolve(src),
        options: ['rbind', mode === 'ro' ? 'ro' : 'rw'],
      });
    }
    spec.annotations = { 'org.opencontainers.image.ref.name': image.name };
    writeFileSync(join(dir, 'config.json'), formatSpec(spec));
    return {
      bundle: dir,
      overlay: { lower: [image.rootfs], upper: join(dir, 'upper'), work: join(dir, 'work') },
      ownedDirs: [dir],
      spec,
    };
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
