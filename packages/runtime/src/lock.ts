import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { BerthError } from '@berth/sys';

/**
 * A per-container lock that the kernel releases when its holder dies, however
 * it dies: a listening Unix socket in the abstract namespace. Binding the name
 * is atomic, so one berth command at a time holds a container; nothing is left
 * on disk and a crashed command never leaves a stale lock behind. (flock(2)
 * would need the FFI on every command's start-up path; this needs nothing.)
 */
export class ContainerLock {
  private constructor(private server: Server | undefined) {}

  static async acquire(root: string, id: string, timeoutMs = 30_000): Promise<ContainerLock> {
    const name = `\0berth/${createHash('sha256').update(root).digest('hex').slice(0, 24)}/${id}`;
    const deadline = Date.now() + timeoutMs;
    let delay = 2;
    for (;;) {
      const server = createServer();
      const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        server.once('error', resolve);
        server.listen(name, () => resolve(undefined));
      });
      if (!err) {
        server.unref();
        return new ContainerLock(server);
      }
      server.close();
      if (err.code !== 'EADDRINUSE') throw err;
      if (Date.now() > deadline) {
        throw new BerthError(
          `container ${id} is locked by another berth command (waited ${timeoutMs / 1000}s)`,
          {
            code: 'ELOCKED',
            path: id,
          },
        );
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 50);
    }
  }

  release(): void {
    this.server?.close();
    this.server = undefined;
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
