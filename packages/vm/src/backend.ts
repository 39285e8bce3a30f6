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
 * than `container` or `vm` is an `EBACKEND` error naming
 * `annotations["org.berth.backend"]`, not a silent fallback.
 */
export type SelectBackend = (
  annotations: Readonly<Record<string, string>> | undefined,
  flag?: Backend,
) => Backend;
