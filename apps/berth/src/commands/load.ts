import type { Command } from '../command.js';

export const command: Command = {
  name: 'load',
  summary: 'not available yet',
  usage: '',
  options: [],
  async run() {
    throw new Error('berth load is not available yet');
  },
};
