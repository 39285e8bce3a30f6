import { readFileSync } from 'node:fs';
import { RLIMITS } from '@berth/spec';
import { ownCapabilitySet } from './caps.js';

/** RLIM_INFINITY. */
export const UNLIMITED = 0xffff_ffff_ffff_ffffn;
const CAP_SYS_RESOURCE = 24n;

let hardLimits: readonly bigint[] | undefined;

/**
 * The hard limits of this process by resource number (/proc/self/limits lists them in that
 * order). Read once: a hard limit changes only by setrlimit(2), which Node does not offer (a
 * limit lowered later by native code makes the container's setrlimit fail with EPERM, named).
 */
export function hostHardLimits(): readonly bigint[] {
  if (hardLimits) return hardLimits;
  try {
    hardLimits = Object.freeze(
      readFileSync('/proc/self/limits', 'latin1')
        .split('\n')
        .slice(1, 17)
        .map((line) => {
          const hard = line.slice(46, 67).trim();
          return hard === 'unlimited' ? UNLIMITED : BigInt(hard || 0);
        }),
    );
    return hardLimits;
  } catch {
    return [];
  }
}

/** Whether this process may raise hard limits (CAP_SYS_RESOURCE in its effective set). */
export function canRaiseLimits(): boolean {
  return ((ownCapabilitySet('CapEff') >> CAP_SYS_RESOURCE) & 1n) === 1n;
}

export interface HostLimits {
  hard: readonly bigint[];
  canRaise: boolean;
}

/**
 * The limits a container's process can really get. Without CAP_SYS_RESOURCE
 * (missing from the bounding set on some hosts) a hard limit above our own
 * cannot be set: setrlimit(2) would fail with EPERM. Instead of failing the
 * whole container on, say, podman's nofile of 1048576, clamp and say so.
 */
export function clampRlimit(
  type: string,
  soft: bigint,
  hard: bigint,
  host: HostLimits,
): { soft: bigint; hard: bigint; warning?: string } {
  const resource = RLIMITS[type];
  const max = resource === undefined ? undefined : host.hard[resource];
  if (host.canRaise || max === undefined || hard <= max) return { soft, hard };
  return {
    soft: soft > max ? max : soft,
    hard: max,
    warning: `process.rlimits: ${type} hard limit ${hard} is above this host's ${max === UNLIMITED ? 'unlimited' : max} and CAP_SYS_RESOURCE is not available: using ${max}`,
  };
}
