import type { Command } from '../command.js';

export const command: Command = {
  name: 'rmi',
  summary: 'not available yet',
  usage: '',
  options: [],
  async run() {
    throw new Error('berth rmi is not available yet');
  },
};
