import type { Command } from '../command.js';
import { positionals, runtime } from './common.js';

export const command: Command = {
  name: 'start',
  summary: 'run the user process of a created container',
  usage: 'CONTAINER_ID',
  options: [],
  async run({ positionals: p }, globals) {
    const [id] = positionals(p, ['container_id'], 'start');
    await (await runtime(globals)).start(id!);
    return 0;
  },
};
