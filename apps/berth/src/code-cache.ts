// The V8 code cache of the CLI's bundles (dist/cli.cjs, and dist/more.cjs, the image, network
// and VM code that only some commands load): each is compiled with a cache kept beside it, which
// is trusted exactly as the bundle is: it is used only when it is owned by the bundle's owner and
// writable by nobody else, and it is written only where the bundle is (a user who cannot write
// there runs without one). It is used only for the bundle file it was made from (its inode,
// size, mtime and ctime, in the cache's header: see sourceId), and V8 checks its own version
// and flags; otherwise it is made again. It grows to cover each command the first time
// that command succeeds (a failed run's cache stands in until then). The container lifecycle commands (what containerd runs for every
// container) each have a cache of their own: V8 deserializes a whole cache at every start, and
// `state` or `kill` needs half of what the commands together compile. Only node: builtins that
// Node has loaded already at start are used here.
import {
  closeSync,
  fstatSync,
  openSync,
  readSync,
  renameSync,
  type Stats,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { Script } from 'node:vm';

const MAGIC = 'BERTHCC1';
/** Commands with a cache file of their own (`cli.cjs.<command>.cache`); the others share `cli.cjs.cache`. */
export const OWN_CACHE = new Set(['run', 'create', 'start', 'state', 'kill', 'delete', 'exec']);

interface Cache {
  /** the commands it covers, each from a run that succeeded */
  commands: string[];
  /** the commands whose only run so far failed: it covers what they compiled before that */
  partial: string[];
  data: Buffer | undefined;
}

/** The command this run is for: the first word after the global options (which may take a value). */
export function commandOf(argv: string[]): string {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) return a;
    if (!a.includes('=') && (a === '--root' || a === '--log' || a === '--log-format')) i++;
  }
  return '';
}

/**
 * The rest of the file at `fd`, read into `buf` when it fits: the bundle and then its cache go
 * through one buffer. On the development VM every fresh page of memory costs a ~15 µs fault:
 * each byte not copied, and each page not touched anew, shows in a command's start-up.
 */
function readAll(fd: number, buf: Buffer): Buffer {
  let n = 0;
  for (;;) {
    if (n === buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, 65536));
      buf.copy(bigger, 0, 0, n);
      buf = bigger;
    }
    const k = readSync(fd, buf, n, buf.length - n, null);
    if (k === 0) return buf.subarray(0, n);
    n += k;
  }
}

/**
 * The bundle file a cache was made from: V8 checks a cache against the source's length only
 * (and its own version and flags), so a bundle changed in place to one of the same length (a
 * version bump from 0.1.0 to 0.1.1, say) would otherwise run the old build's cached code. A
 * new install or build is a new inode, an edit moves the ctime, which no user can set back.
 */
function sourceId(st: Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

function readCache(cacheFile: string, ownerUid: number, scratch: Buffer, source: string): Cache {
  const none: Cache = { commands: [], partial: [], data: undefined };
  let fd: number;
  try {
    fd = openSync(cacheFile, 'r');
  } catch {
    return none;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.uid !== ownerUid || (st.mode & 0o022) !== 0) return none;
    const buf = readAll(fd, st.size < scratch.length ? scratch : Buffer.allocUnsafe(st.size + 1));
    if (buf.toString('latin1', 0, 8) !== MAGIC || buf.length < 12) return none;
    const headerLength = buf.readUInt32LE(8);
    const header = JSON.parse(buf.toString('utf8', 12, 12 + headerLength)) as {
      commands?: unknown;
      partial?: unknown;
      source?: unknown;
    };
    if (header.source !== source) return none; // made from another bundle file
    const strings = (v: unknown): string[] =>
      Array.isArray(v) ? v.filter((c): c is string => typeof c === 'string') : [];
    return {
      commands: strings(header.commands),
      partial: strings(header.partial),
      data: buf.subarray(12 + headerLength),
    };
  } catch {
    return none;
  } finally {
    closeSync(fd);
  }
}

function writeCache(
  cacheFile: string,
  script: Script,
  commands: string[],
  partial: string[],
  source: string,
): void {
  const tmp = `${cacheFile}.${process.pid}.tmp`;
  let fd: number | undefined;
  try {
    const data = script.createCachedData();
    const header = Buffer.from(JSON.stringify({ commands, partial, source }));
    const head = Buffer.alloc(12);
    head.write(MAGIC, 0, 'latin1');
    head.writeUInt32LE(header.length, 8);
    fd = openSync(tmp, 'wx', 0o644);
    writeSync(fd, head);
    writeSync(fd, header);
    writeSync(fd, data);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, cacheFile);
  } catch {
    // not ours to write (another user's install, a read-only tree): run without a cache
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {}
  }
}

/**
 * `file`, one of the CLI's bundles, compiled for `command` (with its cache when V8 takes it); the
 * cache is rewritten at exit when it should grow. The bundle is one function expression (see
 * tsup.config.ts), compiled as it is: no module wrapper around it, so V8 does not copy it into
 * one flat string again (and a #! line at the very start of a script is valid).
 */
export function compileCached(file: string, command: string): Script {
  const fd = openSync(file, 'r');
  const st = fstatSync(fd);
  // one byte more than its size: the read that finds the end needs room, not a bigger buffer
  const bytes = readAll(fd, Buffer.allocUnsafe(st.size + 1));
  closeSync(fd);
  // Read as latin1: esbuild writes ASCII-only code (it escapes every other character in strings),
  // so other bytes can only be in comments. A one-byte string is half the memory of the two-byte
  // one a single "→" in a comment would make, and V8 keeps it for the functions it compiles late.
  const text = bytes.toString('latin1');
  const cacheFile = OWN_CACHE.has(command) ? `${file}.${command}.cache` : `${file}.cache`;
  const source = sourceId(st);
  const cache = readCache(cacheFile, st.uid, bytes, source);
  const script = new Script(text, {
    filename: file,
    ...(cache.data ? { cachedData: cache.data } : {}),
  });
  const stale = !cache.data || script.cachedDataRejected === true;
  if (stale || !cache.commands.includes(command)) {
    // At exit: the cache then also holds every function this command compiled. A command that
    // failed (a typo, a container that does not exist) stopped early and compiled only part of
    // what it runs; such a cache is kept only until the command first succeeds, else one early
    // error would slow every later run of it by what it never compiled (~13 ms for `run`).
    process.once('exit', (code) => {
      const ok = code === 0;
      if (!ok && !stale && cache.partial.includes(command)) return; // no better than what is there
      const commands = stale ? [] : cache.commands.slice();
      const partial = stale ? [] : cache.partial.filter((c) => c !== command);
      (ok ? commands : partial).push(command);
      writeCache(cacheFile, script, commands, partial, source);
    });
  }
  return script;
}
