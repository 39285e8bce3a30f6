import { readFileSync, statSync } from 'node:fs';

export interface ProcStat {
  /** R, S, D, Z (zombie), T, t, X (dead), I … */
  state: string;
  /** Start time in clock ticks after boot: with the pid, identifies a process over pid reuse. */
  startTime: number;
  ppid: number;
}

/** Reads /proc/PID/stat; undefined when there is no such process. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    // a pid that is gone (what a teardown usually finds) answers without an exception
    if (!statSync(`/proc/${pid}`, { throwIfNoEntry: false })) return undefined;
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields resume after the last ')'
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: rest[0] ?? '?', ppid: Number(rest[1]), startTime: Number(rest[19]) };
}

/** Whether `pid` is still the process that was started at `startTime`, and not a zombie. */
export function isAlive(pid: number, startTime?: number): boolean {
  if (!(pid > 0)) return false;
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

/** Waits until `pid` is gone (or a zombie); false on timeout. */
export async function waitGone(
  pid: number,
  startTime: number | undefined,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  while (isAlive(pid, startTime)) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 20);
  }
  return true;
}

const SIGNALS: Record<string, number> = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  IOT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  STKFLT: 16,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  TTIN: 21,
  TTOU: 22,
  URG: 23,
  XCPU: 24,
  XFSZ: 25,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
  IO: 29,
  POLL: 29,
  PWR: 30,
  SYS: 31,
};

/**
 * Parses a signal as runc does: `KILL`, `SIGKILL`, `kill` or `9`, and `0` (no signal: whether
 * the container's process still exists); undefined when it is not one.
 */
export function parseSignal(value: string): number | undefined {
  if (/^\d+$/.test(value)) {
    const n = Number(value);
    return n >= 0 && n <= 64 ? n : undefined;
  }
  const name = value.toUpperCase().replace(/^SIG/, '');
  const rt = /^RTMIN(?:\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[1] ?? 0);
  return SIGNALS[name];
}
