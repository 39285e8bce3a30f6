// Seccomp profiles for `berth run IMAGE`: the default one (data/seccomp-default.json,
// the allow-list Docker and podman ship), `--security-opt seccomp=unconfined`, or
// `seccomp=FILE` (an OCI `linux.seccomp` object, or a profile in Docker's format
// with archMap and includes/excludes, as podman's and Docker's files are).
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import type { LinuxSeccomp, LinuxSyscall, Spec } from '@berth/spec';
import { BerthError, nativeSeccompArch } from '@berth/sys';
import defaultProfile from './data/seccomp-default.json' with { type: 'json' };

/** A profile in Docker's format (a superset of OCI's `linux.seccomp`). */
export interface DockerSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] | null }> | null;
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: Array<
    LinuxSyscall & {
      name?: string;
      comment?: string;
      includes?: Filter;
      excludes?: Filter;
    }
  >;
}

interface Filter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

/** Go's name for this machine's architecture, as Docker profiles spell it. */
function goArch(): string {
  const map: Record<string, string> = {
    x64: 'amd64',
    ia32: '386',
    arm64: 'arm64',
    arm: 'arm',
    ppc64: 'ppc64le',
    s390x: 's390x',
    riscv64: 'riscv64',
    loong64: 'loong64',
    mips: 'mips',
    mipsel: 'mipsle',
  };
  return map[process.arch] ?? process.arch;
}

/** Docker's arch names: amd64 also answers to x86_64, 386 to x86. */
function archMatches(list: readonly string[], arch: string): boolean {
  const aliases: Record<string, string[]> = { amd64: ['amd64', 'x86_64'], '386': ['386', 'x86'] };
  return list.some((a) => (aliases[arch] ?? [arch]).includes(a));
}

function kernelAtLeast(min: string, have = release()): boolean {
  const parse = (v: string) =>
    v
      .split(/[.-]/)
      .slice(0, 2)
      .map((n) => Number.parseInt(n, 10) || 0);
  const [a = 0, b = 0] = parse(have);
  const [x = 0, y = 0] = parse(min);
  return a > x || (a === x && b >= y);
}

/**
 * Turns a Docker-format profile into the OCI `linux.seccomp` for a container
 * with the bounding set `caps`, on this machine's architecture and kernel
 * (Docker's rules: includes.caps needs all of them, excludes.caps none).
 */
export function resolveProfile(profile: DockerSeccompProfile, caps: readonly string[]): LinuxSeccomp {
  const arch = goArch();
  const native = nativeSeccompArch();
  let architectures = profile.architectures;
  if (!architectures?.length && profile.archMap?.length) {
    const entry = profile.archMap.find((m) => m.architecture === native);
    architectures = entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : undefined;
  }
  const have = new Set(caps);
  const syscalls: LinuxSyscall[] = [];
  for (const rule of profile.syscalls ?? []) {
    const inc = rule.includes ?? {};
    const exc = rule.excludes ?? {};
    if (inc.caps?.length && !inc.caps.every((c) => have.has(c))) continue;
    if (inc.arches?.length && !archMatches(inc.arches, arch)) continue;
    if (inc.minKernel && !kernelAtLeast(inc.minKernel)) continue;
    if (exc.caps?.some((c) => have.has(c))) continue;
    if (exc.arches?.length && archMatches(exc.arches, arch)) continue;
    if (exc.minKernel && kernelAtLeast(exc.minKernel)) continue;
    const names = rule.names?.length ? rule.names : rule.name ? [rule.name] : [];
    if (!names.length) continue;
    syscalls.push({
      names,
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args?.length ? { args: rule.args } : {}),
    });
  }
  return {
    defaultAction: profile.defaultAction as LinuxSeccomp['defaultAction'],
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures?.length ? { architectures } : {}),
    ...(profile.flags?.length ? { flags: profile.flags } : {}),
    ...(profile.listenerPath ? { listenerPath: profile.listenerPath } : {}),
    ...(profile.listenerMetadata ? { listenerMetadata: profile.listenerMetadata } : {}),
    syscalls,
  };
}

/** The default profile for a container with bounding set `caps`. */
export function defaultSeccomp(caps: readonly string[]): LinuxSeccomp {
  return resolveProfile(defaultProfile as DockerSeccompProfile, caps);
}

/**
 * What `--security-opt seccomp=…` asks for: `unconfined` (no filter), a
 * profile file, or (no option) the default profile. Returns the function
 * `makeImageBundle` calls with the finished config.
 */
export function seccompOption(value: string | undefined): (spec: Spec) => LinuxSeccomp | undefined {
  if (value === 'unconfined') return () => undefined;
  let profile: DockerSeccompProfile = defaultProfile as DockerSeccompProfile;
  if (value !== undefined) {
    let text: string;
    try {
      text = readFileSync(value, 'utf8');
    } catch (e) {
      throw new BerthError(
        `--security-opt seccomp=${value}: cannot read the profile: ${(e as Error).message}`,
        {
          code: 'ENOTFOUND',
          path: value,
        },
      );
    }
    try {
      profile = JSON.parse(text) as DockerSeccompProfile;
    } catch (e) {
      throw new BerthError(`--security-opt seccomp=${value}: not JSON: ${(e as Error).message}`, {
        code: 'EINVALID',
        path: value,
      });
    }
    if (typeof profile !== 'object' || profile === null || typeof profile.defaultAction !== 'string')
      throw new BerthError(`--security-opt seccomp=${value}: a seccomp profile needs a defaultAction`, {
        code: 'EINVALID',
        path: value,
      });
  }
  return (spec) => resolveProfile(profile, spec.process?.capabilities?.bounding ?? []);
}
