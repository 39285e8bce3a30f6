import type { OptionSpec, Parsed } from './args.js';

export interface GlobalOptions {
  /** --root or $BERTH_ROOT; absent: the runtime's default (/run/berth, or $XDG_RUNTIME_DIR/berth without root) */
  root?: string;
  log?: string;
  logFormat: 'text' | 'json';
  systemdCgroup: boolean;
  debug: boolean;
}

/** One CLI command: its help and what it does. `run` returns the exit status. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  description?: string;
  options: OptionSpec[];
  /** Options end at the first positional (the rest belongs to the container's command). */
  stopAtPositional?: boolean;
  run(args: Parsed, globals: GlobalOptions): Promise<number>;
}
