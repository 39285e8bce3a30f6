import { execFileSync } from 'node:child_process';
import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { runtime } from './common.js';

export const command: Command = {
  name: 'ps',
  summary: 'list the processes of a container',
  usage: '[options] CONTAINER_ID [PS_OPTIONS...]',
  description:
    'Prints ps(1) lines for the processes of the container (default ps options: -ef), or with --format json a JSON array of their pids.',
  stopAtPositional: true,
  options: [{ name: 'format', short: 'f', value: 'table|json', help: 'output format (default table)' }],
  async run({ options, positionals: p }, globals) {
    const [id, ...psArgs] = p;
    if (!id) throw new UsageError('berth ps needs CONTAINER_ID (see berth ps --help)');
    const format = (options['format'] as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json')
      throw new UsageError(`--format must be table or json, not ${JSON.stringify(format)}`);
    const pids = await (await runtime(globals)).ps(id);
    if (format === 'json') {
      process.stdout.write(`${JSON.stringify(pids)}\n`);
      return 0;
    }
    const lines = execFileSync('ps', psArgs.length ? psArgs : ['-ef'], { encoding: 'utf8' }).split('\n');
    const header = lines[0] ?? '';
    const col = header.trim().split(/\s+/).indexOf('PID');
    if (col < 0) throw new Error('ps output has no PID column');
    const wanted = new Set(pids);
    process.stdout.write(`${header}\n`);
    for (const line of lines.slice(1)) {
      if (wanted.has(Number(line.trim().split(/\s+/)[col]))) process.stdout.write(`${line}\n`);
    }
    return 0;
  },
};
