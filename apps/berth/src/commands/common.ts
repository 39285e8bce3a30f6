import type { Runtime } from '@berth/runtime';
import { UsageError } from '../args.js';
import type { GlobalOptions } from '../command.js';
import { debug, warn } from '../log.js';

export async function runtime(globals: GlobalOptions): Promise<Runtime> {
  const { Runtime } = await import('@berth/runtime');
  return new Runtime({
    ...(globals.root ? { root: globals.root } : {}),
    warn,
    ...(globals.debug ? { debug } : {}),
    systemdCgroup: globals.systemdCgroup,
    // one container per command: forking costs less than loading koffi for posix_spawn
    spawn: 'fork',
  });
}

/** Exactly `n` positionals, named for the error message. */
export function positionals(list: string[], names: string[], command: string): string[] {
  if (list.length !== names.length) {
    throw new UsageError(
      `berth ${command} needs ${names.map((n) => n.toUpperCase()).join(' ')}${list.length > names.length ? `, got extra ${JSON.stringify(list.slice(names.length).join(' '))}` : ''} (see berth ${command} --help)`,
    );
  }
  return list;
}

export function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

export function int(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`--${name} must be a non-negative integer, not ${JSON.stringify(v)}`);
  return n;
}

/**
 * `--preserve-fds N`: N, once fds 3 … N+2 are known to be ones the caller passed (see
 * @berth/sys `checkPreservedFds`: otherwise the container would get berth's own, libuv's signal
 * pipe among them).
 */
export async function preservedFds(value: unknown): Promise<number | undefined> {
  const n = int(value, 'preserve-fds');
  if (n) {
    const { checkPreservedFds } = await import('@berth/sys');
    checkPreservedFds(Array.from({ length: n }, (_, i) => 3 + i));
  }
  return n;
}
