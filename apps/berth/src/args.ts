/** A small argv parser: no dependency, nothing to load on the CLI's start-up path. */
export interface OptionSpec {
  /** Long name without dashes: `bundle`. */
  name: string;
  short?: string;
  /** Takes a value (`--bundle DIR`); otherwise a boolean switch. */
  value?: string;
  /** May be given more than once (values collect into an array). */
  repeat?: boolean;
  help: string;
  /** runc accepts it; berth ignores it (say so in help). */
  ignored?: boolean;
  /** Accepted but not listed in --help (another spelling of a listed option). */
  hidden?: boolean;
}

export interface Parsed {
  options: Record<string, string | boolean | string[]>;
  positionals: string[];
}

/**
 * A command line berth cannot run (code `EUSAGE`). It stays a plain Error so that
 * parsing imports nothing (the CLI's start-up path); it has BerthError's shape.
 */
export class UsageError extends Error {
  readonly code = 'EUSAGE';
  readonly op = 'parse arguments';
}

/**
 * Parses `argv` against `specs`. Options may come before or after positionals
 * until `--`, or until the first positional when `stopAtPositional` (so that
 * `run IMAGE sh -c x` passes `-c` to the container).
 */
export function parseArgs(
  argv: readonly string[],
  specs: readonly OptionSpec[],
  stopAtPositional = false,
): Parsed {
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short!, s]));
  const options: Parsed['options'] = {};
  const positionals: string[] = [];
  const set = (spec: OptionSpec, value: string | boolean) => {
    if (spec.repeat) {
      const list = (options[spec.name] as string[] | undefined) ?? [];
      list.push(String(value));
      options[spec.name] = list;
    } else options[spec.name] = value;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (stopAtPositional && positionals.length > 0) {
      positionals.push(...argv.slice(i));
      break;
    }
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    let label = arg;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      if (eq >= 0) inline = arg.slice(eq + 1);
      spec = byLong.get(name);
      label = `--${name}`;
    } else if (arg.startsWith('-') && arg.length > 1) {
      // runc (urfave/cli) also accepts long options with one dash: -bundle
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(1, eq) : arg.slice(1);
      if (eq >= 0) inline = arg.slice(eq + 1);
      spec = byShort.get(name) ?? byLong.get(name);
      if (
        !spec &&
        /^[a-zA-Z]{2,}$/.test(name) &&
        [...name].every((c) => byShort.get(c) && !byShort.get(c)!.value)
      ) {
        for (const c of name) set(byShort.get(c)!, true); // -dt
        continue;
      }
    } else {
      positionals.push(arg);
      continue;
    }
    if (!spec) throw new UsageError(`unknown option ${label}`);
    if (spec.value) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`option --${spec.name} needs a value (${spec.value})`);
      set(spec, value);
    } else {
      if (inline !== undefined && !/^(true|false)$/.test(inline)) {
        throw new UsageError(`option --${spec.name} takes no value`);
      }
      set(spec, inline !== 'false');
    }
  }
  return { options, positionals };
}

/** Formats options for --help, aligned. */
export function formatOptions(specs: readonly OptionSpec[]): string {
  const rows = specs
    .filter((s) => !s.hidden)
    .map((s) => {
      const left = `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.value ? ` ${s.value}` : ''}`;
      return [left, s.ignored ? `${s.help} (accepted for runc compatibility; no effect)` : s.help] as const;
    });
  const width = Math.max(...rows.map(([l]) => l.length), 0) + 3;
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`).join('\n');
}
