import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { runtime } from './common.js';

export const command: Command = {
  name: 'kill',
  summary: 'send a signal to a container',
  usage: '[options] CONTAINER_ID [SIGNAL]',
  description: 'SIGNAL is a name (TERM, SIGTERM) or a number; the default is SIGTERM.',
  options: [{ name: 'all', short: 'a', help: 'send the signal to every process of the container' }],
  async run({ options, positionals: p }, globals) {
    if (p.length < 1 || p.length > 2)
      throw new UsageError('berth kill needs CONTAINER_ID [SIGNAL] (see berth kill --help)');
    const { parseSignal } = await import('@berth/runtime');
    const signal = parseSignal(p[1] ?? 'TERM');
    if (signal === undefined) throw new UsageError(`unknown signal ${JSON.stringify(p[1])}`);
    await (await runtime(globals)).kill(p[0]!, signal, { all: options['all'] === true });
    return 0;
  },
};
