import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { str } from './common.js';
import { openStore } from './images.js';

export const command: Command = {
  name: 'load',
  summary: 'load images from an OCI layout or docker-save archive',
  usage: '-i FILE|DIR',
  description: `
Loads every image of an OCI image layout directory, an OCI archive (a tar of
one) or a "docker save" archive (plain or compressed) into the store. Every
blob is checked against its digest first. Prints one "loaded NAME" line each.`,
  options: [
    { name: 'input', short: 'i', value: 'FILE|DIR', help: 'the archive or layout directory to read' },
    { name: 'repository', value: 'NAME', help: 'repository for images the archive names only by tag' },
  ],
  async run({ options: o, positionals: p }) {
    const input = str(o['input']) ?? (p.length === 1 ? p[0] : undefined);
    if (input === undefined || p.length > 1)
      throw new UsageError('berth load needs -i FILE|DIR (see berth load --help)');
    const { loadImages } = await import('@berth/image');
    const repository = str(o['repository']);
    const records = await loadImages(
      await openStore(),
      input,
      repository !== undefined ? { repository } : {},
    );
    for (const r of records) process.stdout.write(`loaded ${r.name} ${r.digest}\n`);
    return 0;
  },
};
