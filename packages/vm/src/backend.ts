import { BerthError } from '@berth/sys';

/** The two ways berth runs a bundle: namespaces on the host kernel, or a microVM with its own kernel. */
export type Backend = 'container' | 'vm';

/**
 * The annotation that selects the backend per container, so containerd and
 * podman can ask for a VM without knowing about berth: `"org.berth.backend": "vm"`
 * in config.json `annotations`.
 */
export const BACKEND_ANNOTATION = 'org.berth.backend';

/**
 * Chooses the backend: the `--backend` flag when given, else the
 * `org.berth.backend` annotation, else `container`. An annotation value other
 * than `container` or `vm` is an `EBACKEND` error naming it.
 */
export function selectBackend(
  annotations: Readonly<Record<string, string>> | undefined,
  flag?: string,
): Backend {
  if (flag !== undefined) {
    if (flag === 'container' || flag === 'vm') return flag;
    throw new BerthError(`--backend: ${JSON.stringify(flag)} is not a backend (use container or vm)`, {
      code: 'EBACKEND',
    });
  }
  const value = annotations?.[BACKEND_ANNOTATION];
  if (value === undefined || value === 'container' || value === 'vm') return value ?? 'container';
  throw new BerthError(
    `annotations["${BACKEND_ANNOTATION}"]: ${JSON.stringify(value)} is not a backend (use container or vm)`,
    { code: 'EBACKEND' },
  );
}
