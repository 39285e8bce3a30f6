import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { cpus, totalmem } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { BerthError, encodePlan, LaunchError, type PlanStep } from '@berth/sys';
import { type AccelChoice, chooseAccel } from './accel.js';
import { writeCpio } from './cpio.js';
import { envOverride } from './env.js';
import { DEFAULT_KERNEL_DIR, ensureKernel, type GuestKernel, NET_ONLY_MODULES } from './kernel.js';
import { guestCmdline, planQemu, runFiles } from './machine.js';
import { guestBinaries } from './native.js';
import type { VmSize } from './resources.js';
import type { RootfsShare } from './share.js';
import type { ExitStatus } from './stdio.js';

/** One of the container's standard streams on the host: an fd, this process's, or nowhere. */
export type VmStdio = number | 'inherit' | 'ignore';

/** What the runtime hands the backend at `create`. */
export interface VmCreateRequest {
  id: string;
  /** The host path of the container's root filesystem (shared into the guest at the same path). */
  rootfs: string;
  readonly: boolean;
  /** The launcher plan to run in the guest, in foreground form: it stops at sync 2 until `start`. */
  steps: readonly PlanStep[];
  /** Private directory of this VM (sockets, logs); made here, removed by `delete`. */
  runDir: string;
  size: VmSize;
  /** The container's stdin, stdout and stderr on the host side. */
  stdio?: [VmStdio, VmStdio, VmStdio];
  /**
   * Host files the plan binds (resolv.conf, hosts, …): copied into the guest
   * at the same path when it boots (a VM cannot bind a host file).
   */
  files?: Array<{ path: string; data: Uint8Array }>;
  /** Host directories the plan binds: `path` (real) shared by 9p and mounted in the guest at `guestPath`. */
  shares?: Array<{ path: string; guestPath?: string; readonly: boolean }>;
  /** Where the guest mounts the rootfs share (default: its host path, so the host's plan runs unchanged). */
  guestPath?: string;
  /** Mount a cgroup2 hierarchy on the guest's /sys/fs/cgroup before the plan runs. */
  cgroup2?: boolean;
  /** Run the process at once instead of holding it at "created" until `start` (`run`: create and start in one). */
  autostart?: boolean;
  /** Extra kernel command line words. */
  cmdline?: string[];
  /** How long boot may take before `create` gives up (default 120 s: TCG is slow). */
  timeoutMs?: number;
  /**
   * An overlay snapshot (an image's layers and the container's upper dir):
   * mounted on `rootfs` on the host before QEMU shares it, unmounted by `delete`.
   */
  overlay?: { lower: string[]; upper: string; work: string };
  /** Called once QEMU runs, before the guest is up: the place to record the VM for a later cleanup. */
  onSpawn?: (record: VmRecord) => void;
  /**
   * Called with berth-vmm's pid before it starts QEMU (it waits for this
   * meanwhile): the place to put it in the container's cgroup, so QEMU and
   * all its threads are made there. A rejection ends berth-vmm, QEMU never
   * having run, and fails the create.
   */
  beforeRun?: (pid: number) => Promise<void>;
  /**
   * A NIC on a host bridge: `tap` is a tap device the caller made (on the
   * bridge, up); the guest's interface with `mac` gets `address` (CIDR) and a
   * default route via `gateway`, set by the agent before the plan runs.
   */
  net?: VmNet;
}

/** The NIC of a VM: the host's tap and the guest's address. */
export interface VmNet {
  tap: string;
  mac: string;
  /** `10.77.0.5/16`. */
  address: string;
  gateway: string;
}

/** A locally administered unicast MAC from a guest's IPv4 address (02:b7 + the address), as Docker derives one. */
export function macFromAddress(address: string): string {
  const parts = address.split('/')[0]!.split('.').map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isInteger(n) || n < 0 || n > 255))
    throw new BerthError(`VM NIC: ${JSON.stringify(address)} is not an IPv4 address`, { code: 'EAGENT' });
  return ['02', 'b7', ...parts.map((n) => n.toString(16).padStart(2, '0'))].join(':');
}

/**
 * What the runtime stores in state.json for a VM container: enough for a
 * later `berth start/kill/delete` process (containerd runs one per command)
 * to find the VM again.
 */
export interface VmRecord {
  /** The VM's host process: berth-vmm, QEMU's parent (its exit status is the container's). */
  qemuPid: number;
  /** /proc/PID/stat start time of that process, to tell it from a reused pid. */
  qemuStartTime: number;
  runDir: string;
  accel: AccelChoice;
  size: VmSize;
  share: RootfsShare;
  kernel: { version: string; source: string };
  /** The container's process inside the guest. */
  guestPid?: number;
  /** A mount made on the host for this VM (the overlay snapshot on the rootfs), removed by `delete`. */
  hostMount?: string;
  /** The VM's NIC: the host tap it is attached to and the guest's address. */
  net?: VmNet;
  /** Whether the VM has a virtio-balloon device (`update --memory`); absent in records of older VMs. */
  balloon?: boolean;
}

/** What the host offers the VM backend, for `berth features` and for error messages. */
export interface VmHostSupport {
  /** The qemu-system binary, or undefined when none is installed. */
  qemu?: string;
  accel: AccelChoice;
  /** A static C compiler for the guest agent (musl-gcc), or undefined. */
  muslGcc?: string;
}

export type VmStatus = 'creating' | 'created' | 'running' | 'stopped';

/** Where berth keeps what all VMs share: the kernel cache and the guest binaries. */
export function vmCacheDir(): string {
  return envOverride('BERTH_VM_CACHE') ?? '/var/lib/berth/vm';
}

function which(name: string): string | undefined {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(delimiter)) {
    const p = join(dir, name);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The qemu-system binary for this machine's architecture. */
export function findQemu(): string {
  const name = process.arch === 'arm64' ? 'qemu-system-aarch64' : 'qemu-system-x86_64';
  const found = envOverride('BERTH_QEMU') ?? which(name);
  if (!found) {
    throw new BerthError(`the VM backend needs ${name}: apt-get install qemu-system-x86`, {
      code: 'ENOQEMU',
    });
  }
  return found;
}

/** What this host offers the VM backend. */
export function probeVm(): VmHostSupport {
  const qemu = envOverride('BERTH_QEMU') ?? which('qemu-system-x86_64');
  const musl = envOverride('BERTH_MUSL_GCC') ?? which('musl-gcc');
  return {
    ...(qemu ? { qemu } : {}),
    accel: chooseAccel(undefined, qemu),
    ...(musl ? { muslGcc: musl } : {}),
  };
}

function startTime(pid: number): number | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
    return Number(rest[19]);
  } catch {
    return undefined;
  }
}

/** What the guest reported, as berth-vmm keeps it (`parseStatus`). */
export interface GuestState {
  /** The container's pid in the guest (`created PID`). */
  created?: number;
  started: boolean;
  /** A plan step that failed in the guest. */
  error?: { step: number; errno: number; syscall: string };
  /** The container's exit status (128+N for signal N). */
  exit?: number;
  /** The agent could not run the plan at all. */
  fail?: string;
  /** How many exec'd processes have exited, and the last one's status. */
  execs: number;
  lastExec?: number;
  /** Status lines berth-vmm ignored: too long, malformed or unknown (a guest that is not berth's agent). */
  faults: number;
}

/** The most of the status file berth reads: berth-vmm writes a few short lines. */
export const STATUS_READ_MAX = 4096;

function int(word: string | undefined, max: number): number | undefined {
  if (word === undefined || !/^\d{1,10}$/.test(word)) return undefined;
  const n = Number(word);
  return n <= max ? n : undefined;
}

/**
 * The status file berth-vmm writes from the guest's `berth.status` port (it
 * parses the guest's lines, bounded, and keeps only this): `created PID`,
 * `started`, `error STEP ERRNO SYSCALL`, `fail ERRNO WHAT`, `execs COUNT LAST`,
 * `exit CODE`, `faults COUNT`. Reads at most STATUS_READ_MAX characters;
 * anything else is ignored.
 */
export function parseStatus(text: string): GuestState {
  const out: GuestState = { started: false, execs: 0, faults: 0 };
  for (const line of text.slice(0, STATUS_READ_MAX).split('\n')) {
    const [word, a, b, ...rest] = line.split(' ');
    if (word === 'created') {
      const pid = int(a, 2 ** 31 - 1);
      if (pid) out.created = pid;
    } else if (word === 'started') out.started = true;
    else if (word === 'error') {
      const step = int(a, 1_000_000);
      const errno = int(b, 4095);
      if (step !== undefined && errno !== undefined)
        out.error = { step, errno, syscall: rest.join(' ').replace(/_/g, ' ') };
    } else if (word === 'exit') {
      const code = int(a, 255);
      if (code !== undefined) out.exit = code;
    } else if (word === 'execs') {
      const count = int(a, Number.MAX_SAFE_INTEGER);
      const code = int(b, 255);
      if (count !== undefined && code !== undefined) {
        out.execs = count;
        out.lastExec = code;
      }
    } else if (word === 'fail') out.fail = `${[b, ...rest].join(' ')} (errno ${a})`;
    else if (word === 'faults') out.faults = int(a, Number.MAX_SAFE_INTEGER) ?? 0;
  }
  return out;
}

/** At most `max` bytes of a regular file, from its start or its last `max` bytes; '' when it cannot be read. */
export function readBounded(path: string, max: number, fromEnd = false): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return '';
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return '';
    const buf = Buffer.alloc(max);
    const at = fromEnd ? Math.max(0, st.size - max) : 0;
    let n = 0;
    while (n < max) {
      const r = readSync(fd, buf, n, max - n, at + n);
      if (r <= 0) break;
      n += r;
    }
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return '';
  } finally {
    closeSync(fd);
  }
}

/** The last lines of a log (read from its last 64 KiB, and the file it was rotated to before that). */
function tail(path: string, lines = 8, older?: string): string {
  const text = (older ? readBounded(older, 65536, true) : '') + readBounded(path, 65536, true);
  return text.trim().split('\n').slice(-lines).join('\n');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * How long the guest's agent may take to answer a command. It answers `start`,
 * `kill` and `exec` at once (a signal sent, a launcher spawned), so this only
 * has to cover a guest starved by TCG on a loaded host, not a boot.
 */
export const AGENT_ANSWER_MS = 10_000;
/** How long `kill SIGKILL` waits for the agent before the host stops the VM itself. */
export const AGENT_KILL_ANSWER_MS = 3_000;
/** The longest answer the agent gives (`ok`, `err ERRNO`): anything longer is not the agent's. */
export const AGENT_ANSWER_MAX = 64;
/** The longest line berth reads from QEMU's monitor (its replies to berth's few commands are small). */
const QMP_LINE_MAX = 1 << 20;

/** One VM container: found again from its record by any later berth process. */
export class Vm {
  constructor(
    readonly id: string,
    readonly record: VmRecord,
  ) {}

  private get files() {
    return runFiles(this.record.runDir);
  }

  /** Whether QEMU (this record's, not a reused pid) still runs. */
  alive(): boolean {
    return startTime(this.record.qemuPid) === this.record.qemuStartTime;
  }

  /** What the guest reported, as berth-vmm parsed and kept it (a few bytes, read bounded). */
  guestState(): GuestState {
    return parseStatus(readBounded(this.files.status, STATUS_READ_MAX));
  }

  /**
   * The VM's status: `stopped` only once berth-vmm (and with it QEMU) is gone;
   * while it runs, whatever the guest says (an `exit` it reports ends the VM
   * within berth-vmm's grace period), the VM is `created` or `running`.
   */
  status(): VmStatus {
    if (!this.alive()) return 'stopped';
    const s = this.guestState();
    if (s.started) return 'running';
    return s.created !== undefined ? 'created' : 'creating';
  }

  /** The container's exit status as the guest reported it, once the VM is gone. */
  exitStatus(): number | undefined {
    return this.alive() ? undefined : this.guestState().exit;
  }

  /**
   * Sends one command line to the agent and reads its answer: `ok` or `err
   * ERRNO`, at most AGENT_ANSWER_MAX bytes within `timeoutMs`. Anything else
   * (a longer line, no line in time, the channel closed) is the guest not
   * answering as berth's agent does: an EAGENT error with `unanswered` set,
   * and nothing more of it is read.
   */
  async command(line: string, payload?: Uint8Array, timeoutMs = AGENT_ANSWER_MS): Promise<void> {
    if (!this.alive())
      throw new BerthError(`container ${this.id}: its VM is not running`, { code: 'ESTATE' });
    const sock = await connectUnix(this.files.ctl);
    const what = `"${line.split(' ')[0]}"`;
    try {
      sock.write(`${line}\n`);
      if (payload) sock.write(payload);
      // a QEMU that is gone ends the socket, and the read with it, at once
      const answer = await readAnswer(sock, timeoutMs).catch((e: Error) => {
        throw Object.assign(
          new BerthError(`container ${this.id}: ${what}: ${e.message}`, { code: 'EAGENT' }),
          {
            unanswered: true,
          },
        );
      });
      if (answer === 'ok') return;
      const errno = Number(/^err (\d{1,4})$/.exec(answer)?.[1] ?? 0);
      throw new BerthError(
        `container ${this.id}: the VM agent refused ${what}${errno ? ` (errno ${errno})` : `: ${JSON.stringify(answer)}`}`,
        { code: errno === 3 ? 'ESTATE' : 'EAGENT' },
      );
    } finally {
      sock.destroy();
    }
  }

  /** `berth start`: the process held at its last sync point execs. */
  async start(): Promise<void> {
    await this.command('start');
  }

  /**
   * A signal to the container's process in the guest (or with `all` to every
   * process there). SIGKILL ends the container whatever the guest does: when
   * the agent does not answer (in AGENT_KILL_ANSWER_MS, or not as the agent
   * answers), the host stops the VM itself (`stop`).
   */
  async kill(signal: number, options: { all?: boolean } = {}): Promise<void> {
    const line = `${options.all ? 'killall' : 'kill'} ${signal}`;
    if (signal !== 9) return this.command(line);
    try {
      await this.command(line, undefined, AGENT_KILL_ANSWER_MS);
    } catch (e) {
      if (!(e as { unanswered?: boolean }).unanswered) throw e;
      await this.stop();
    }
  }

  /**
   * Ends the VM from the host, without the guest: QEMU gets SIGKILL, and
   * berth-vmm, its parent, exits as for a container killed by SIGKILL (137)
   * once it has collected what QEMU wrote. Resolves once berth-vmm is gone.
   */
  async stop(): Promise<void> {
    if (!this.alive()) return;
    const children = childrenOf(this.record.qemuPid);
    // berth-vmm's children are QEMU only; a child not yet reaped keeps its pid
    for (const pid of children) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    const deadline = Date.now() + 5_000;
    while (this.alive() && Date.now() < deadline) await sleep(5);
    // no QEMU found, or berth-vmm did not exit: it goes too (QEMU dies with it)
    if (this.alive()) await this.killHost();
  }

  /**
   * One command to QEMU's monitor (QMP, a socket in the run directory): its
   * `return` value, or an error naming the command and QEMU's reason.
   */
  async qmp(execute: string, args?: Record<string, unknown>): Promise<unknown> {
    if (!this.alive())
      throw new BerthError(`container ${this.id}: its VM is not running`, { code: 'ESTATE' });
    const sock = await connectUnix(this.files.qmp);
    try {
      const lines = lineReader(sock, 10_000, `QEMU's monitor (${execute})`);
      const reply = async (): Promise<{ return?: unknown; error?: { desc?: string } }> => {
        for (;;) {
          const msg = JSON.parse(await lines()) as { return?: unknown; error?: { desc?: string } };
          if ('return' in msg || 'error' in msg) return msg; // skip the greeting and events
        }
      };
      await lines(); // {"QMP": {...}}
      sock.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`);
      await reply();
      sock.write(`${JSON.stringify({ execute, ...(args ? { arguments: args } : {}) })}\n`);
      const r = await reply();
      if (r.error) {
        throw new BerthError(
          `container ${this.id}: QEMU refused ${execute}: ${r.error.desc ?? 'no reason given'}`,
          {
            code: 'EQEMU',
          },
        );
      }
      return r.return;
    } finally {
      sock.destroy();
    }
  }

  /** `berth pause`: stops the VM's vCPUs (QMP `stop`): every process in the guest is suspended, its clock too. */
  async pause(): Promise<void> {
    await this.qmp('stop');
  }

  /** `berth resume`: the vCPUs run again (QMP `cont`). */
  async resume(): Promise<void> {
    await this.qmp('cont');
  }

  /** Whether QEMU has the vCPUs stopped (QMP `query-status`). */
  async paused(): Promise<boolean> {
    const r = (await this.qmp('query-status')) as { status?: string; running?: boolean };
    return r.running === false && r.status === 'paused';
  }

  /**
   * `update --memory`: the balloon target (QMP `balloon`), the memory the guest
   * keeps, in MiB. The most is the size the VM booted with (the balloon only
   * takes memory back); the guest's virtio_balloon inflates to it, and its
   * MemTotal shrinks by as much.
   */
  async setMemory(targetMiB: number): Promise<void> {
    if (!this.record.balloon) {
      throw new BerthError(`container ${this.id}: its VM has no balloon device (made by an older berth)`, {
        code: 'EUNSUPPORTED',
      });
    }
    const max = this.record.size.memoryMiB;
    if (!Number.isInteger(targetMiB) || targetMiB < 1 || targetMiB > max) {
      throw new BerthError(
        `container ${this.id}: the VM's memory can be set from 1 MiB up to the ${max} MiB it booted with, not ${targetMiB} MiB`,
        { code: 'EVMSIZE' },
      );
    }
    await this.qmp('balloon', { value: targetMiB * 1024 * 1024 });
  }

  /** The memory the guest has now, in bytes (QMP `query-balloon`: its size less the balloon). */
  async memoryBytes(): Promise<number> {
    const r = (await this.qmp('query-balloon')) as { actual?: number };
    return Number(r.actual);
  }

  /** Resolves when the container's process has exited and QEMU is gone: its status (128+N for signal N). */
  async wait(): Promise<ExitStatus> {
    let delay = 2;
    while (this.alive()) {
      await sleep(delay);
      delay = Math.min(delay * 2, 10);
    }
    const s = this.guestState();
    if (s.exit === undefined) {
      throw new BerthError(
        `container ${this.id}: the VM stopped without an exit status\n${tail(this.files.console, 8, this.files.consoleOld)}`,
        {
          code: 'EQEMU',
        },
      );
    }
    return s.exit > 128 && s.exit < 128 + 65 ? { signal: s.exit - 128 } : { code: s.exit };
  }

  /**
   * Runs another process in the running guest (its plan joins the container's
   * namespaces there), its stdio relayed over the exec ports; resolves with
   * its exit status (128+N for signal N).
   */
  async exec(
    steps: readonly PlanStep[],
    stdio: [Readable | null, Writable | null, Writable | null],
  ): Promise<number> {
    const before = this.guestState().execs;
    const f = this.files;
    const [xin, xout, xerr] = await Promise.all([
      connectUnix(f.execIn),
      connectUnix(f.execOut),
      connectUnix(f.execErr),
    ]);
    const drained = Promise.all(
      [xout, xerr].map((s) => new Promise<void>((r) => s.once('close', () => r()))),
    );
    let lastData = Date.now();
    xout.on('data', (d: Buffer) => {
      lastData = Date.now();
      stdio[1]?.write(d);
    });
    xerr.on('data', (d: Buffer) => {
      lastData = Date.now();
      stdio[2]?.write(d);
    });
    xin.on('error', () => {});
    try {
      await this.command(`exec ${encodePlan(steps).length}`, encodePlan(steps));
      if (stdio[0]) {
        stdio[0].pipe(xin);
      } else {
        xin.end();
      }
      for (;;) {
        const s = this.guestState();
        if (s.execs > before && s.lastExec !== undefined) {
          // the output ports and the status port are separate channels: let the output settle
          while (Date.now() - lastData < 100) await sleep(20);
          return s.lastExec;
        }
        if (!this.alive())
          throw new BerthError(`container ${this.id}: the VM stopped during exec`, { code: 'ESTATE' });
        await sleep(10);
      }
    } finally {
      if (stdio[0]) stdio[0].unpipe(xin);
      for (const s of [xin, xout, xerr]) s.destroy();
      await Promise.race([drained, sleep(100)]);
    }
  }

  /** Stops QEMU if it runs and removes the run directory; idempotent. */
  async delete(): Promise<void> {
    await this.killHost();
    if (this.record.hostMount) {
      const { libc, MNT_DETACH } = await import('@berth/sys');
      try {
        (await libc()).umount(this.record.hostMount, MNT_DETACH);
      } catch (e) {
        const code = (e as { errno?: string }).errno;
        if (code !== 'EINVAL' && code !== 'ENOENT') throw e;
      }
    }
    rmSync(this.record.runDir, { recursive: true, force: true });
  }

  /** SIGKILL to berth-vmm (QEMU dies with it); resolves once both are gone. */
  private async killHost(): Promise<void> {
    if (this.alive()) {
      // QEMU itself (berth-vmm's child) dies with its parent, and is waited for too
      const children = childrenOf(this.record.qemuPid).map((pid) => ({ pid, start: startTime(pid) }));
      try {
        process.kill(this.record.qemuPid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
      const deadline = Date.now() + 10_000;
      const running = () =>
        this.alive() || children.some((c) => c.start !== undefined && startTime(c.pid) === c.start);
      while (running()) {
        if (Date.now() > deadline) {
          throw new BerthError(
            `container ${this.id}: QEMU (pid ${this.record.qemuPid}) did not exit after SIGKILL`,
            {
              code: 'EBUSY',
            },
          );
        }
        await sleep(5);
      }
    }
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(' ')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', (e) =>
      reject(new BerthError(`VM agent socket ${path}: ${e.message}`, { code: 'EAGENT', path, cause: e })),
    );
  });
}

/** Reads a socket line by line: each call resolves with the next line, or rejects after `timeoutMs`. */
function lineReader(sock: Socket, timeoutMs: number, what: string): () => Promise<string> {
  let buf = '';
  let closed = false;
  let waiting: { resolve: (l: string) => void; reject: (e: Error) => void } | undefined;
  const pump = () => {
    if (!waiting) return;
    const nl = buf.indexOf('\n');
    if (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiting;
      waiting = undefined;
      w.resolve(line);
    } else if (closed) {
      const w = waiting;
      waiting = undefined;
      w.reject(new BerthError(`${what} closed the connection`, { code: 'EQEMU' }));
    }
  };
  sock.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    if (buf.length > QMP_LINE_MAX && buf.indexOf('\n') < 0) {
      buf = '';
      closed = true;
      sock.destroy();
    }
    pump();
  });
  sock.once('close', () => {
    closed = true;
    pump();
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting = undefined;
        reject(new BerthError(`${what} did not answer`, { code: 'EQEMU' }));
      }, timeoutMs);
      waiting = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      pump();
    });
}

/**
 * The agent's answer: one line of at most AGENT_ANSWER_MAX bytes within
 * `timeoutMs`. Fails at once on a longer line, and reads nothing more.
 */
function readAnswer(sock: Socket, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const buf = Buffer.alloc(AGENT_ANSWER_MAX);
    let have = 0;
    const done = (err: Error | undefined, line?: string) => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('close', onClose);
      if (err) {
        sock.destroy();
        reject(err);
      } else resolve(line!);
    };
    const timer = setTimeout(
      () => done(new BerthError(`the VM agent did not answer in ${timeoutMs / 1000} s`, { code: 'EAGENT' })),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      const nl = d.indexOf(0x0a);
      const take = nl >= 0 ? nl : d.length;
      if (have + take > AGENT_ANSWER_MAX) {
        done(
          new BerthError(`the VM agent's answer is longer than ${AGENT_ANSWER_MAX} bytes: not the agent's`, {
            code: 'EAGENT',
          }),
        );
        return;
      }
      d.copy(buf, have, 0, take);
      have += take;
      if (nl >= 0) done(undefined, buf.subarray(0, have).toString('latin1'));
    };
    const onClose = () => done(new BerthError('the VM agent closed the control channel', { code: 'EAGENT' }));
    sock.on('data', onData);
    sock.once('close', onClose);
  });
}

/** The host's CPUs and memory, the bounds of a VM's size. */
export function hostSize(): { cpus: number; memoryMiB: number } {
  return { cpus: cpus().length, memoryMiB: Math.floor(totalmem() / (1 << 20)) };
}

/** The initramfs of one VM: the agent as /init, the launcher, the modules in load order, /config and /plan. */
export function buildInitramfs(
  kernel: GuestKernel,
  bins: { agent: string; launcher: string },
  config: Array<[string, string]>,
  plan: Uint8Array,
  files: ReadonlyArray<{ path: string; data: Uint8Array }> = [],
): Buffer {
  for (const [k, v] of config) {
    if (/[\n=]/.test(k) || v.includes('\n'))
      throw new BerthError(`VM config ${k}: no newlines`, { code: 'EAGENT' });
  }
  return writeCpio([
    { type: 'dir', path: 'dev' },
    { type: 'char', path: 'dev/console', major: 5, minor: 1 },
    { type: 'dir', path: 'proc' },
    { type: 'dir', path: 'sys' },
    { type: 'dir', path: 'modules', mode: 0o700 },
    ...kernel.modules.map((m) => ({
      type: 'file' as const,
      path: `modules/${m.file.split('/').pop()}`,
      data: readFileSync(m.path),
      mode: 0o600,
    })),
    { type: 'dir', path: 'files', mode: 0o700 },
    ...files.map((f, i) => ({ type: 'file' as const, path: `files/${i}`, data: f.data, mode: 0o600 })),
    { type: 'file', path: 'init', data: readFileSync(bins.agent), mode: 0o700 },
    { type: 'file', path: 'berth-launcher', data: readFileSync(bins.launcher), mode: 0o700 },
    {
      type: 'file',
      path: 'config',
      data: Buffer.from(config.map(([k, v]) => `${k}=${v}\n`).join('')),
      mode: 0o600,
    },
    { type: 'file', path: 'plan', data: plan, mode: 0o600 },
  ]);
}

function isSocket(fd: number): boolean {
  try {
    return fstatSync(fd).isSocket();
  } catch {
    return false;
  }
}

function stdioFd(s: VmStdio, fallback: number, flags: number): { fd: number; close: boolean } {
  if (typeof s === 'number') return { fd: s, close: false };
  if (s === 'ignore') return { fd: openSync('/dev/null', flags), close: true };
  return { fd: fallback, close: false };
}

/**
 * Boots a microVM for a container and runs its plan in the guest up to the
 * point where it waits for `start` ("created"). QEMU outlives this process: it
 * holds the container's stdio, as a container's own process would.
 */
export async function createVm(req: VmCreateRequest): Promise<Vm> {
  const qemu = findQemu();
  let hostMount: string | undefined;
  if (req.overlay) {
    const { lower, upper, work } = req.overlay;
    const { libc } = await import('@berth/sys');
    (await libc()).mount(
      'overlay',
      req.rootfs,
      'overlay',
      0,
      `lowerdir=${lower.join(':')},upperdir=${upper},workdir=${work}`,
    );
    hostMount = req.rootfs;
  }
  try {
    return await boot(req, qemu, hostMount);
  } catch (e) {
    if (hostMount) {
      const { libc, MNT_DETACH } = await import('@berth/sys');
      await libc()
        .then((l) => l.umount(hostMount, MNT_DETACH))
        .catch(() => {});
    }
    throw e;
  }
}

async function boot(req: VmCreateRequest, qemu: string, hostMount: string | undefined): Promise<Vm> {
  if (req.net) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(req.net.tap))
      throw new BerthError(`VM NIC: bad tap name ${JSON.stringify(req.net.tap)}`, { code: 'EAGENT' });
    if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(req.net.mac))
      throw new BerthError(`VM NIC: bad MAC ${JSON.stringify(req.net.mac)}`, { code: 'EAGENT' });
  }
  // the rootfs QEMU serves: its real path, a directory, opened once by QEMU at start
  let rootfs: string;
  try {
    rootfs = realpathSync(req.rootfs);
    if (!statSync(rootfs).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new BerthError(`root.path: ${req.rootfs}: ${(e as Error).message}`, {
      code: 'ESHARE',
      path: req.rootfs,
    });
  }
  if (rootfs !== req.rootfs && !req.guestPath) {
    // the plan names the rootfs by the host path; the guest mounts the share there
    throw new BerthError(`root.path: ${req.rootfs} resolves to ${rootfs}: give the VM backend a real path`, {
      code: 'ESHARE',
      path: req.rootfs,
    });
  }
  const cache = vmCacheDir();
  const kernel = ensureKernel(guestKernelChoice(cache));
  const bins = guestBinaries(join(cache, 'bin'));
  const accel = chooseAccel(undefined, qemu);
  // passthrough: owners and modes as the guest sets them, as a container's would be
  // (mapped-xattr would keep a guest root from making setuid-root files on the host, but
  // cannot read the symlinks an image brings)
  const share: RootfsShare = {
    kind: '9p',
    path: rootfs,
    tag: 'rootfs',
    securityModel: 'passthrough',
    readonly: req.readonly,
  };
  mkdirSync(req.runDir, { mode: 0o700 });
  const files = runFiles(req.runDir);
  const initrd = buildInitramfs(
    // virtio_net and its dependencies only when there is a NIC: every module costs boot time
    { ...kernel, modules: kernel.modules.filter((m) => req.net || !NET_ONLY_MODULES.has(m.name)) },
    bins,
    [
      ['rootfs', req.guestPath ?? rootfs],
      ['tag', share.tag],
      ['readonly', req.readonly ? '1' : '0'],
      ['options', 'msize=262144,cache=mmap,access=client'],
      ...(req.autostart ? [['autostart', '1'] as [string, string]] : []),
      ...(req.cgroup2 ? [['cgroup', '2'] as [string, string]] : []),
      ...(req.net
        ? ([
            ['net.mac', req.net.mac],
            ['net.address', req.net.address],
            ['net.gateway', req.net.gateway],
          ] as Array<[string, string]>)
        : []),
      ...(req.files ?? []).map((f, i): [string, string] => ['file', `${i}:${f.path}`]),
      ...(req.shares ?? []).map((s, i): [string, string] => [
        'share',
        `share${i}:${s.readonly ? 1 : 0}:${s.guestPath ?? s.path}`,
      ]),
    ],
    encodePlan(req.steps),
    req.files,
  );
  writeFileSync(files.initrd, initrd, { mode: 0o600 });
  writeFileSync(files.status, '', { mode: 0o600 });
  const [i, o, e] = req.stdio ?? ['inherit', 'inherit', 'inherit'];
  const stdin = stdioFd(i, 0, constants.O_RDONLY);
  const stdout = stdioFd(o, 1, constants.O_WRONLY);
  const stderr = stdioFd(e, 2, constants.O_WRONLY);
  const argv = planQemu({
    qemu,
    accel: accel.accel,
    size: req.size,
    kernel: kernel.kernel,
    initrd: files.initrd,
    cmdline: guestCmdline(accel.accel, req.cmdline),
    share,
    ...(req.shares?.length ? { shares: req.shares } : {}),
    runDir: req.runDir,
    stdoutFd: 1,
    stderrFd: 3,
    socketFds: [...(isSocket(stdout.fd) ? [1] : []), ...(isSocket(stderr.fd) ? [3] : [])],
    sandbox: process.env['BERTH_VM_SANDBOX'] !== '0',
    ...(req.net ? { net: { tap: req.net.tap, mac: req.net.mac } } : {}),
    balloon: true,
  });
  const log = openSync(files.qemuLog, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  let child: ChildProcess;
  try {
    // berth-vmm holds the host end of the status port and the console, and reads QEMU's stderr
    child = spawn(bins.vmm, [...(req.beforeRun ? ['--hold', '4'] : []), req.runDir, qemu, ...argv], {
      stdio: [stdin.fd, stdout.fd, log, stderr.fd, ...(req.beforeRun ? ['pipe' as const] : [])],
      detached: true,
    });
  } finally {
    for (const s of [stdin, stdout, stderr]) if (s.close) closeSync(s.fd);
    closeSync(log);
  }
  const spawnError = new Promise<Error>((r) => child.once('error', r));
  child.unref();
  const hold = child.stdio[4] as Socket | null | undefined;
  if (hold) {
    hold.on('error', () => {});
    hold.unref();
  }
  const pid = child.pid;
  const st = pid ? startTime(pid) : undefined;
  if (!pid || st === undefined) {
    const err = await Promise.race([spawnError, sleep(100).then(() => undefined)]);
    rmSync(req.runDir, { recursive: true, force: true });
    throw new BerthError(
      `cannot run ${qemu}: ${err?.message ?? 'it exited at once'}\n${tail(files.qemuLog)}`,
      {
        code: 'EQEMU',
      },
    );
  }
  const vm = new Vm(req.id, {
    qemuPid: pid,
    qemuStartTime: st,
    runDir: req.runDir,
    accel,
    size: req.size,
    share,
    kernel: { version: kernel.version, source: kernel.source },
    ...(hostMount ? { hostMount } : {}),
    ...(req.net ? { net: req.net } : {}),
    balloon: true,
  });
  try {
    req.onSpawn?.(vm.record);
    if (req.beforeRun && hold) {
      try {
        await req.beforeRun(pid);
        // a berth-vmm gone meanwhile is found by the wait for "created" below
        await new Promise<void>((resolve) => hold.end('g', () => resolve()));
      } finally {
        hold.destroy();
      }
    }
    const deadline = Date.now() + (req.timeoutMs ?? 120_000);
    let delay = 5;
    for (;;) {
      const s = vm.guestState();
      if (s.error) {
        const step = req.steps[s.error.step];
        throw new LaunchError(step, s.error.step, s.error.syscall, s.error.errno);
      }
      if (s.fail) throw new BerthError(`VM agent: ${s.fail}`, { code: 'EAGENT' });
      if (s.created !== undefined) {
        vm.record.guestPid = s.created;
        return vm;
      }
      if (s.exit !== undefined) {
        throw new BerthError(
          `container ${req.id}: its process exited in the VM before it was created (status ${s.exit})`,
          {
            code: 'EAGENT',
          },
        );
      }
      if (!vm.alive()) {
        throw new BerthError(
          `QEMU exited while the VM booted:\n${[tail(files.qemuLog), tail(files.console, 8, files.consoleOld)].filter(Boolean).join('\n')}`,
          { code: 'EQEMU' },
        );
      }
      if (Date.now() > deadline) {
        throw new BerthError(
          `the VM did not report "created" in time:\n${tail(files.console, 8, files.consoleOld)}`,
          {
            code: 'EAGENT',
          },
        );
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 20);
    }
  } catch (err) {
    // the mount is the caller's to undo
    const { hostMount: _, ...rest } = vm.record;
    await new Vm(vm.id, rest).delete().catch(() => {});
    throw err;
  }
}

/** Finds a VM again from its record (another berth process). */
export function openVm(id: string, record: VmRecord): Vm {
  return new Vm(id, record);
}

/**
 * Where the guest kernel comes from: `BERTH_VM_KERNEL` (a kernel of the user's own) or
 * `BERTH_VM_KERNELS` (the directory kernels are unpacked into), else berth's cache. As root
 * neither is read: whoever set them could have written the kernel QEMU boots (it would set
 * aside every limit the guest enforces for the container) or the directory root unpacks into.
 */
export function guestKernelChoice(cache: string = vmCacheDir()): { dir: string; override?: string } {
  const override = envOverride('BERTH_VM_KERNEL');
  return {
    dir:
      envOverride('BERTH_VM_KERNELS') ??
      (envOverride('BERTH_VM_CACHE') ? join(cache, 'kernels') : DEFAULT_KERNEL_DIR),
    ...(override ? { override } : {}),
  };
}
