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
