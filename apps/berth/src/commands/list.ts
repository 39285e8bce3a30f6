import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { runtime } from './common.js';

export const command: Command = {
  name: 'list',
  summary: 'list containers',
  usage: '[options]',
  options: [
    { name: 'format', short: 'f', value: 'table|json', help: 'output format (default table)' },
    { name: 'quiet', short: 'q', help: 'print only the container ids' },
  ],
  async run({ options, positionals: p }, globals) {
    if (p.length) throw new UsageError('berth list takes no arguments');
    const format = (options['format'] as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json')
      throw new UsageError(`--format must be table or json, not ${JSON.stringify(format)}`);
    const list = await (await runtime(globals)).list();
    if (options['quiet']) {
      for (const c of list) process.stdout.write(`${c.id}\n`);
    } else if (format === 'json') {
      process.stdout.write(`${JSON.stringify(list)}\n`);
    } else {
      const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
      for (const c of list) rows.push([c.id, String(c.pid), c.status, c.bundle, c.created, c.owner]);
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows)
        process.stdout.write(
          `${r.map((v, i) => (i < r.length - 1 ? v.padEnd(widths[i]! + 3) : v)).join('')}\n`,
        );
    }
    return 0;
  },
};
