import type { Command } from '../command.js';

export const command: Command = {
  name: 'prune',
  summary: 'not available yet',
  usage: '',
  options: [],
  async run() {
    throw new Error('berth prune is not available yet');
  },
};
