import type { Command } from '../command.js';
import { positionals, runtime } from './common.js';

export const command: Command = {
  name: 'pause',
  summary: 'suspend every process of a container (cgroup freezer)',
  usage: 'CONTAINER_ID',
  options: [],
  async run({ positionals: p }, globals) {
    const [id] = positionals(p, ['container_id'], 'pause');
    await (await runtime(globals)).pause(id!);
    return 0;
  },
};
