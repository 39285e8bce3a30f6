import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { imagesInUse, openStore } from './images.js';

export const command: Command = {
  name: 'prune',
  summary: 'remove unused images and layers',
  usage: '[options]',
  description: `
Removes blobs no image references, unpacked layers no image or container uses,
and downloads left by pulls that died. With -a also every image no container
uses. Nothing a container (running or kept) stands on is ever removed.`,
  options: [{ name: 'all', short: 'a', help: 'also remove every image no container uses' }],
  async run({ options: o, positionals: p }, globals) {
    if (p.length) throw new UsageError('berth prune takes no arguments');
    const { formatBytes } = await import('@berth/image');
    const { pruneLayers } = await import('@berth/rootfs');
    const store = await openStore();
    const result = await store.prune({ inUse: await imagesInUse(globals), all: o['all'] === true });
    const layers = await pruneLayers(store);
    for (const name of result.removedImages) process.stdout.write(`removed ${name}\n`);
    process.stdout.write(
      `removed ${result.removedImages.length} images, ${result.removedBlobs.length} blobs, ${layers.removed.length} unpacked layers; freed ${formatBytes(result.freedBytes)}\n`,
    );
    return 0;
  },
};
