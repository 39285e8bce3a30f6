import type { Command } from '../command.js';

export const command: Command = {
  name: 'images',
  summary: 'not available yet',
  usage: '',
  options: [],
  async run() {
    throw new Error('berth images is not available yet');
  },
};
