/**
 * A network namespace, named the ways a caller can hold one: the init process
 * of a container, a bind-mounted namespace file (`ip netns` style, or the
 * `path` of an OCI `network` namespace), or an open namespace fd.
 */
export type NetnsRef = { pid: number } | { path: string } | { fd: number };
