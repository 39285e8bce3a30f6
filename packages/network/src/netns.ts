import { openSync } from 'node:fs';
import { BerthError } from '@berth/sys';

/**
 * A network namespace, named the ways a caller can hold one: the init process
 * of a container, a bind-mounted namespace file (`ip netns` style, or the
 * `path` of an OCI `network` namespace), or an open namespace fd.
 */
export type NetnsRef = { pid: number } | { path: string } | { fd: number };

/** Opens the namespace file behind a ref (a new fd the caller closes); `ENONETNS` when it is gone. */
export function openNetns(ref: NetnsRef): number {
  const path = 'fd' in ref ? `/proc/self/fd/${ref.fd}` : 'pid' in ref ? `/proc/${ref.pid}/ns/net` : ref.path;
  try {
    return openSync(path, 'r');
  } catch (e) {
    throw new BerthError(`network namespace ${path} does not exist (has the container exited?)`, {
      code: 'ENONETNS',
      path,
      cause: e,
    });
  }
}

export function describeNetns(ref: NetnsRef): string {
  return 'fd' in ref ? `fd ${ref.fd}` : 'pid' in ref ? `/proc/${ref.pid}/ns/net` : ref.path;
}
