import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from '../command.js';
import { str } from './common.js';

export const command: Command = {
  name: 'spec',
  summary: 'write a default config.json for a bundle',
  usage: '[options]',
  description: `
Writes the same config.json as "runc spec": args ["sh"], a terminal, the default
mounts, capabilities and masked paths, and (as runc) a cgroup namespace where the
host's cgroups are v2 only. Edit it, put a root filesystem in rootfs/
and run it with "berth run -b DIR ID".`,
  options: [
    {
      name: 'bundle',
      short: 'b',
      value: 'DIR',
      help: 'where to write config.json (default: current directory)',
    },
    { name: 'rootless', help: 'a config for a container started by an unprivileged user' },
  ],
  async run({ options }) {
    const [{ defaultSpec, formatSpec }, { detectCgroupLayout }] = await Promise.all([
      import('@berth/spec'),
      import('@berth/cgroups'),
    ]);
    // runc's IsCgroup2UnifiedMode: /sys/fs/cgroup is cgroup2, no v1 hierarchies
    const cgroupNamespace = (await detectCgroupLayout().catch(() => undefined)) === 'v2';
    const file = join(resolve(str(options['bundle']) ?? '.'), 'config.json');
    if (existsSync(file)) throw new Error(`${file} already exists: remove it first`);
    writeFileSync(file, formatSpec(defaultSpec({ rootless: options['rootless'] === true, cgroupNamespace })));
    return 0;
  },
};
