import { readFileSync } from 'node:fs';
import { CAPABILITIES, type LinuxCapabilities } from '@berth/spec';

export interface CapabilitySets {
  bounding: bigint;
  effective: bigint;
  permitted: bigint;
  inheritable: bigint;
  ambient: bigint;
}

function mask(
  names: readonly string[] | undefined,
  allowed: bigint,
  dropped: Set<string>,
  unknown: Set<string>,
): bigint {
  let m = 0n;
  for (const name of names ?? []) {
    const n = CAPABILITIES.indexOf(name);
    if (n < 0) {
      unknown.add(name);
      continue;
    }
    const bit = 1n << BigInt(n);
    if (allowed & bit) m |= bit;
    else dropped.add(name);
  }
  return m;
}

type OwnCapField = 'CapBnd' | 'CapEff' | 'CapPrm';

/**
 * This process's capability sets from /proc/self/status (which the kernel composes whole at
 * each read), read once for as long as its credentials stay the same: only a change of user
 * (process.setuid and the like) changes them, short of capset(2) or prctl(2) from native code,
 * which berth never calls in the runtime's process.
 */
let ownCaps: { creds: string; sets: Partial<Record<OwnCapField, bigint>> } | undefined;

function credentials(): string {
  return `${process.getuid?.()}:${process.geteuid?.()}`;
}

/** A capability set of this process from /proc/self/status (`CapBnd`, `CapEff`, …); all ones if unreadable. */
export function ownCapabilitySet(field: OwnCapField): bigint {
  const creds = credentials();
  if (ownCaps?.creds !== creds) {
    const sets: Partial<Record<OwnCapField, bigint>> = {};
    try {
      const status = readFileSync('/proc/self/status', 'latin1');
      for (const f of ['CapBnd', 'CapEff', 'CapPrm'] as const) {
        const m = new RegExp(`^${f}:\\s*([0-9a-f]+)$`, 'm').exec(status);
        if (m) sets[f] = BigInt(`0x${m[1]}`);
      }
    } catch {}
    ownCaps = { creds, sets };
  }
  return ownCaps.sets[field] ?? ~0n;
}

/** The capability bounding set this process (and so any container it starts) can have. */
export function hostBoundingSet(): bigint {
  return ownCapabilitySet('CapBnd');
}

/**
 * Turns `process.capabilities` into bit masks. A capability the host's bounding
 * set lacks cannot be given to anyone: instead of failing in capset(2) with
 * EPERM, it is left out and reported in `missing`, so the caller can warn. A
 * name that is no capability at all is left out and reported in `unknown`
 * (config.md: a value that cannot be mapped is logged as a warning).
 */
export function capabilitySets(
  caps: LinuxCapabilities | undefined,
  host = hostBoundingSet(),
): { sets: CapabilitySets; missing: string[]; unknown: string[] } {
  const dropped = new Set<string>();
  const unknown = new Set<string>();
  const sets: CapabilitySets = {
    bounding: mask(caps?.bounding, host, dropped, unknown),
    effective: mask(caps?.effective, host, dropped, unknown),
    permitted: mask(caps?.permitted, host, dropped, unknown),
    inheritable: mask(caps?.inheritable, host, dropped, unknown),
    ambient: mask(caps?.ambient, host, dropped, unknown),
  };
  // The kernel raises an ambient capability only if it is also permitted and inheritable
  // (runc only warns when raising fails): keep the ones that can be raised.
  sets.ambient &= sets.permitted & sets.inheritable;
  return { sets, missing: [...dropped].sort(), unknown: [...unknown].sort() };
}
