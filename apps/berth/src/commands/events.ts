import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { runtime } from './common.js';

export const command: Command = {
  name: 'events',
  summary: 'print resource usage statistics of a container',
  usage: '[options] CONTAINER_ID',
  description: `
Prints one JSON object per line: {"type":"stats","id":ID,"data":{…}} with the
same data shape as "runc events --stats" (cpu, memory, pids, blkio, hugetlb).
Without --stats, prints one every --interval until the container stops.`,
  options: [
    { name: 'stats', help: 'print the statistics once and exit' },
    { name: 'interval', value: 'DURATION', help: 'time between statistics (default 5s; e.g. 500ms, 2s)' },
  ],
  async run({ options, positionals: p }, globals) {
    if (p.length !== 1) throw new UsageError('berth events needs CONTAINER_ID (see berth events --help)');
    const id = p[0]!;
    const interval = parseDuration((options['interval'] as string | undefined) ?? '5s');
    const rt = await runtime(globals);
    for (;;) {
      let data: Record<string, unknown>;
      try {
        data = await rt.stats(id);
      } catch (e) {
        // a container that stopped while we were watching ends the stream quietly
        if (!options['stats'] && (e as { code?: string }).code === 'ESTATE') return 0;
        throw e;
      }
      process.stdout.write(`${JSON.stringify({ type: 'stats', id, data })}\n`);
      if (options['stats']) return 0;
      await new Promise((r) => setTimeout(r, interval));
    }
  },
};

function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) throw new UsageError(`--interval must be a duration like 500ms or 5s, not ${JSON.stringify(v)}`);
  const n = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (n <= 0) throw new UsageError('--interval must be positive');
  return n;
}
