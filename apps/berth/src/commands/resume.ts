import type { Command } from '../command.js';
import { positionals, runtime } from './common.js';

export const command: Command = {
  name: 'resume',
  summary: 'resume a paused container',
  usage: 'CONTAINER_ID',
  options: [],
  async run({ positionals: p }, globals) {
    const [id] = positionals(p, ['container_id'], 'resume');
    await (await runtime(globals)).resume(id!);
    return 0;
  },
};
