import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Where berth reads registry settings from. Every field is optional: by default berth reads the same places as
 * podman, skopeo and CRI-O (containers-registries.conf(5), containers-certs.d(5), containers-auth.json(5)), and
 * Docker's certs.d and config.json after them. Tests and embedders point these anywhere else.
 */
export interface RegistrySettings {
  /**
   * The environment to read `CONTAINERS_REGISTRIES_CONF`, `REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `HOME`,
   * `DOCKER_CONFIG`, `PATH` (for credential helpers) and `BERTH_CONFIG_ROOT` from; default `process.env`.
   */
  env?: Record<string, string | undefined>;
  /**
   * A directory every system path (/etc/containers, /etc/docker, /run/containers) is read under, like
   * containers/image's RootForImplicitAbsolutePaths; default `$BERTH_CONFIG_ROOT`, else `/`.
   */
  configRoot?: string;
  /** registries.conf; default `$CONTAINERS_REGISTRIES_CONF`, `$REGISTRIES_CONFIG_PATH`, ~/.config/containers/registries.conf when it exists, /etc/containers/registries.conf */
  registriesConf?: string;
  /** the drop-in directory; default /etc/containers/registries.conf.d (and ~/.config/containers/registries.conf.d) */
  registriesConfDir?: string;
  /** `--cert-dir`: CAs and client certificates from this directory instead of the per-host certs.d lookup */
  certDir?: string;
  /** per-host certificate roots searched for HOST[:PORT]/; default (~/.config/containers/certs.d for non-root,) /etc/containers/certs.d, /etc/docker/certs.d */
  certsDirs?: string[];
  /** `--tls-verify=false`: HTTPS without certificate checks, then plain HTTP; default true */
  tlsVerify?: boolean;
}

export function envOf(s: RegistrySettings | undefined): Record<string, string | undefined> {
  return s?.env ?? process.env;
}

export function homeOf(s: RegistrySettings | undefined): string {
  return envOf(s)['HOME'] || homedir();
}

/** A system path such as /etc/containers/certs.d, under `configRoot` when one is set. */
export function systemPath(s: RegistrySettings | undefined, path: string): string {
  const root = s?.configRoot ?? envOf(s)['BERTH_CONFIG_ROOT'];
  return root ? join(root, path) : path;
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** The per-host certificate roots, in lookup order. */
export function certsDirs(s: RegistrySettings | undefined): string[] {
  if (s?.certsDirs !== undefined) return s.certsDirs;
  const dirs: string[] = [];
  if (!isRoot()) dirs.push(join(homeOf(s), '.config', 'containers', 'certs.d'));
  dirs.push(systemPath(s, '/etc/containers/certs.d'), systemPath(s, '/etc/docker/certs.d'));
  return dirs;
}
