import type { OptionSpec } from '../args.js';
import type { Command } from '../command.js';
import { positionals, preservedFds, runtime, str } from './common.js';

export const createOptions: OptionSpec[] = [
  {
    name: 'bundle',
    short: 'b',
    value: 'DIR',
    help: 'the bundle: config.json and the root filesystem (default: current directory)',
  },
  {
    name: 'console-socket',
    value: 'PATH',
    help: 'a Unix socket that receives the pty master (process.terminal)',
  },
  { name: 'pid-file', value: 'FILE', help: "write the container process's pid to FILE" },
  { name: 'preserve-fds', value: 'N', help: 'pass N more file descriptors (3, 4, …) to the container' },
  { name: 'no-pivot', help: 'do not use pivot_root', ignored: true },
  {
    name: 'no-new-keyring',
    help: "keep berth's session keyring (default: the container joins its own, _ses.ID)",
  },
];

export const command: Command = {
  name: 'create',
  summary: 'create a container from a bundle (it waits for start)',
  usage: '[options] CONTAINER_ID',
  description: `
Sets up the container (namespaces, mounts, hostname, user, capabilities) and
leaves its process waiting; "berth start" runs the program. The status is then
"created". Exit status: 0 on success, 1 with a message naming what is wrong.`,
  options: createOptions,
  async run({ options, positionals: p }, globals) {
    const [id] = positionals(p, ['container_id'], 'create');
    const rt = await runtime(globals);
    const consoleSocket = str(options['console-socket']);
    const pidFile = str(options['pid-file']);
    const preserveFds = await preservedFds(options['preserve-fds']);
    await rt.create(id!, str(options['bundle']) ?? '.', {
      ...(consoleSocket ? { consoleSocket } : {}),
      ...(pidFile ? { pidFile } : {}),
      ...(preserveFds ? { preserveFds } : {}),
      ...(options['no-new-keyring'] === true ? { noNewKeyring: true } : {}),
    });
    return 0;
  },
};
