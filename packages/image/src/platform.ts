import { ImageError } from './errors.js';
import type { Descriptor, Platform } from './types.js';

const ARCH: Record<string, string> = {
  x64: 'amd64',
  ia32: '386',
  arm64: 'arm64',
  arm: 'arm',
  ppc64: 'ppc64le',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
};

export function hostPlatform(): Platform {
  const architecture = ARCH[process.arch] ?? process.arch;
  const p: Platform = { os: 'linux', architecture };
  if (architecture === 'arm64') p.variant = 'v8';
  if (architecture === 'arm') {
    const v = (process.config.variables as Record<string, unknown>)['arm_version'];
    p.variant = `v${typeof v === 'string' || typeof v === 'number' ? v : '7'}`;
  }
  return p;
}

/** `linux/arm64/v8`, `linux/amd64` (the --platform syntax of docker and podman). */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  const [os, architecture, variant] = parts;
  if (parts.length < 2 || parts.length > 3 || !os || !architecture || (parts.length === 3 && !variant)) {
    throw new ImageError('EPLATFORM', `platform ${JSON.stringify(s)}: expected os/arch or os/arch/variant`, {
      op: 'parse platform',
    });
  }
  const p: Platform = { os, architecture: normalizeArch(architecture) };
  if (variant) p.variant = variant;
  return p;
}

function normalizeArch(a: string): string {
  if (a === 'x86_64' || a === 'x86-64') return 'amd64';
  if (a === 'aarch64') return 'arm64';
  return a;
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

function variantMatches(want: Platform, have: Platform): boolean {
  if (want.variant === undefined || have.variant === undefined) {
    // arm64 manifests often omit v8; treat a missing variant as the architecture's default
    return true;
  }
  return want.variant === have.variant;
}

/**
 * Picks the manifest for `want` from an index. An exact variant wins over a missing one,
 * the way containerd's platform matcher orders candidates.
 */
export function selectPlatform(manifests: Descriptor[], want: Platform): Descriptor {
  const candidates = manifests.filter(
    (m) =>
      m.platform !== undefined &&
      m.platform.os === want.os &&
      normalizeArch(m.platform.architecture) === want.architecture &&
      variantMatches(want, m.platform),
  );
  const exact = candidates.find((m) => m.platform?.variant === want.variant);
  const chosen = exact ?? candidates[0];
  if (chosen === undefined) {
    const offered = manifests
      .map((m) => (m.platform ? formatPlatform(m.platform) : 'unknown'))
      .filter((p) => p !== 'unknown/unknown');
    throw new ImageError(
      'EPLATFORM',
      `no manifest for platform ${formatPlatform(want)}: the image offers ${offered.join(', ') || 'no platforms'}`,
      { op: 'select platform' },
    );
  }
  return chosen;
}
