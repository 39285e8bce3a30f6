import {
  accessSync,
  closeSync,
  constants,
  type Dirent,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  write,
  writeSync,
} from 'node:fs';
import { CgroupError, errnoOf } from './errors.js';

// cgroupfs files live in kernel memory: a synchronous call takes microseconds,
// far less than a round trip through libuv's thread pool, and a container's
// start-up makes dozens of them.

/**
 * A cgroup file's path: `file` is a name (a controller's file, or a unified key, which
 * validateResources keeps free of `/` and `..`) in a directory this package computed. Joined
 * without path.join, whose per-character normalisation is, run a few dozen times per
 * container, hot enough for V8 to optimise it in a short-lived CLI (megabytes of peak memory).
 */
export function fileIn(dir: string, file: string): string {
  return dir.endsWith('/') ? `${dir}${file}` : `${dir}/${file}`;
}

/**
 * cgroupfs refuses O_CREAT: without it a missing file is a clear ENOENT; O_TRUNC as runc, for
 * plain-file test trees. `offThread`: the write(2) goes to libuv's thread pool, for a write the
 * kernel may block on (the first cgroup.procs write of a join).
 */
export async function writeCgroupFile(
  dir: string,
  file: string,
  value: string,
  offThread = false,
): Promise<void> {
  const path = fileIn(dir, file);
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC);
    if (offThread) await writeOffThread(fd, value);
    else writeSync(fd, value);
  } catch (err) {
    throw writeError(path, value, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * writeCgroupFile for a run of writes: the file stays open while the writes that follow
 * go to it (each write(2) is a value of its own to the kernel), and is closed when
 * another file is written or by `close`. Errors are writeCgroupFile's.
 */
export class CgroupFileWriter {
  private path: string | undefined;
  private fd: number | undefined;

  write(dir: string, file: string, value: string): void {
    const path = fileIn(dir, file);
    try {
      if (path !== this.path) {
        this.close();
        this.fd = openSync(path, constants.O_WRONLY | constants.O_TRUNC);
        this.path = path;
      }
      writeSync(this.fd as number, value);
    } catch (err) {
      this.close();
      throw writeError(path, value, err);
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.path = undefined;
  }
}

function writeError(path: string, value: string, err: unknown): CgroupError {
  const errno = errnoOf(err);
  return new CgroupError({
    code: 'EIO',
    op: 'write',
    path,
    errno,
    message: `write ${JSON.stringify(value)} to ${path}: ${errno ?? String(err)}`,
    cause: err,
  });
}

function writeOffThread(fd: number, value: string): Promise<void> {
  return new Promise((resolve, reject) => write(fd, value, (err) => (err ? reject(err) : resolve())));
}

export async function readCgroupFile(dir: string, file: string): Promise<string> {
  const path = fileIn(dir, file);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const errno = errnoOf(err);
    throw new CgroupError({
      code: errno === 'ENOENT' ? 'ENOTFOUND' : 'EIO',
      op: 'read',
      path,
      errno,
      message: `read ${path}: ${errno ?? String(err)}`,
      cause: err,
    });
  }
}

/** Stats tolerate absent files: a kernel without swap accounting simply has no memsw files. */
export async function readOptional(dir: string, file: string): Promise<string | undefined> {
  try {
    return readFileSync(fileIn(dir, file), 'utf8');
  } catch {
    return undefined;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    accessSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Parses a single-number file; `max` maps to `Number.MAX_SAFE_INTEGER` only where the caller asks. */
export function parseUint(text: string | undefined, maxValue = 0): number {
  if (text === undefined) return 0;
  const t = text.trim();
  if (t === 'max') return maxValue;
  const n = Number(t);
  return Number.isFinite(n) ? n : 0;
}

/** `key value` lines (memory.stat, cpu.stat, memory.events). */
export function parseKeyValues(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  if (text === undefined) return out;
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) {
      const n = Number(v);
      if (Number.isFinite(n)) out[k] = n;
    }
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The cgroups below `dir` (directories a process in the container made: a cgroup namespace
 * with a writable cgroupfs allows it), deepest first; not `dir` itself. Missing: none.
 */
export function descendantCgroups(dir: string): string[] {
  const out: string[] = [];
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const sub = `${dir}/${e.name}`;
    out.push(...descendantCgroups(sub), sub);
  }
  return out;
}

/**
 * rmdir on a cgroup returns EBUSY while the kernel still tears down exited
 * tasks, so retry with backoff instead of failing on the first attempt. Child
 * cgroups go first, deepest first (as runc's RemovePath).
 */
export async function removeCgroupDir(path: string, timeoutMs = 5000): Promise<void> {
  for (const sub of descendantCgroups(path)) await removeCgroupDir(sub, timeoutMs);
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      rmdirSync(path);
      return;
    } catch (err) {
      const errno = errnoOf(err);
      if (errno === 'ENOENT') return;
      if (errno !== 'EBUSY' || Date.now() > deadline) {
        throw new CgroupError({
          code: errno === 'EBUSY' ? 'EBUSY' : 'EIO',
          op: 'rmdir',
          path,
          errno,
          message:
            errno === 'EBUSY'
              ? `remove cgroup ${path}: still busy after ${timeoutMs} ms (processes or child cgroups remain)`
              : `remove cgroup ${path}: ${errno ?? String(err)}`,
          cause: err,
        });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 200);
    }
  }
}
