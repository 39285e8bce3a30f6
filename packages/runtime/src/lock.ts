import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { lockFile, ProcessLock } from '@berth/sys';

/** The directory of a state root's container locks: not a valid container id, so never a container's. */
export const LOCK_DIR = '@locks';

/**
 * A per-container lock that the kernel releases when its holder dies, however it dies:
 * @berth/sys's ProcessLock, flock(2) on `<root>/@locks/<id>` (a directory only the runtime's
 * user can enter, so no other user and no container can take a container's lock first). The
 * lock file goes when the container does.
 */
export class ContainerLock {
  private constructor(
    private lock: ProcessLock | undefined,
    private readonly stateDir: string,
  ) {}

  static async acquire(root: string, id: string, timeoutMs = 30_000): Promise<ContainerLock> {
    // the root as a create makes it (0711: a user namespace's root searches it for its staged
    // binds), before lockFile makes its @locks inside (0700)
    mkdirSync(root, { recursive: true, mode: 0o711 });
    const file = lockFile(join(root, LOCK_DIR), id);
    return new ContainerLock(
      await ProcessLock.acquire(file, { timeoutMs, what: `container ${id}`, path: id }),
      join(root, id),
    );
  }

  /** Releases the lock; its file is removed when the container no longer exists (deleted, or never made). */
  release(): void {
    this.lock?.release({ remove: !existsSync(this.stateDir) });
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
