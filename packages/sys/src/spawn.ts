import { createHash } from 'node:crypto';
import { openSync, readFileSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import { BerthError, errnoName, strerror } from './errors.js';

/**
 * Starting the launcher without forking Node.
 *
 * libuv's spawn forks the whole Node process (its page tables grow with the heap)
 * and blocks the event loop until the child has exec'd: 10–26 ms per container
 * here. glibc's posix_spawn uses clone(CLONE_VM|CLONE_VFORK): nothing is copied,
 * and the parent waits only for the execve. The launcher's fds are set with file
 * actions; `closefrom` closes every other fd in the child before the execve, so the
 * launcher holds exactly the fds it needs (the CVE-2024-21626 class: no host fd,
 * CLOEXEC or not, reaches it). Signal dispositions are reset to the defaults and
 * the signal mask emptied (Node ignores SIGPIPE; libuv does the same reset), and
 * the launcher gets a session of its own (setsid), as with `detached: true`.
 *
 * The exit is seen without blocking the event loop: on SIGCHLD (and, as a
 * fallback, every 500 ms while a child is pending; every 20 ms in a worker thread,
 * where no signal is ever delivered) each pending child is polled
 * with waitpid(pid, WNOHANG) — only ours, by pid: libuv reaps its own children by
 * pid too, so neither takes the other's.
 */

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
const WNOHANG = 1;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const O_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;
const ECHILD = 10;
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const F_ADD_SEALS = 1033;
// F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE: what the launcher checks for (run_sealed)
const SEALS = 0x1 | 0x2 | 0x4 | 0x8;
const EINTR = 4;
// glibc's opaque types, with room to spare (x86_64: 80, 336 and 128 bytes)
const FILE_ACTIONS_SIZE = 512;
const ATTR_SIZE = 1024;
const SIGSET_SIZE = 256;

/** posix_spawn's arguments: the pid written to `pid[0]`, file actions, attributes, NULL-ended argv and envp. */
type PosixSpawnArgs = [
  pid: number[],
  path: string,
  fa: Buffer,
  attr: Buffer,
  argv: (string | null)[],
  envp: (string | null)[],
];

interface Libc {
  posixSpawn(...args: PosixSpawnArgs): number;
  /** posix_spawn on libuv's thread pool; `done` runs on this thread with its return value. */
  posixSpawnAsync(...args: [...PosixSpawnArgs, done: (err: unknown, r: number) => void]): void;
  faInit(fa: Buffer): number;
  faDestroy(fa: Buffer): number;
  faDup2(fa: Buffer, fd: number, newfd: number): number;
  faClosefrom(fa: Buffer, from: number): number;
  attrInit(attr: Buffer): number;
  attrDestroy(attr: Buffer): number;
  attrSetflags(attr: Buffer, flags: number): number;
  attrSetsigdefault(attr: Buffer, set: Buffer): number;
  attrSetsigmask(attr: Buffer, set: Buffer): number;
  sigfillset(set: Buffer): number;
  sigemptyset(set: Buffer): number;
  waitpid(pid: number, status: number[], options: number): number;
  pipe2(fds: number[], flags: number): number;
  socketpair(domain: number, type: number, protocol: number, fds: number[]): number;
  dupCloexec(fd: number, min: number): number;
  memfdCreate(name: string, flags: number): number;
  addSeals(fd: number, seals: number): number;
  close(fd: number): number;
  errno(): number;
}

/** How a spawned process ended: the exit code, or the signal that killed it. */
export interface SpawnExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process started by `Spawner.spawn`: the part of ChildProcess the launcher's callers use. */
export interface SpawnedProcess {
  readonly pid: number;
  readonly exited: Promise<SpawnExit>;
  /** Sends a signal while the process is not yet reaped (its pid cannot have been reused). */
  kill(signal?: NodeJS.Signals | number): boolean;
  /** This process may exit without waiting for the child (it is still reaped if it ends first). */
  unref(): void;
}

interface Pending {
  pid: number;
  ref: boolean;
  resolve: (exit: SpawnExit) => void;
}

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]),
);

/** posix_spawn, through koffi: load it once with `loadSpawner()`. */
export class Spawner {
  private readonly pending = new Map<number, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private listening = false;
  private readonly defaults = Buffer.alloc(SIGSET_SIZE);
  private readonly mask = Buffer.alloc(SIGSET_SIZE);
  private readonly sealedCopies = new Map<string, string>();

  constructor(
    private readonly c: Libc,
    /** How often pending children are polled besides SIGCHLD (which worker threads never see). */
    private readonly pollMs = 500,
  ) {
    c.sigfillset(this.defaults);
    c.sigemptyset(this.mask);
  }

  /**
   * What to execute for the program at `path`: a sealed memfd copy of it, made once
   * per process, named by this process's /proc/PID/fd link (the child resolves it
   * in our fd table while we wait for its execve). The launcher finds itself
   * already sealed and skips its own copy-and-re-exec at every start (run_sealed
   * in launcher.c: memfd_create, sendfile, execveat): the same protection, paid
   * once. `path` itself where no memfd can be made.
   */
  executable(path: string, sha256?: string): string {
    let exec = this.sealedCopies.get(path);
    if (exec) return exec;
    exec = path;
    const fd = this.c.memfdCreate('berth-launcher', MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd >= 0) {
      let bytes: Buffer | undefined;
      try {
        bytes = readFileSync(path);
      } catch {
        // unreadable (execute-only): run by path, the launcher then seals a copy of itself
      }
      // the copy that will run is the bytes read here: checked, when the caller knows their hash
      const actual = bytes && sha256 ? createHash('sha256').update(bytes).digest('hex') : sha256;
      if (actual !== sha256) {
        this.close(fd);
        throw new BerthError(
          `${path}: sha256 ${actual} is not the ${sha256} it was verified to have; refusing to run it`,
          { code: 'ELAUNCHER', path },
        );
      }
      try {
        if (!bytes) throw new Error('unreadable');
        for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
        if (this.c.addSeals(fd, SEALS) !== 0) throw this.error('fcntl(F_ADD_SEALS)', path);
        exec = `/proc/${process.pid}/fd/${fd}`;
      } catch {
        this.close(fd);
        exec = path; // the launcher seals a copy of itself
      }
    }
    this.sealedCopies.set(path, exec);
    return exec;
  }

  /**
   * `spawn` of the sealed copy of `path` (see `executable`); should the system refuse
   * to execute that copy (an LSM, a noexec memfd policy), `path` itself from then on.
   */
  spawnSealed(
    path: string,
    argv: string[],
    env: string[],
    fds: readonly number[],
    /** the sha256 `path` must have (what is copied and run is checked against it) */
    sha256?: string,
  ): SpawnedProcess {
    const exec = this.executable(path, sha256);
    if (exec === path) return this.spawn(path, argv, env, fds);
    try {
      return this.spawn(exec, argv, env, fds);
    } catch {
      this.sealedCopies.set(path, path); // the launcher then seals a copy of itself at each start
      return this.spawn(path, argv, env, fds);
    }
  }

  /** `spawnSealed` through `spawnAsync`: this event loop goes on while the launcher execs. */
  async spawnSealedAsync(
    path: string,
    argv: string[],
    env: string[],
    fds: readonly number[],
    sha256?: string,
  ): Promise<SpawnedProcess> {
    const exec = this.executable(path, sha256);
    if (exec === path) return this.spawnAsync(path, argv, env, fds);
    // copies held across a retry: the caller may close its fds as soon as this returns
    const held: number[] = [];
    try {
      for (const fd of fds) {
        const copy = this.c.dupCloexec(fd, fds.length);
        if (copy < 0) throw this.error('fcntl(F_DUPFD_CLOEXEC)', String(fd));
        held.push(copy);
      }
      try {
        return await this.spawnAsync(exec, argv, env, held);
      } catch {
        this.sealedCopies.set(path, path); // the launcher then seals a copy of itself at each start
        return await this.spawnAsync(path, argv, env, held);
      }
    } finally {
      for (const copy of held) this.close(copy);
    }
  }

  /**
   * Closes an fd this spawner made (pipe, socketPair): with close(2) itself, since
   * Node's fs in a worker thread warns about closing fds it did not open.
   */
  close(fd: number): void {
    this.c.close(fd);
  }

  /** Writes all of `data` to a blocking fd of ours, then closes it; a reader that is gone (EPIPE) is not an error here. */
  writeAllAndClose(fd: number, data: Buffer): void {
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
    } catch {
      // the launcher exited before reading its plan: its exit status tells why
    } finally {
      this.close(fd);
    }
  }

  /** A pipe (read end, write end), both close-on-exec. */
  pipe(): [number, number] {
    const fds = [0, 0];
    if (this.c.pipe2(fds, O_CLOEXEC) < 0) throw this.error('pipe2');
    return [fds[0]!, fds[1]!];
  }

  /** A connected pair of Unix stream sockets, both close-on-exec. */
  socketPair(): [number, number] {
    const fds = [0, 0];
    if (this.c.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) throw this.error('socketpair');
    return [fds[0]!, fds[1]!];
  }

  /**
   * Runs `path` with `fds[i]` as its fd i (and no other fd), `env` as its whole
   * environment, in a new session. Throws when the program cannot be run (the
   * errno of the failed execve). This thread waits until the child has exec'd.
   */
  spawn(path: string, argv: string[], env: string[], fds: readonly number[]): SpawnedProcess {
    const actions = this.actions(fds);
    try {
      const out = [0];
      const r = this.c.posixSpawn(out, path, actions.fa, actions.attr, [...argv, null], [...env, null]);
      if (r !== 0) throw spawnError(path, r);
      return this.track(out[0]!);
    } finally {
      actions.done();
    }
  }

  /**
   * `spawn`, with posix_spawn made on libuv's thread pool: this event loop goes on while
   * the child execs (the vfork-style spawn holds its caller until then). Settles once
   * the child has exec'd, or with the error `spawn` would throw. `fds` are copied before
   * this returns: the caller may close its own at once.
   */
  spawnAsync(path: string, argv: string[], env: string[], fds: readonly number[]): Promise<SpawnedProcess> {
    const actions = this.actions(fds);
    return new Promise((resolve, reject) => {
      const out = [0];
      try {
        this.c.posixSpawnAsync(
          out,
          path,
          actions.fa,
          actions.attr,
          [...argv, null],
          [...env, null],
          (err, r) => {
            actions.done();
            if (err) reject(err);
            else if (r !== 0) reject(spawnError(path, r));
            else {
              const spawned = this.track(out[0]!);
              this.reap(); // a child that ended before it was tracked: its SIGCHLD found nobody waiting
              resolve(spawned);
            }
          },
        );
      } catch (e) {
        actions.done();
        reject(e);
      }
    });
  }

  /**
   * The file actions and attributes of one spawn: each source fd first copied above
   * every target, so that no dup2 overwrites a source a later one still needs (the
   * copies are close-on-exec, and closed by `done`), then `closefrom`; signal
   * dispositions reset, the mask emptied, a new session.
   */
  private actions(fds: readonly number[]): { fa: Buffer; attr: Buffer; done: () => void } {
    const { c } = this;
    const fa = Buffer.alloc(FILE_ACTIONS_SIZE);
    const attr = Buffer.alloc(ATTR_SIZE);
    const copies: number[] = [];
    let initialized = false;
    const done = () => {
      if (initialized) {
        c.faDestroy(fa);
        c.attrDestroy(attr);
      }
      for (const copy of copies) this.close(copy);
    };
    try {
      for (const fd of fds) {
        const copy = c.dupCloexec(fd, fds.length);
        if (copy < 0) throw this.error('fcntl(F_DUPFD_CLOEXEC)', String(fd));
        copies.push(copy);
      }
      check(c.faInit(fa), 'posix_spawn_file_actions_init');
      if (c.attrInit(attr) !== 0) {
        c.faDestroy(fa);
        throw new BerthError('posix_spawnattr_init failed', {
          code: 'ELAUNCHER',
          op: 'posix_spawnattr_init',
        });
      }
      initialized = true;
      for (const [target, copy] of copies.entries())
        check(c.faDup2(fa, copy, target), 'posix_spawn_file_actions_adddup2');
      check(c.faClosefrom(fa, fds.length), 'posix_spawn_file_actions_addclosefrom_np');
      check(
        c.attrSetflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID),
        'posix_spawnattr_setflags',
      );
      check(c.attrSetsigdefault(attr, this.defaults), 'posix_spawnattr_setsigdefault');
      check(c.attrSetsigmask(attr, this.mask), 'posix_spawnattr_setsigmask');
      return { fa, attr, done };
    } catch (e) {
      done();
      throw e;
    }
  }

  private track(pid: number): SpawnedProcess {
    let resolve!: (exit: SpawnExit) => void;
    const exited = new Promise<SpawnExit>((r) => {
      resolve = r;
    });
    const entry: Pending = { pid, ref: true, resolve };
    this.pending.set(pid, entry);
    this.listen();
    const pending = this.pending;
    return {
      pid,
      exited,
      kill: (signal: NodeJS.Signals | number = 'SIGTERM') => {
        if (!pending.has(pid)) return false;
        try {
          process.kill(pid, signal);
          return true;
        } catch {
          return false;
        }
      },
      unref: () => {
        entry.ref = false;
        this.refresh();
      },
    };
  }

  private listen(): void {
    if (!this.listening) {
      process.on('SIGCHLD', () => this.reap());
      this.listening = true;
    }
    this.refresh();
  }

  /** A timer holds the event loop while a ref'd child runs, and polls now and then should a SIGCHLD be missed. */
  private refresh(): void {
    const wanted = [...this.pending.values()].some((p) => p.ref);
    if (this.pending.size === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    if (!this.timer) this.timer = setInterval(() => this.reap(), this.pollMs);
    if (wanted) this.timer.ref();
    else this.timer.unref();
  }

  private reap(): void {
    const status = [0];
    for (const p of [...this.pending.values()]) {
      let r: number;
      do r = this.c.waitpid(p.pid, status, WNOHANG);
      while (r < 0 && this.c.errno() === EINTR);
      if (r === 0) continue;
      this.pending.delete(p.pid);
      if (r < 0) {
        // ECHILD: somebody else in this process reaped it (a waitpid(-1)): its status is lost
        if (this.c.errno() !== ECHILD) continue;
        p.resolve({ code: 255, signal: null });
        continue;
      }
      const s = status[0]!;
      const sig = s & 0x7f;
      p.resolve(
        sig === 0
          ? { code: (s >> 8) & 0xff, signal: null }
          : { code: null, signal: SIGNAL_NAMES.get(sig) ?? null },
      );
    }
    this.refresh();
  }

  private error(op: string, path?: string): BerthError {
    const errno = this.c.errno();
    return new BerthError(`${op}${path ? ` ${path}` : ''}: ${strerror(errno)}`, { code: 'ELAUNCHER', op });
  }
}

function spawnError(path: string, errno: number): BerthError {
  return new BerthError(`cannot run the launcher ${path}: ${errnoName(errno)} (${strerror(errno)})`, {
    code: 'ELAUNCHER',
    path,
    errno: errnoName(errno),
  });
}

function check(r: number, op: string): void {
  if (r !== 0) throw new BerthError(`${op}: ${strerror(r)}`, { code: 'ELAUNCHER', op });
}

let loading: Promise<Spawner | undefined> | undefined;
let loaded: Spawner | undefined;

/** The spawner once `loadSpawner()` has loaded it, else undefined. */
export function spawnerIfLoaded(): Spawner | undefined {
  return loaded;
}

/**
 * Loads posix_spawn through koffi (~5–25 ms once per process: worth it for a
 * program that starts many containers, not for a CLI that starts one). Undefined
 * when this C library lacks what the launcher's fd hygiene needs
 * (posix_spawn_file_actions_addclosefrom_np: glibc 2.34+): the caller then forks.
 */
export function loadSpawner(): Promise<Spawner | undefined> {
  loading ??= (async () => {
    try {
      const { default: koffi } = await import('koffi');
      // signals reach only the main thread: a worker polls more often instead
      const { isMainThread } = await import('node:worker_threads');
      const lib = koffi.load('libc.so.6');
      const fn = (decl: string) => lib.func(decl);
      const fcntl = lib.func('int fcntl(int fd, int cmd, ...)');
      const posixSpawn = fn(
        'int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)',
      );
      loaded = new Spawner(
        {
          posixSpawn,
          posixSpawnAsync: (...args) => posixSpawn.async(...args),
          faInit: fn('int posix_spawn_file_actions_init(void *fa)'),
          faDestroy: fn('int posix_spawn_file_actions_destroy(void *fa)'),
          faDup2: fn('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
          faClosefrom: fn('int posix_spawn_file_actions_addclosefrom_np(void *fa, int from)'),
          attrInit: fn('int posix_spawnattr_init(void *attr)'),
          attrDestroy: fn('int posix_spawnattr_destroy(void *attr)'),
          attrSetflags: fn('int posix_spawnattr_setflags(void *attr, short flags)'),
          attrSetsigdefault: fn('int posix_spawnattr_setsigdefault(void *attr, void *set)'),
          attrSetsigmask: fn('int posix_spawnattr_setsigmask(void *attr, void *set)'),
          sigfillset: fn('int sigfillset(void *set)'),
          sigemptyset: fn('int sigemptyset(void *set)'),
          waitpid: fn('int waitpid(int pid, _Out_ int *status, int options)'),
          pipe2: fn('int pipe2(_Out_ int *fds, int flags)'),
          socketpair: fn('int socketpair(int domain, int type, int protocol, _Out_ int *fds)'),
          dupCloexec: (fd, min) => fcntl(fd, F_DUPFD_CLOEXEC, 'int', min),
          memfdCreate: fn('int memfd_create(const char *name, unsigned int flags)'),
          addSeals: (fd, seals) => fcntl(fd, F_ADD_SEALS, 'int', seals),
          close: fn('int close(int fd)'),
          errno: () => koffi.errno(),
        },
        isMainThread ? 500 : 20,
      );
    } catch {
      loaded = undefined; // no koffi for this platform, or a C library without closefrom_np
    }
    return loaded;
  })();
  return loading;
}

/** Wraps our end of a socket pair as a stream on the event loop. */
export function socketFromFd(fd: number): Socket {
  return new Socket({ fd, readable: true, writable: true });
}

/** /dev/null, opened close-on-exec (the launcher gets a copy through the file actions). */
export function openDevNull(write: boolean): number {
  return openSync('/dev/null', write ? 'w' : 'r');
}
