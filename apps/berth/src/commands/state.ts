import type { Command } from '../command.js';
import { writeOut } from '../log.js';
import { positionals, runtime } from './common.js';

export const command: Command = {
  name: 'state',
  summary: 'print the OCI state of a container as JSON',
  usage: 'CONTAINER_ID',
  description:
    'Prints {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"} as runc does.',
  options: [],
  async run({ positionals: p }, globals) {
    const [id] = positionals(p, ['container_id'], 'state');
    const state = await (await runtime(globals)).state(id!);
    writeOut(`${JSON.stringify(state, null, 2)}\n`);
    return 0;
  },
};
