import { randomBytes } from 'node:crypto';
import { BerthError } from '@berth/sys';
import type { RunOptions, Runtime } from './runtime.js';

/** A container `Runtime.prepare` made, waiting just before its program's exec. */
export interface PreparedContainer {
  readonly id: string;
  /** Lets the program run; resolves with its exit status (128+N for signal N), as `Runtime.run`. */
  run(): Promise<number>;
  /** Tears it down without running it (nothing of it is left). */
  discard(): Promise<void>;
}

export interface PoolOptions extends Omit<RunOptions, 'detach' | 'keep' | 'pidFile' | 'ownedDirs'> {
  /** How many prepared containers to keep ready (at least 1). */
  size: number;
  /** The containers' ids are this and a number (default `pool-<random>-`). */
  idPrefix?: string;
}

/**
 * Prepared containers of one bundle, kept `size` ready (see `Runtime.pool`).
 * Each container is made under an id of its own, so no other id ever reaches
 * it; the ones not run are torn down by `close()` (this pool's or the Runtime's).
 */
export class SandboxPool {
  private readonly ready: PreparedContainer[] = [];
  private readonly waiters: Array<{ resolve: (p: PreparedContainer) => void; reject: (e: Error) => void }> =
    [];
  private readonly making = new Set<Promise<void>>();
  private failure: Error | undefined;
  private closed = false;
  private n = 0;
  private readonly prefix: string;
  private readonly size: number;
  private readonly runOptions: RunOptions;

  constructor(
    private readonly runtime: Runtime,
    private readonly bundle: string,
    options: PoolOptions,
  ) {
    const { size, idPrefix, ...runOptions } = options;
    if (!Number.isInteger(size) || size < 1)
      throw new BerthError(`pool: size must be a positive integer, got ${size}`, { code: 'EINVAL' });
    this.size = size;
    this.prefix = idPrefix ?? `pool-${randomBytes(4).toString('hex')}-`;
    this.runOptions = runOptions;
    this.fill();
  }

  /** Takes a prepared container (waiting for one if none is ready), runs it, and returns its exit status. */
  async run(): Promise<number> {
    if (this.closed) throw new BerthError('pool: closed', { code: 'ESTATE' });
    const prepared = await this.take();
    this.fill();
    return prepared.run();
  }

  /** How many are prepared and waiting now. */
  get available(): number {
    return this.ready.length;
  }

  /** Stops refilling, waits for the containers being made, and tears down every one not run. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new BerthError('pool: closed', { code: 'ESTATE' }));
    while (this.making.size > 0) await Promise.all(this.making);
    await Promise.all(this.ready.splice(0).map((p) => p.discard()));
  }

  private take(): Promise<PreparedContainer> {
    const p = this.ready.shift();
    if (p) return Promise.resolve(p);
    if (this.failure && this.making.size === 0) {
      // the last attempt failed: try once more for this caller, and let it see that failure if it fails again
      this.failure = undefined;
    }
    const waiting = new Promise<PreparedContainer>((resolve, reject) =>
      this.waiters.push({ resolve, reject }),
    );
    this.fill();
    return waiting;
  }

  /** Starts making containers until `size` are ready or under way (for waiters first). */
  private fill(): void {
    while (
      !this.closed &&
      !this.failure &&
      this.ready.length + this.making.size < this.size + this.waiters.length
    )
      this.makeOne();
  }

  private makeOne(): void {
    const id = `${this.prefix}${this.n++}`;
    const made: Promise<void> = this.runtime
      .prepare(id, this.bundle, this.runOptions)
      .then(
        async (prepared) => {
          if (this.closed) return prepared.discard();
          const waiter = this.waiters.shift();
          if (waiter) waiter.resolve(prepared);
          else this.ready.push(prepared);
        },
        (e: Error) => {
          // no endless retries of a bundle that cannot run: the next take() tries again
          this.failure = e;
          for (const w of this.waiters.splice(0)) w.reject(e);
        },
      )
      .finally(() => this.making.delete(made));
    this.making.add(made);
  }
}
