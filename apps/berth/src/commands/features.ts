import { UsageError } from '../args.js';
import type { Command } from '../command.js';

export const command: Command = {
  name: 'features',
  summary: 'print what this runtime supports (OCI features document, JSON)',
  usage: '',
  description: `
Prints the runtime-spec features document (features.md) as "runc features"
does: the OCI versions, hooks, mount options, namespaces, capabilities, cgroup
versions, seccomp actions, operators, architectures and flags (as this host's
libseccomp knows them), and the LSMs. containerd and podman read it.`,
  options: [],
  async run({ positionals }) {
    if (positionals.length) throw new UsageError('berth features takes no arguments');
    const { features } = await import('@berth/runtime');
    process.stdout.write(`${JSON.stringify(await features(), null, 2)}\n`);
    return 0;
  },
};
