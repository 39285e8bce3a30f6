import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { BerthError, SysError } from './errors.js';
import { flockFd } from './fs.js';
import { spawnAddon } from './launcher.js';
import { sha256Hex } from './sha256.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

/** A lock file's name for `key`: the key itself when it is a plain, short file name, else its sha256. */
function fileName(key: string): string {
  return /^[A-Za-z0-9_+.-]{1,200}$/.test(key) && key !== '.' && key !== '..' ? key : sha256Hex(key);
}

/**
 * The lock file for `key` in `dir`, making `dir` (0700) if needed. `dir` must be this user's alone
 * (owned by it, writable by nobody else, not a symlink): whoever can open a lock file can hold it.
 */
export function lockFile(dir: string, key: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkOwn(dir, lstatSync(dir), true);
  return join(dir, fileName(key));
}

function checkOwn(
  path: string,
  st: { uid: number; mode: number; isDirectory(): boolean; isFile(): boolean },
  dir: boolean,
): void {
  const me = process.geteuid?.() ?? 0;
  if ((dir ? st.isDirectory() : st.isFile()) && st.uid === me && (st.mode & 0o022) === 0) return;
  throw new BerthError(
    `refusing lock ${dir ? 'directory' : 'file'} ${path}: it must be a ${dir ? 'directory' : 'regular file'} of uid ${me} that nobody else can write (it is uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)})`,
    { code: 'EPERM', op: 'lock', path },
  );
}

/** flock(fd, op) through the spawn addon where it is loaded (no koffi on a CLI command's path), else koffi. */
function flock(fd: number, op: number): number {
  const addon = spawnAddon();
  if (addon?.flock) {
    for (;;) {
      const r = addon.flock(fd, op);
      if (r !== -4) return r; // EINTR
    }
  }
  return flockFd(fd, op);
}

// O_NONBLOCK: a fifo planted as the lock file must not hang the open (it is refused below)
const OPEN_FLAGS = constants.O_RDONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * One attempt: the fd of `file`, locked, or undefined when another holds it. A holder may remove
 * the file as it releases it (`release({ remove: true })`): a lock taken on a file no longer at
 * `file` is let go and taken again on the file that is there now.
 */
function tryLock(file: string): number | undefined {
  for (;;) {
    let fd: number;
    try {
      fd = openSync(file, OPEN_FLAGS, 0o600);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new SysError('open lock', typeof err.errno === 'number' ? -err.errno : 5, file);
    }
    let keep = false;
    try {
      const st = fstatSync(fd);
      checkOwn(file, st, false);
      const r = flock(fd, LOCK_EX | LOCK_NB);
      if (r === -EWOULDBLOCK) return undefined;
      if (r !== 0) throw new SysError('flock', -r, file);
      let now: { ino: number; dev: number } | undefined;
      try {
        now = lstatSync(file);
      } catch {
        now = undefined; // removed by the holder we waited for
      }
      if (now?.ino === st.ino && now.dev === st.dev) {
        keep = true;
        return fd;
      }
    } finally {
      if (!keep) closeSync(fd);
    }
  }
}

export interface LockOptions {
  /** give up after this long (default 30 s) with an `ELOCKED` error */
  timeoutMs?: number;
  /** stop waiting when aborted */
  signal?: AbortSignal;
  /** what is locked, for the error message (default: the file) */
  what?: string;
  /** the error's `path` (default: the file) */
  path?: string;
}

/**
 * A lock between processes that the kernel releases when its holder dies, however it dies:
 * flock(2) on a file of this user's (see `lockFile`), in a directory nobody else can write, so
 * that no other user and no container can take it first (an abstract Unix socket, which berth
 * used before, can be bound by anyone in the network namespace: a host-network container could
 * make itself unkillable). The lock is the open file, not the file's existence: nothing stale is
 * ever taken over, and a holder only releases its own. Waiting is polling with LOCK_NB, so a
 * waiter never blocks the event loop. flock comes from the spawn addon a CLI command loads anyway,
 * else from koffi.
 */
export class ProcessLock {
  private constructor(
    readonly file: string,
    private fd: number | undefined,
  ) {}

  /** Takes the lock on `file`, waiting for its holder to release it (or die). */
  static async acquire(file: string, options: LockOptions = {}): Promise<ProcessLock> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const deadline = Date.now() + timeoutMs;
    let delay = 2;
    for (;;) {
      options.signal?.throwIfAborted();
      const fd = tryLock(file);
      if (fd !== undefined) return new ProcessLock(file, fd);
      if (Date.now() > deadline) {
        throw new BerthError(
          `${options.what ?? file} is locked by another berth command (waited ${timeoutMs / 1000}s)`,
          { code: 'ELOCKED', op: 'lock', path: options.path ?? file },
        );
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 50);
    }
  }

  /** Takes the lock on `file` if nobody holds it. */
  static async tryAcquire(file: string): Promise<ProcessLock | undefined> {
    const fd = tryLock(file);
    return fd === undefined ? undefined : new ProcessLock(file, fd);
  }

  /** Whether some process (this one included) holds the lock on `file` now; false where there is no such file. */
  static async isHeld(file: string): Promise<boolean> {
    let fd: number;
    try {
      fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch {
      return false;
    }
    try {
      const r = flock(fd, LOCK_EX | LOCK_NB);
      if (r === -EWOULDBLOCK) return true;
      if (r !== 0) throw new SysError('flock', -r, file);
      return false;
    } finally {
      closeSync(fd); // our own flock, if we got it, goes with the fd
    }
  }

  /**
   * Releases the lock; a second call does nothing. `remove` deletes the lock file first (while it is
   * still held, so that a waiter that opened it sees it gone and locks a new one): for a lock that
   * will not be needed again, such as a deleted container's.
   */
  release(options: { remove?: boolean } = {}): void {
    if (this.fd === undefined) return;
    if (options.remove) {
      try {
        unlinkSync(this.file);
      } catch {
        // already gone
      }
    }
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** Runs `fn` holding the lock on `file`. */
export async function withProcessLock<T>(
  file: string,
  fn: () => Promise<T>,
  options?: LockOptions,
): Promise<T> {
  const lock = await ProcessLock.acquire(file, options);
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
