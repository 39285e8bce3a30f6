// Node's own libuv handles (process_wrap, pipe_wrap, stream_wrap), used directly where
// node:child_process and node:net would cost a command more than the handle does: loading
// those two (and the stream machinery, dgram and perf hooks with them) costs a CLI command
// ~6-8 ms and ~1.9 MiB of peak RSS, while spawning the launcher and talking to it over two
// socket pairs needs none of it. These are legacy interfaces (`process.binding`, DEP0111,
// not deprecated at run time for these modules); wherever they are missing, changed, or
// deprecated at run time, `nodeHandles()` answers null and callers use the public modules.
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { BerthError, errnoName } from './errors.js';

interface HandleWrap {
  close(): void;
  ref(): void;
  unref(): void;
}

interface ProcessHandle extends HandleWrap {
  pid: number;
  onexit: (exitCode: number, signalCode: string) => void;
  spawn(options: object): number;
  kill(signal: number): number;
}

interface StreamHandle extends HandleWrap {
  open(fd: number): number;
  onread: (arrayBuffer: ArrayBuffer) => void;
  readStart(): number;
  readStop(): number;
  writeBuffer(req: WriteReq, data: Uint8Array): number;
}

interface WriteReq {
  handle: StreamHandle;
  oncomplete: (status: number) => void;
  async: boolean;
  buffer?: Uint8Array;
}

/** The legacy bindings, as far as this module uses them. */
export interface NodeHandles {
  Pipe: new (type: number) => StreamHandle;
  SOCKET: number;
  Process: new () => ProcessHandle;
  WriteWrap: new () => WriteReq;
  state: Int32Array;
  kReadBytesOrError: number;
  kArrayBufferOffset: number;
  kLastWriteWasAsync: number;
}

let handles: NodeHandles | null | undefined;

/**
 * `process.binding(name)` where it is the plain legacy function: where process.binding is
 * deprecated at run time (pending deprecations on, or a Node that deprecates it) it is
 * util.deprecate's wrapper, which warns (DEP0111) and, with --throw-deprecation, throws a
 * tick later; then, as where there is none, undefined.
 */
export function legacyBinding(name: string): Record<string, unknown> | undefined {
  const binding = (process as unknown as { binding?: ((m: string) => unknown) & { name?: string } }).binding;
  if (typeof binding !== 'function' || binding.name !== 'binding') return undefined;
  try {
    const b = binding(name);
    return b && typeof b === 'object' ? (b as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The handles, or null where this Node does not give them as this module knows them. */
export function nodeHandles(): NodeHandles | null {
  if (handles !== undefined) return handles;
  handles = null;
  const pipe = legacyBinding('pipe_wrap');
  const proc = legacyBinding('process_wrap');
  const stream = legacyBinding('stream_wrap');
  const constants = pipe?.['constants'] as { SOCKET?: unknown } | undefined;
  const fn = (v: unknown) => typeof v === 'function';
  const int = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  if (
    fn(pipe?.['Pipe']) &&
    int(constants?.SOCKET) &&
    fn(proc?.['Process']) &&
    fn(stream?.['WriteWrap']) &&
    stream?.['streamBaseState'] instanceof Int32Array &&
    int(stream['kReadBytesOrError']) &&
    int(stream['kArrayBufferOffset']) &&
    int(stream['kLastWriteWasAsync'])
  ) {
    const Pipe = pipe!['Pipe'] as NodeHandles['Pipe'];
    const Process = proc!['Process'] as NodeHandles['Process'];
    const p = Pipe.prototype as unknown as Record<string, unknown>;
    const methods = ['open', 'readStart', 'readStop', 'writeBuffer', 'close', 'ref', 'unref'];
    if (
      methods.every((m) => fn(p[m])) &&
      ['spawn', 'kill', 'close', 'unref'].every((m) =>
        fn((Process.prototype as unknown as Record<string, unknown>)[m]),
      )
    )
      handles = {
        Pipe,
        SOCKET: constants!.SOCKET as number,
        Process,
        WriteWrap: stream['WriteWrap'] as NodeHandles['WriteWrap'],
        state: stream['streamBaseState'] as Int32Array,
        kReadBytesOrError: stream['kReadBytesOrError'] as number,
        kArrayBufferOffset: stream['kArrayBufferOffset'] as number,
        kLastWriteWasAsync: stream['kLastWriteWasAsync'] as number,
      };
  }
  return handles;
}

// biome-ignore lint/suspicious/noExplicitAny: a listener of 'data' (a Buffer) or of 'close'
type Listener = (arg?: any) => void;

/**
 * One end of a socket pair on the event loop, as far as the launcher's conversation needs a
 * stream: 'data' while it reads, 'close' once, after end-of-file, an error or `destroy()`;
 * `write` never throws (a peer that is gone is the caller's to learn from its exit).
 */
export class HandleChannel {
  destroyed = false;
  private readonly listeners = new Map<string, Listener[]>();
  private reading = false;
  private paused = false;
  private pendingWrites = 0;
  private endAfterWrites = false;

  constructor(
    private readonly h: NodeHandles,
    private readonly handle: StreamHandle,
  ) {
    handle.onread = (arrayBuffer) => this.onRead(arrayBuffer);
  }

  on(event: 'data', listener: (chunk: Buffer) => void): this;
  on(event: 'close' | 'error', listener: () => void): this;
  on(event: 'data' | 'close' | 'error', listener: Listener): this {
    const list = this.listeners.get(event);
    if (list) list.push(listener);
    else this.listeners.set(event, [listener]);
    if (event === 'data') this.startReading();
    return this;
  }

  private emit(event: string, arg?: unknown): void {
    for (const l of this.listeners.get(event) ?? []) l(arg);
  }

  private startReading(): void {
    if (this.reading || this.paused || this.destroyed) return;
    this.reading = true;
    if (this.handle.readStart() !== 0) this.destroy();
  }

  private onRead(arrayBuffer: ArrayBuffer): void {
    const n = this.h.state[this.h.kReadBytesOrError]!;
    if (n > 0) {
      if (!this.destroyed)
        this.emit('data', Buffer.from(arrayBuffer, this.h.state[this.h.kArrayBufferOffset]!, n));
      return;
    }
    if (n === 0) return;
    this.destroy(); // end-of-file, or a read error: the conversation is over either way
  }

  pause(): this {
    this.paused = true;
    if (this.reading && !this.destroyed) this.handle.readStop();
    this.reading = false;
    return this;
  }

  resume(): this {
    this.paused = false;
    if (this.listeners.has('data')) this.startReading();
    return this;
  }

  /** Writes `data` (a string as latin1); its bytes stay referenced until libuv has sent them. */
  write(data: string | Uint8Array): boolean {
    if (this.destroyed) return false;
    const buf = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    const req = new this.h.WriteWrap();
    req.handle = this.handle;
    req.async = false;
    req.oncomplete = () => {
      this.pendingWrites--;
      if (this.pendingWrites === 0 && this.endAfterWrites) this.destroy();
    };
    if (this.handle.writeBuffer(req, buf) !== 0) return false;
    if (this.h.state[this.h.kLastWriteWasAsync]) {
      req.buffer = buf;
      this.pendingWrites++;
    }
    return true;
  }

  /** Writes `data`, then closes this end once it is all sent. */
  end(data?: string | Uint8Array): void {
    if (data !== undefined) this.write(data);
    this.endAfterWrites = true;
    if (this.pendingWrites === 0) this.destroy();
  }

  /** Closes this end (a write still queued is dropped); 'close' follows on the next tick. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    if (this.reading) this.handle.readStop();
    this.reading = false;
    this.handle.close();
    process.nextTick(() => this.emit('close'));
  }
}

/** Our end of a socket pair made elsewhere (`fd`, which the channel then owns), on the event loop. */
export function channelFromFd(h: NodeHandles, fd: number): HandleChannel | undefined {
  const handle = new h.Pipe(h.SOCKET);
  if (handle.open(fd) !== 0) {
    handle.close();
    return undefined;
  }
  return new HandleChannel(h, handle);
}

/** A process started through the Process handle. */
export interface HandleProcess {
  /** undefined when it could not be started (`exited` says why) */
  readonly pid: number | undefined;
  /** Its exit: the code, or the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal while it is not yet reaped (libuv reaps it: its pid cannot have been reused). */
  kill(signal?: NodeJS.Signals | number): boolean;
  /** This process may exit without waiting for it. */
  unref(): void;
}

/**
 * berth's spawn addon (native/spawn-addon.c): posix_spawn, a socket pair and a waitpid of one
 * pid, for a Node process that has not loaded koffi (the CLI).
 */
export interface SpawnAddon {
  /** The pid, or -errno; `fds[i]` becomes fd i (-1: /dev/null for 0-2, else closed), all else is closed. */
  spawn(path: string, argv: string[], envp: string[], fds: number[], setsid: boolean): number;
  /** Two connected CLOEXEC Unix stream sockets, or -errno. */
  socketpair(): [number, number] | number;
  /** `pid`'s wait status once it has exited, -1 while it runs, or -errno. */
  reap(pid: number): number;
  /** flock(2): 0, or -errno (absent from addons built before it existed). */
  flock?(fd: number, op: number): number;
}

const loadedAddons = new Map<string, SpawnAddon | null>();

/**
 * The addon at `file` (which the caller has verified: see prebuiltSpawnAddon), loaded once with
 * process.dlopen; null where it does not load here (another C library, another Node ABI) or is
 * not what this module knows.
 */
export function loadSpawnAddon(file: string): SpawnAddon | null {
  let addon = loadedAddons.get(file);
  if (addon !== undefined) return addon;
  addon = null;
  try {
    const m = { exports: {} as Record<string, unknown> };
    process.dlopen(m, file);
    if (['spawn', 'socketpair', 'reap'].every((f) => typeof m.exports[f] === 'function'))
      addon = m.exports as unknown as SpawnAddon;
  } catch {
    // libuv's spawn then
  }
  loadedAddons.set(file, addon);
  return addon;
}

/**
 * Starts `file` as libuv does for child_process.spawn (fork and exec, in a new session when
 * `detached`), with `fds[i]` as its fd i ('ignore': none) and, after those, one new socket
 * pair per `channels`, whose other ends are returned. A program that cannot be run is not
 * thrown here but, as child_process reports it, later: `exited` rejects (naming it and the
 * errno) and the channels close. With `addon`, an absolute `file` is started with posix_spawn
 * instead of a fork (see native/spawn-addon.c): the same fds and no other, nothing blocked,
 * signals at their defaults except glibc's internal 32 and 33, which posix_spawn leaves
 * ignored (the launcher resets them: use it for the launcher); its exit is seen on SIGCHLD
 * (and polled every 500 ms should one be missed).
 */
export function spawnWithHandles(
  h: NodeHandles,
  file: string,
  args: string[],
  env: string[],
  fds: ReadonlyArray<number | 'ignore'>,
  channels: number,
  detached: boolean,
  /** what `file` is, in a spawn error ("cannot run the launcher: spawn … ENOENT") */
  what = 'the launcher',
  addon?: SpawnAddon | null,
): { process: HandleProcess; channels: HandleChannel[] } {
  if (addon && file.startsWith('/')) {
    const spawned = spawnWithAddon(h, addon, file, args, env, fds, channels, detached, what);
    if (spawned) return spawned;
  }
  const pipes = Array.from({ length: channels }, () => new h.Pipe(h.SOCKET));
  const stdio = [
    ...fds.map((fd) => (fd === 'ignore' ? { type: 'ignore' } : { type: 'fd', fd })),
    ...pipes.map((handle) => ({ type: 'pipe', readable: true, writable: true, handle })),
  ];
  const proc = new h.Process();
  const { exited, settle, fail } = exitPromise();
  let alive = true;
  proc.onexit = (exitCode, signalCode) => {
    alive = false;
    proc.close();
    if (exitCode < 0 && !signalCode) fail(spawnError(what, file, exitCode));
    else
      settle(
        signalCode ? { code: null, signal: signalCode as NodeJS.Signals } : { code: exitCode, signal: null },
      );
  };
  const err = proc.spawn({ file, args: [file, ...args], envPairs: env, stdio, detached });
  const started = err === 0;
  if (!started) {
    alive = false;
    proc.close();
    fail(spawnError(what, file, err));
  }
  const pid = started ? proc.pid : undefined;
  const ends = pipes.map((p) => new HandleChannel(h, p));
  if (!started) for (const c of ends) c.destroy();
  return {
    process: {
      pid,
      exited,
      kill: (signal: NodeJS.Signals | number = 'SIGTERM') => {
        if (!alive) return false;
        const n = typeof signal === 'number' ? signal : osConstants.signals[signal];
        return n !== undefined && proc.kill(n) === 0;
      },
      unref: () => proc.unref(),
    },
    channels: ends,
  };
}

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/** A process's `exited` promise, with what settles it. */
function exitPromise(): { exited: Promise<Exit>; settle: (exit: Exit) => void; fail: (e: Error) => void } {
  let settle!: (exit: Exit) => void;
  let fail!: (e: Error) => void;
  const exited = new Promise<Exit>((resolve, reject) => {
    settle = resolve;
    fail = reject;
  });
  return { exited, settle, fail };
}

/** spawnWithHandles through the addon; undefined when no socket pair can be made (libuv then). */
function spawnWithAddon(
  h: NodeHandles,
  addon: SpawnAddon,
  file: string,
  args: string[],
  env: string[],
  fds: ReadonlyArray<number | 'ignore'>,
  channels: number,
  detached: boolean,
  what: string,
): { process: HandleProcess; channels: HandleChannel[] } | undefined {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < channels; i++) {
    const p = addon.socketpair();
    if (typeof p === 'number') {
      for (const q of pairs) for (const fd of q) closeSync(fd);
      return undefined;
    }
    pairs.push(p);
  }
  const { exited, settle, fail } = exitPromise();
  let alive = true;
  const reaped = (status: number) => {
    alive = false;
    if (status < 0)
      settle({ code: 255, signal: null }); // reaped by someone else: its status is lost
    else if ((status & 0x7f) === 0) settle({ code: (status >> 8) & 0xff, signal: null });
    else settle({ code: null, signal: signalName(status & 0x7f) });
  };
  const pid = addon.spawn(
    file,
    [file, ...args],
    env,
    [...fds.map((fd) => (fd === 'ignore' ? -1 : fd)), ...pairs.map((p) => p[1])],
    detached,
  );
  for (const p of pairs) closeSync(p[1]);
  if (pid <= 0) {
    alive = false;
    for (const p of pairs) closeSync(p[0]);
    fail(spawnError(what, file, pid));
    const ends = pairs.map(() => new HandleChannel(h, new h.Pipe(h.SOCKET)));
    for (const c of ends) c.destroy();
    return { process: { pid: undefined, exited, kill: () => false, unref: () => {} }, channels: ends };
  }
  const child: AddonChild = { pid, addon, ref: true, reaped };
  watch(child);
  const ends: HandleChannel[] = [];
  for (const p of pairs) {
    const c = channelFromFd(h, p[0]);
    if (c) ends.push(c);
    else {
      closeSync(p[0]);
      const dead = new HandleChannel(h, new h.Pipe(h.SOCKET));
      dead.destroy();
      ends.push(dead);
    }
  }
  return {
    process: {
      pid,
      exited,
      kill: (signal: NodeJS.Signals | number = 'SIGTERM') => {
        if (!alive) return false; // reaped: its pid may be another process's now
        const n = typeof signal === 'number' ? signal : osConstants.signals[signal];
        if (n === undefined) return false;
        try {
          process.kill(pid, n);
          return true;
        } catch {
          return false;
        }
      },
      unref: () => {
        child.ref = false;
        refresh();
      },
    },
    channels: ends,
  };
}

/** A child started through the addon, until it is reaped. */
interface AddonChild {
  pid: number;
  addon: SpawnAddon;
  /** Holds the event loop while it runs (HandleProcess.unref: no longer). */
  ref: boolean;
  reaped: (status: number) => void;
}

// One SIGCHLD listener and one timer for every child started through the addon: each SIGCHLD
// (any child's, libuv's own too) polls the pending ones by pid, and the timer polls every 500 ms
// should a signal be missed; it holds the event loop while a ref'd child runs.
const pendingChildren = new Map<number, AddonChild>();
let reapTimer: NodeJS.Timeout | undefined;

function watch(child: AddonChild): void {
  if (pendingChildren.size === 0) process.on('SIGCHLD', reapChildren);
  pendingChildren.set(child.pid, child);
  refresh();
  reapChildren(); // it may have ended before the listener was there
}

function reapChildren(): void {
  for (const c of [...pendingChildren.values()]) {
    const status = c.addon.reap(c.pid);
    if (status === -1) continue;
    pendingChildren.delete(c.pid);
    c.reaped(status);
  }
  refresh();
}

function refresh(): void {
  if (pendingChildren.size === 0) {
    process.removeListener('SIGCHLD', reapChildren);
    if (reapTimer) clearInterval(reapTimer);
    reapTimer = undefined;
    return;
  }
  reapTimer ??= setInterval(reapChildren, 500);
  if ([...pendingChildren.values()].some((c) => c.ref)) reapTimer.ref();
  else reapTimer.unref();
}

/** A signal's name from its number (SIGKILL for 9). */
function signalName(n: number): NodeJS.Signals {
  for (const [name, value] of Object.entries(osConstants.signals))
    if (value === n) return name as NodeJS.Signals;
  return `SIG${n}` as NodeJS.Signals;
}

function spawnError(what: string, file: string, err: number): BerthError {
  const name = errnoName(err);
  return new BerthError(`cannot run ${what}: spawn ${file} ${name}`, {
    code: 'ELAUNCHER',
    op: 'spawn',
    path: file,
    errno: name,
  });
}

/** A program's exit and what it wrote. */
export interface CapturedOutput {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `file` (looked up on PATH as execvp does) with `args`, stdin /dev/null and this process's
 * environment, and returns its exit and its output (UTF-8). A program that cannot be run
 * rejects with `ELAUNCHER` and its errno (`ENOENT`: not installed); one that writes more than
 * `maxBuffer` bytes is killed and rejects with `EOUTPUT`. Through Node's handles where they are
 * given (a command that runs `nft`, say, then loads neither child_process nor net), else
 * through child_process.
 */
export function captureOutput(
  file: string,
  args: string[],
  options: { maxBuffer?: number } = {},
): Promise<CapturedOutput> {
  const maxBuffer = options.maxBuffer ?? 1 << 20;
  const h = nodeHandles();
  const env = Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  return new Promise((resolve, reject) => {
    const out: Buffer[][] = [[], []];
    let size = 0;
    let tooMuch = false;
    let open = 2;
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const finish = () => {
      if (open > 0 || !exit) return;
      if (tooMuch)
        reject(new BerthError(`${file} wrote more than ${maxBuffer} bytes`, { code: 'EOUTPUT', path: file }));
      else
        resolve({
          ...exit,
          stdout: Buffer.concat(out[0]!).toString('utf8'),
          stderr: Buffer.concat(out[1]!).toString('utf8'),
        });
    };
    const collect = (i: number, kill: () => void) => (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBuffer) {
        if (!tooMuch) kill();
        tooMuch = true;
        return;
      }
      out[i]!.push(chunk);
    };
    const ended = () => {
      open--;
      finish();
    };
    const exited = (e: { code: number | null; signal: NodeJS.Signals | null }) => {
      exit = e;
      finish();
    };
    if (h) {
      const started = spawnWithHandles(h, file, args, env, ['ignore'], 2, false, file);
      const kill = () => started.process.kill('SIGKILL');
      started.channels.forEach((c, i) => {
        c.on('data', collect(i, kill));
        c.on('close', ended);
      });
      started.process.exited.then(exited, (e: Error) => {
        for (const c of started.channels) c.destroy();
        reject(e);
      });
      return;
    }
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const kill = () => child.kill('SIGKILL');
    [child.stdout!, child.stderr!].forEach((stream, i) => {
      stream.on('data', collect(i, kill));
      stream.on('close', ended);
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      const name = e.code ?? 'EIO';
      reject(
        new BerthError(`cannot run ${file}: spawn ${file} ${name}`, {
          code: 'ELAUNCHER',
          op: 'spawn',
          path: file,
          errno: name,
          cause: e,
        }),
      );
    });
    child.on('exit', (code, signal) => exited({ code, signal }));
  });
}
