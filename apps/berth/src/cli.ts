#!/usr/bin/env node
// The berth CLI. Start-up matters (containerd runs us for every container):
// this file imports nothing heavy; each command is loaded only when it runs.
import { formatOptions, type OptionSpec, parseArgs, UsageError } from './args.js';
import type { Command } from './command.js';
import { globals, logLine, openLog, setGlobals, writeOut } from './log.js';
import { VERSION, versionText } from './version.js';

const COMMANDS: Record<string, { summary: string; load: () => Promise<{ command: Command }> }> = {
  run: {
    summary: 'create and run a container (from a bundle with -b, else from an image)',
    load: () => import('./commands/run.js'),
  },
  create: {
    summary: 'create a container from a bundle (it waits for start)',
    load: () => import('./commands/create.js'),
  },
  start: {
    summary: 'run the user process of a created container',
    load: () => import('./commands/start.js'),
  },
  exec: {
    summary: 'run another process in a running container',
    load: () => import('./commands/exec.js'),
  },
  state: { summary: 'print the OCI state of a container as JSON', load: () => import('./commands/state.js') },
  kill: { summary: 'send a signal to a container', load: () => import('./commands/kill.js') },
  delete: {
    summary: 'delete a container and everything it holds',
    load: () => import('./commands/delete.js'),
  },
  list: { summary: 'list containers', load: () => import('./commands/list.js') },
  pause: {
    summary: 'suspend every process of a container (cgroup freezer)',
    load: () => import('./commands/pause.js'),
  },
  resume: { summary: 'resume a paused container', load: () => import('./commands/resume.js') },
  update: {
    summary: "change a running container's resource limits",
    load: () => import('./commands/update.js'),
  },
  events: {
    summary: 'print resource usage statistics of a container',
    load: () => import('./commands/events.js'),
  },
  ps: { summary: 'list the processes of a container', load: () => import('./commands/ps.js') },
  spec: { summary: 'write a default config.json for a bundle', load: () => import('./commands/spec.js') },
  features: {
    summary: 'print what this runtime supports (OCI features document, JSON)',
    load: () => import('./commands/features.js'),
  },
  pull: { summary: 'pull an image from a registry', load: () => import('./commands/pull.js') },
  login: {
    summary: 'log in to a registry (checks the credentials, then saves them)',
    load: () => import('./commands/login.js'),
  },
  logout: {
    summary: 'remove the saved credentials of a registry',
    load: () => import('./commands/logout.js'),
  },
  network: {
    summary: 'manage bridge networks (create, ls, rm, inspect)',
    load: () => import('./commands/network.js'),
  },
  images: { summary: 'list images in the store', load: () => import('./commands/images.js') },
  rmi: { summary: 'remove images from the store', load: () => import('./commands/rmi.js') },
  prune: { summary: 'remove unused images and layers', load: () => import('./commands/prune.js') },
  load: {
    summary: 'load images from an OCI layout or docker-save archive',
    load: () => import('./commands/load.js'),
  },
  save: {
    summary: 'save an image to an OCI layout or docker-save archive',
    load: () => import('./commands/save.js'),
  },
};
const ALIASES: Record<string, string> = { ls: 'list', rm: 'delete' };

const GLOBAL_OPTIONS: OptionSpec[] = [
  {
    name: 'root',
    value: 'DIR',
    help: 'where container state is kept (default $BERTH_ROOT, else /run/berth as root, $XDG_RUNTIME_DIR/berth otherwise)',
  },
  { name: 'log', value: 'FILE', help: 'also write log lines to FILE (containerd passes this)' },
  { name: 'log-format', value: 'text|json', help: 'format of --log lines (default text)' },
  {
    name: 'systemd-cgroup',
    help: 'the systemd cgroup driver: cgroupsPath is slice:prefix:name, a transient scope made over D-Bus (cgroup v2)',
  },
  { name: 'debug', help: 'log each step (level=debug, to --log or stderr) and stack traces of errors' },
  { name: 'help', short: 'h', help: 'show help' },
  { name: 'version', short: 'v', help: 'print the version' },
];

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length)) + 3;
  return `berth ${VERSION}: Linux containers, runc-compatible

Usage: berth [global options] COMMAND [options] [arguments]

Commands:
${Object.entries(COMMANDS)
  .map(([n, c]) => `  ${n.padEnd(width)}${c.summary}`)
  .join('\n')}

Global options:
${formatOptions(GLOBAL_OPTIONS)}

First steps:
  berth run busybox echo hello      run a command in the built-in busybox image
  berth run -t busybox sh           an interactive shell (needs a terminal)
  berth spec && berth run -b . ID   the runc way: a bundle with config.json and rootfs/

"berth COMMAND --help" tells more about a command.
`;
}

function commandHelp(c: Command): string {
  return `Usage: berth ${c.name} ${c.usage}

${c.summary}${c.description ? `\n\n${c.description.trim()}` : ''}
${c.options.length ? `\nOptions:\n${formatOptions(c.options)}\n` : ''}`;
}

async function main(argv: string[]): Promise<number> {
  // global options come before the command
  let i = 0;
  const globalArgs: string[] = [];
  while (i < argv.length && argv[i]!.startsWith('-')) {
    const a = argv[i]!;
    globalArgs.push(a);
    const name = a.replace(/^--?/, '').split('=')[0];
    if (!a.includes('=') && GLOBAL_OPTIONS.find((o) => o.name === name)?.value)
      globalArgs.push(argv[++i] ?? '');
    i++;
  }
  const g = parseArgs(globalArgs, GLOBAL_OPTIONS).options;
  setGlobals({
    ...((g['root'] ?? process.env['BERTH_ROOT'])
      ? { root: (g['root'] as string | undefined) ?? process.env['BERTH_ROOT']! }
      : {}),
    ...(g['log'] ? { log: g['log'] as string } : {}),
    logFormat: g['log-format'] === 'json' ? 'json' : 'text',
    systemdCgroup: g['systemd-cgroup'] === true,
    debug: g['debug'] === true,
  });
  if (g['log-format'] !== undefined && g['log-format'] !== 'json' && g['log-format'] !== 'text') {
    throw new UsageError(`--log-format must be text or json, not ${JSON.stringify(g['log-format'])}`);
  }
  // opened now, as runc does: a log that cannot be written is an error before anything is done
  if (globals.log) openLog();
  if (g['version']) {
    writeOut(versionText());
    return 0;
  }
  const name = argv[i];
  if (!name || g['help'] || name === 'help') {
    const topic = name === 'help' ? argv[i + 1] : undefined;
    const entry = topic ? COMMANDS[ALIASES[topic] ?? topic] : undefined;
    writeOut(entry ? commandHelp((await entry.load()).command) : mainHelp());
    return name || g['help'] ? 0 : 1;
  }
  const entry = COMMANDS[ALIASES[name] ?? name];
  if (!entry) throw new UsageError(`unknown command ${JSON.stringify(name)} (see berth --help)`);
  const { command } = await entry.load();
  const rest = argv.slice(i + 1);
  if (rest.includes('--help') || rest.includes('-h')) {
    const stop = command.stopAtPositional ? rest.findIndex((a) => !a.startsWith('-')) : -1;
    const helpAt = Math.max(rest.indexOf('--help'), rest.indexOf('-h'));
    if (stop < 0 || helpAt < stop) {
      writeOut(commandHelp(command));
      return 0;
    }
  }
  const parsed = parseArgs(rest, command.options, command.stopAtPositional);
  const status = await command.run(parsed, globals);
  // commands whose work is all awaited (no terminal relayed, nothing streaming) exit at once:
  // Node's own teardown of its heap and threads is then skipped (stdout and stderr are
  // synchronous on Linux: nothing written is lost)
  if (QUICK_EXIT.has(command.name) && (command.name !== 'run' || parsed.options['bundle'] !== undefined))
    quickExit = true;
  return status;
}

/** Commands that may end with process.exit() (`run` in its bundle form only: see main). */
const QUICK_EXIT = new Set(['run', 'create', 'start', 'delete', 'kill', 'state']);
let quickExit = false;

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    if (quickExit) process.exit(code);
  },
  (err: unknown) => {
    const e = err as Error & { code?: string; toJSON?: () => unknown };
    const msg = e?.message ?? String(err);
    process.stderr.write(`berth: ${msg}${e instanceof UsageError ? '' : ''}\n`);
    if (globals.debug && e?.stack) process.stderr.write(`${e.stack}\n`);
    // a BerthError's code, op, path and errno go into JSON log lines for tools to read
    const { message: _m, ...fields } = (typeof e?.toJSON === 'function' ? e.toJSON() : {}) as Record<
      string,
      unknown
    >;
    logLine('error', msg, fields);
    // 1, or what the command asks for its own failures (exec: 255, as runc)
    const asked = (err as { exitCode?: unknown } | undefined)?.exitCode;
    process.exitCode = typeof asked === 'number' ? asked : 1;
  },
);
