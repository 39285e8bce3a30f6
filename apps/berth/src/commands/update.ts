import { readFileSync } from 'node:fs';
import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { runtime, str } from './common.js';

/** Flags of runc update, each setting one linux.resources field. */
const FIELDS: Array<{ name: string; help: string; set: (r: Resources, v: string) => void }> = [
  {
    name: 'memory',
    help: 'memory limit in bytes (K, M, G suffixes)',
    set: (r, v) => (obj(r, 'memory').limit = bytes(v, 'memory')),
  },
  {
    name: 'memory-reservation',
    help: 'memory soft limit in bytes',
    set: (r, v) => (obj(r, 'memory').reservation = bytes(v, 'memory-reservation')),
  },
  {
    name: 'memory-swap',
    help: 'memory plus swap limit in bytes (-1: unlimited)',
    set: (r, v) => (obj(r, 'memory').swap = bytes(v, 'memory-swap')),
  },
  {
    name: 'cpu-share',
    help: 'relative CPU weight (also --cpu-shares)',
    set: (r, v) => (obj(r, 'cpu').shares = num(v, 'cpu-share')),
  },
  {
    name: 'cpu-shares',
    help: '',
    set: (r, v) => (obj(r, 'cpu').shares = num(v, 'cpu-shares')),
  },
  {
    name: 'cpu-quota',
    help: 'CPU time in microseconds per period (-1: unlimited)',
    set: (r, v) => (obj(r, 'cpu').quota = num(v, 'cpu-quota')),
  },
  {
    name: 'cpu-period',
    help: 'CPU period in microseconds',
    set: (r, v) => (obj(r, 'cpu').period = num(v, 'cpu-period')),
  },
  {
    name: 'cpu-burst',
    help: 'CPU time in microseconds a period may borrow from idle ones (up to the quota)',
    set: (r, v) => (obj(r, 'cpu').burst = num(v, 'cpu-burst')),
  },
  {
    name: 'cpu-rt-period',
    help: 'real-time period in microseconds (cgroup v1)',
    set: (r, v) => (obj(r, 'cpu').realtimePeriod = num(v, 'cpu-rt-period')),
  },
  {
    name: 'cpu-rt-runtime',
    help: 'real-time CPU time in microseconds per real-time period (cgroup v1)',
    set: (r, v) => (obj(r, 'cpu').realtimeRuntime = num(v, 'cpu-rt-runtime')),
  },
  {
    name: 'cpu-idle',
    help: '1: the cgroup runs as SCHED_IDLE, 0: the default (cgroup v2)',
    set: (r, v) => (obj(r, 'cpu').idle = num(v, 'cpu-idle')),
  },
  { name: 'cpuset-cpus', help: 'CPUs to run on (0-3,5)', set: (r, v) => (obj(r, 'cpu').cpus = v) },
  { name: 'cpuset-mems', help: 'memory nodes to use', set: (r, v) => (obj(r, 'cpu').mems = v) },
  {
    name: 'pids-limit',
    help: 'maximum number of processes (-1: unlimited)',
    set: (r, v) => (obj(r, 'pids').limit = num(v, 'pids-limit')),
  },
  {
    name: 'blkio-weight',
    help: 'block IO weight (10 to 1000)',
    set: (r, v) => (obj(r, 'blockIO').weight = num(v, 'blkio-weight')),
  },
];

type Resources = Record<string, Record<string, unknown>>;

function obj(r: Resources, key: string): Record<string, unknown> {
  r[key] ??= {};
  return r[key];
}

function num(v: string, name: string): number {
  if (!/^-?\d+$/.test(v)) throw new UsageError(`--${name} must be an integer, not ${JSON.stringify(v)}`);
  return Number(v);
}

function bytes(v: string, name: string): number {
  const m = /^(-?\d+)([kKmMgGtT]?)[bB]?$/.exec(v);
  if (!m) throw new UsageError(`--${name} must be a number of bytes (like 512M), not ${JSON.stringify(v)}`);
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase()]!;
  return Number(m[1]) * unit;
}

export const command: Command = {
  name: 'update',
  summary: "change a running container's resource limits",
  usage: '[options] CONTAINER_ID',
  description: `
Applies new limits to the container's cgroup. Give single limits as options, or
a whole linux.resources document with --resources FILE (- for stdin), as runc
update does. Limits are checked before anything is written.`,
  options: [
    {
      name: 'resources',
      short: 'r',
      value: 'FILE',
      help: 'a JSON linux.resources document (- for standard input)',
    },
    // an empty help: an alias, accepted but not listed (--cpu-shares for runc's --cpu-share)
    ...FIELDS.map((f) => ({
      name: f.name,
      value: 'VALUE',
      help: f.help,
      ...(f.help ? {} : { hidden: true }),
    })),
  ],
  async run({ options, positionals: p }, globals) {
    if (p.length !== 1) throw new UsageError('berth update needs CONTAINER_ID (see berth update --help)');
    // checked field by field by @berth/cgroups before anything is written
    let resources: Resources = {};
    const file = str(options['resources']);
    if (file) {
      const text = readFileSync(file === '-' ? 0 : file, 'utf8');
      try {
        resources = JSON.parse(text);
      } catch (e) {
        throw new UsageError(`--resources ${file}: invalid JSON: ${(e as Error).message}`);
      }
    }
    for (const f of FIELDS) {
      const v = str(options[f.name]);
      if (v !== undefined) f.set(resources, v);
    }
    // --memory -1 alone: swap unlimited too (runc's rule; memory+swap below memory is refused)
    const mem = resources['memory'];
    if (mem && mem['limit'] === -1 && mem['swap'] === undefined) mem['swap'] = -1;
    if (Object.keys(resources).length === 0)
      throw new UsageError('berth update: nothing to change (see berth update --help)');
    await (await runtime(globals)).update(p[0]!, resources);
    return 0;
  },
};
