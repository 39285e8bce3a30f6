import { ProcessLock, sha256Hex } from '@berth/sys';

/**
 * A per-container lock that the kernel releases when its holder dies, however
 * it dies: @berth/sys's ProcessLock (a listening Unix socket in the abstract
 * namespace), keyed by the state root and the id. Ids of any valid length get
 * their own lock: a name too long for sun_path is hashed, never truncated.
 */
export class ContainerLock {
  private constructor(private lock: ProcessLock | undefined) {}

  static async acquire(root: string, id: string, timeoutMs = 30_000): Promise<ContainerLock> {
    const key = `${sha256Hex(root).slice(0, 24)}/${id}`;
    return new ContainerLock(
      await ProcessLock.acquire(key, { timeoutMs, what: `container ${id}`, path: id }),
    );
  }

  release(): void {
    this.lock?.release();
    this.lock = undefined;
  }
}

/** Runs `fn` holding the container's lock. */
export async function withLock<T>(root: string, id: string, fn: () => Promise<T>): Promise<T> {
  const lock = await ContainerLock.acquire(root, id);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}
