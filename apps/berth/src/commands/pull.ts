import type { Command } from '../command.js';

export const command: Command = {
  name: 'pull',
  summary: 'not available yet',
  usage: '',
  options: [],
  async run() {
    throw new Error('berth pull is not available yet');
  },
};
