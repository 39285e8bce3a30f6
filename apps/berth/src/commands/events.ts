import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { runtime } from './common.js';

export const command: Command = {
  name: 'events',
  summary: 'print resource usage statistics and OOM kills of a container',
  usage: '[options] CONTAINER_ID',
  description: `
Prints one JSON object per line: {"type":"stats","id":ID,"data":{…}} with the
same data shape as "runc events --stats" (cpu, memory, pids, blkio, hugetlb).
Without --stats, prints one every --interval until the container stops, and
{"type":"oom","id":ID} whenever the kernel's OOM killer kills one of its
processes (seen within a quarter of a second), as runc does.`,
  options: [
    { name: 'stats', help: 'print the statistics once and exit' },
    { name: 'interval', value: 'DURATION', help: 'time between statistics (default 5s; e.g. 500ms, 2s)' },
  ],
  async run({ options, positionals: p }, globals) {
    if (p.length !== 1) throw new UsageError('berth events needs CONTAINER_ID (see berth events --help)');
    const id = p[0]!;
    const interval = parseDuration((options['interval'] as string | undefined) ?? '5s');
    const rt = await runtime(globals);
    const print = (event: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(event)}\n`);
    if (options['stats']) {
      print({ type: 'stats', id, data: await rt.stats(id) });
      return 0;
    }
    try {
      let kills = await rt.oomKills(id); // kills before the stream began are not events
      let next = 0;
      for (;;) {
        if (Date.now() >= next) {
          print({ type: 'stats', id, data: await rt.stats(id) });
          next = Date.now() + interval;
        }
        const now = await rt.oomKills(id);
        if (now > kills) print({ type: 'oom', id });
        kills = now;
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(OOM_POLL_MS, next - Date.now()))));
      }
    } catch (e) {
      // a container that stopped while we were watching ends the stream quietly
      if ((e as { code?: string }).code === 'ESTATE') return 0;
      throw e;
    }
  },
};

/** How often the stream looks for OOM kills between two statistics. */
const OOM_POLL_MS = 250;

function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) throw new UsageError(`--interval must be a duration like 500ms or 5s, not ${JSON.stringify(v)}`);
  const n = Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000);
  if (n <= 0) throw new UsageError('--interval must be positive');
  return n;
}
