import { openSync, writeSync } from 'node:fs';
import { BerthError, isoTime } from '@berth/sys';
import type { GlobalOptions } from './command.js';

/** The global options of this invocation (set once by the CLI's main). */
export let globals: GlobalOptions = {
  logFormat: 'text',
  systemdCgroup: false,
  debug: false,
};

export function setGlobals(g: GlobalOptions): void {
  globals = g;
}

let logFd: number | undefined;

/** Opens --log for appending (made 0644 if missing); an error naming the file if it cannot be. */
export function openLog(): void {
  if (!globals.log || logFd !== undefined) return;
  try {
    logFd = openSync(globals.log, 'a', 0o644);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new BerthError(`--log ${globals.log}: cannot open it: ${err.code ?? err.message}`, {
      code: 'ELOG',
      path: globals.log,
    });
  }
}

/** Appends a runc-style log line to --log (logrus text, or JSON with --log-format json). */
export function logLine(
  level: 'error' | 'warning' | 'debug',
  msg: string,
  fields: Record<string, unknown> = {},
): void {
  if (!globals.log) return;
  const time = isoTime();
  const line =
    globals.logFormat === 'json'
      ? JSON.stringify({ level, msg, ...fields, time })
      : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
  try {
    openLog();
    if (logFd !== undefined) writeSync(logFd, `${line}\n`);
  } catch {
    // a log we cannot write must not hide the error itself
  }
}

/** `--debug`: what the runtime does, to --log if given, else to stderr (as runc's logrus lines). */
export function debug(msg: string): void {
  if (globals.log) logLine('debug', msg);
  else {
    try {
      // write(2) itself: a reader that went away (`| head`) must not end a create half-way
      writeSync(2, `time="${isoTime()}" level=debug msg=${JSON.stringify(msg)}\n`);
    } catch {
      // EPIPE, EAGAIN: the line is lost, the command goes on
    }
  }
}

/**
 * A warning for the user: in --log if one is given, and only there (as runc's): containerd's
 * shim and conmon run `create` with the container's own stdio, so a line on stderr would
 * become the container's output (`docker logs`); without --log, on stderr.
 */
export function warn(msg: string): void {
  if (globals.log) logLine('warning', msg);
  else process.stderr.write(`berth: warning: ${msg}\n`);
}

/**
 * Writes `text` to standard output with write(2) itself: Node's `process.stdout` stream is made
 * at its first use, and making it loads node:net for a pipe (what containerd gives `state`) or
 * the fs streams for a file, several ms of a short command. A stdout that would block (a
 * non-blocking pipe that is full) gets the stream after all.
 */
export function writeOut(text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  try {
    while (off < buf.length) off += writeSync(1, buf, off, buf.length - off);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
    process.stdout.write(buf.subarray(off));
  }
}
