import type { Command } from '../command.js';
import { positionals, runtime } from './common.js';

export const command: Command = {
  name: 'delete',
  summary: 'delete a container and everything it holds',
  usage: '[options] CONTAINER_ID',
  description:
    'A created or stopped container is deleted; a running one only with --force (it is killed first).',
  options: [
    {
      name: 'force',
      short: 'f',
      help: 'kill the container if it is running, and ignore one that does not exist',
    },
  ],
  async run({ options, positionals: p }, globals) {
    const [id] = positionals(p, ['container_id'], 'delete');
    await (await runtime(globals)).delete(id!, { force: options['force'] === true });
    return 0;
  },
};
