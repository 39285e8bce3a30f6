import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { Server } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { BerthError, SysError } from './errors.js';
import { legacyBinding } from './handles.js';
import { sha256Hex } from './sha256.js';

/** sun_path is 108 bytes; an abstract name uses them all after its leading NUL. */
const SUN_PATH_MAX = 108;
const PREFIX = '\0berth/';

/**
 * The abstract socket name of a lock: `\0berth/<key>`, or, when that would not
 * fit in sun_path (Node would truncate it silently, so two keys could share a
 * lock, or bind would fail), `\0berth/<first bytes of key>#<sha256 of key>`.
 */
export function lockName(key: string): string {
  const name = `${PREFIX}${key}`;
  if (Buffer.byteLength(name) <= SUN_PATH_MAX) return name;
  const hash = sha256Hex(key);
  // keep a readable head for `ss -xl`; the hash alone decides identity
  const room = SUN_PATH_MAX - Buffer.byteLength(PREFIX) - hash.length - 1;
  let head = key.slice(0, room);
  while (Buffer.byteLength(head) > room) head = head.slice(0, -1);
  return `${PREFIX}${head}#${hash}`;
}

export interface LockOptions {
  /** give up after this long (default 30 s) with an `ELOCKED` error */
  timeoutMs?: number;
  /** stop waiting when aborted */
  signal?: AbortSignal;
  /** what is locked, for the error message (default: the key) */
  what?: string;
  /** the error's `path` (default: the key) */
  path?: string;
  /**
   * The abstract socket name to bind (a leading NUL) instead of `lockName(key)`: for a lock
   * other programs already take under a name of their own (the network package's, say), so
   * that they and this one still exclude each other.
   */
  name?: string;
}

/** What holds a bound name: released by closing it (or by the kernel, when the process dies). */
interface Holder {
  close(): void;
}

interface PipeWrap {
  Pipe: new (type: number) => { bind(name: string): number; close(): void };
  constants: { SERVER: number };
}

let pipeWrap: PipeWrap | null | undefined;

/**
 * libuv's pipe handle, without node:net: binding a name is all a lock needs, and a listening
 * net.Server costs a command ~2 ms more (node:net's server and its cluster module, then a
 * tick). `process.binding('pipe_wrap')` is a legacy interface (DEP0111, not deprecated at run
 * time for this module); where a Node lacks it, the lock is a net.Server as before. Both bind
 * the same address (sun_path padded with NULs), so each excludes the other.
 */
function loadPipeWrap(): PipeWrap | null {
  if (pipeWrap !== undefined) return pipeWrap;
  pipeWrap = null;
  // none where process.binding is deprecated at run time (see legacyBinding): the server then
  const b = legacyBinding('pipe_wrap') as Partial<PipeWrap> | undefined;
  if (typeof b?.Pipe === 'function' && typeof b.constants?.SERVER === 'number') pipeWrap = b as PipeWrap;
  return pipeWrap;
}

async function bind(name: string): Promise<Holder | undefined> {
  const pw = loadPipeWrap();
  if (pw) {
    const handle = new pw.Pipe(pw.constants.SERVER);
    const r = handle.bind(name);
    if (r === 0) return handle; // bound, not listening: it keeps no event loop alive
    handle.close();
    if (getSystemErrorName(r) === 'EADDRINUSE') return undefined;
    throw new SysError('bind lock', -r, name.slice(1));
  }
  return bindServer(name);
}

async function bindServer(name: string): Promise<Server | undefined> {
  const { createServer } = await import('node:net');
  const server = createServer();
  const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
    server.once('error', resolve);
    server.listen(name, () => resolve(undefined));
  });
  if (!err) {
    server.unref();
    return server;
  }
  server.close();
  if (err.code === 'EADDRINUSE') return undefined;
  throw err;
}

/**
 * A lock between processes that the kernel releases when its holder dies,
 * however it dies: a Unix socket bound (not listening) in the abstract namespace. Binding
 * a name is atomic, so there is no window where a lock exists without an
 * owner, no stale lock to take over, nothing on disk, and a holder can only
 * ever release its own lock. (flock(2) would need the FFI on every command's
 * start-up path; this needs nothing.) The abstract namespace belongs to the
 * network namespace: every berth command runs in the host's.
 */
export class ProcessLock {
  private constructor(
    readonly key: string,
    private holder: Holder | undefined,
  ) {}

  /** Takes the lock, waiting for its holder to release it (or die). */
  static async acquire(key: string, options: LockOptions = {}): Promise<ProcessLock> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const name = options.name ?? lockName(key);
    if (!name.startsWith('\0'))
      throw new BerthError(`lock ${key}: name must be an abstract socket name (a leading NUL)`, {
        code: 'EINVAL',
        op: 'lock',
        path: key,
      });
    const deadline = Date.now() + timeoutMs;
    let delay = 2;
    for (;;) {
      options.signal?.throwIfAborted();
      const holder = await bind(name);
      if (holder) return new ProcessLock(key, holder);
      if (Date.now() > deadline) {
        throw new BerthError(
          `${options.what ?? key} is locked by another berth command (waited ${timeoutMs / 1000}s)`,
          { code: 'ELOCKED', op: 'lock', path: options.path ?? key },
        );
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 50);
    }
  }

  /** Takes the lock if nobody holds it. */
  static async tryAcquire(key: string): Promise<ProcessLock | undefined> {
    const holder = await bind(lockName(key));
    return holder ? new ProcessLock(key, holder) : undefined;
  }

  /** Whether some process (this one included) holds the lock now. */
  static async isHeld(key: string): Promise<boolean> {
    const lock = await ProcessLock.tryAcquire(key);
    lock?.release();
    return lock === undefined;
  }

  /** Releases the lock; a second call does nothing. */
  release(): void {
    this.holder?.close();
    this.holder = undefined;
  }
}

/** Runs `fn` holding the lock `key`. */
export async function withProcessLock<T>(
  key: string,
  fn: () => Promise<T>,
  options?: LockOptions,
): Promise<T> {
  const lock = await ProcessLock.acquire(key, options);
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/**
 * writeFileAtomic's temp names: a tag of this module's (one per process or worker thread) and a
 * counter. The tag only has to differ between the writers of one process (worker threads share the
 * pid): a creation with O_EXCL fails rather than share a temp file, so Math.random is enough, and
 * node:crypto stays off a command's start-up path.
 */
let tmpTag: string | undefined;
let tmpCount = 0;

/**
 * Writes a file so that a reader sees the old content or the new, never a
 * part: a temp file beside it (a unique name, so concurrent writers do not
 * share one), written and fsynced, then renamed over the target. `durable:
 * false` skips the fsync, for files that do not outlive the machine's uptime
 * (container state under /run: the rename alone keeps readers from seeing a
 * part, and after a crash of the machine no container is left to describe).
 */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
  options: { durable?: boolean } = {},
): void {
  tmpTag ??= `${process.pid}.${Math.floor(Math.random() * 0x100000000).toString(16)}`;
  const tmp = `${path}.${tmpTag}.${tmpCount++}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      const buf = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
      if (options.durable !== false) fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}
