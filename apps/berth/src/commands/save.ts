import type { Command } from '../command.js';

export const command: Command = {
  name: 'save',
  summary: 'not available yet',
  usage: '',
  options: [],
  async run() {
    throw new Error('berth save is not available yet');
  },
};
