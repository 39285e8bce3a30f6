import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { str } from './common.js';
import { openStore } from './images.js';

const FORMATS = ['oci-archive', 'oci-dir', 'docker-archive'] as const;

export const command: Command = {
  name: 'save',
  summary: 'save an image to an OCI layout or docker-save archive',
  usage: '-o FILE|DIR [--format oci-archive|oci-dir|docker-archive] REF...',
  description: `
Writes images of the store with their manifests byte for byte, so digests
survive a save and load: as an OCI archive (default), an OCI layout directory
(oci-dir; images already there are kept), or an archive "docker load" reads.`,
  options: [
    { name: 'output', short: 'o', value: 'FILE|DIR', help: 'where to write' },
    { name: 'format', value: 'FORMAT', help: 'oci-archive (default), oci-dir or docker-archive' },
  ],
  async run({ options: o, positionals: p }) {
    const output = str(o['output']);
    if (output === undefined || p.length === 0)
      throw new UsageError('berth save needs -o FILE|DIR and at least one REF (see berth save --help)');
    const format = str(o['format']) ?? 'oci-archive';
    if (!(FORMATS as readonly string[]).includes(format))
      throw new UsageError(`--format must be ${FORMATS.join(', ')}, not ${JSON.stringify(format)}`);
    const { saveImages } = await import('@berth/image');
    const records = await saveImages(await openStore(), p, output, format as (typeof FORMATS)[number]);
    for (const r of records) process.stderr.write(`saved ${r.name} ${r.digest}\n`);
    return 0;
  },
};
