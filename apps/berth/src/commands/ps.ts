import { spawn } from 'node:child_process';
import type { ContainerRecord, Runtime } from '@berth/runtime';
import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { runtime } from './common.js';

export const command: Command = {
  name: 'ps',
  summary: 'list the processes of a container',
  usage: '[options] CONTAINER_ID [PS_OPTIONS...]\n       berth ps [--format json]',
  description:
    'Prints ps(1) lines for the processes of the container (default ps options: -ef), or with --format json a JSON array of their pids. Without CONTAINER_ID, lists the containers as podman ps does: image, status, address and published ports.',
  stopAtPositional: true,
  options: [{ name: 'format', short: 'f', value: 'table|json', help: 'output format (default table)' }],
  async run({ options, positionals: p }, globals) {
    const [id, ...psArgs] = p;
    const format = (options['format'] as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json')
      throw new UsageError(`--format must be table or json, not ${JSON.stringify(format)}`);
    if (!id) return listContainers(await runtime(globals), format);
    const pids = await (await runtime(globals)).ps(id);
    if (format === 'json') {
      process.stdout.write(`${JSON.stringify(pids)}\n`);
      return 0;
    }
    await filteredPs(psArgs.length ? psArgs : ['-ef'], new Set(pids));
    return 0;
  },
};

/** podman-style `ps`: every container with its image, status, address and published ports. */
async function listContainers(rt: Runtime, format: 'table' | 'json'): Promise<number> {
  const rows = [];
  for (const c of await rt.list()) {
    let network: ContainerRecord['network'];
    try {
      network = rt.store.read(c.id).network;
    } catch {
      // removed meanwhile
    }
    const ports = (network?.ports ?? []).map(
      (m) => `${m.hostIp ?? '0.0.0.0'}:${m.hostPort}->${m.containerPort}/${m.protocol}`,
    );
    rows.push({
      id: c.id,
      image: c.image ?? '',
      status: c.status,
      network: network?.network ?? '',
      address: network?.address ?? '',
      ports,
    });
  }
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return 0;
  }
  const table = [['ID', 'IMAGE', 'STATUS', 'NETWORK', 'ADDRESS', 'PORTS']];
  for (const r of rows) table.push([r.id, r.image, r.status, r.network, r.address, r.ports.join(', ')]);
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table)
    process.stdout.write(
      `${r
        .map((v, i) => (i < r.length - 1 ? v.padEnd(widths[i]! + 3) : v))
        .join('')
        .trimEnd()}\n`,
    );
  return 0;
}

/**
 * ps(1) with `args`, its header and the lines of `wanted` pids printed as they come. The host's
 * whole `ps` output is never held: a container's processes can make it as large as they like
 * (long command lines), and the output of every other process on the host is not ours to keep.
 */
async function filteredPs(args: string[], wanted: Set<number>): Promise<void> {
  const child = spawn('ps', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let col = -1;
  let partial = '';
  const take = (line: string) => {
    if (col < 0) {
      col = line.trim().split(/\s+/).indexOf('PID');
      if (col < 0) throw new Error('ps output has no PID column');
      process.stdout.write(`${line}\n`);
    } else if (wanted.has(Number(line.trim().split(/\s+/)[col]))) process.stdout.write(`${line}\n`);
  };
  child.stdout.setEncoding('utf8');
  for await (const chunk of child.stdout as AsyncIterable<string>) {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) take(line);
  }
  if (partial) take(partial);
  const code = await new Promise<number | null>((resolve, reject) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  if (code !== 0) throw new Error(`ps ${args.join(' ')} exited with status ${code}`);
}
