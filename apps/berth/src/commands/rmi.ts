import { UsageError } from '../args.js';
import type { Command } from '../command.js';
import { imagesInUse, openStore } from './images.js';

export const command: Command = {
  name: 'rmi',
  summary: 'remove images from the store',
  usage: '[options] REF...',
  description: `
Removes image names (busybox, host:5000/app:1, or a digest prefix as "berth
images" shows it), then the blobs and unpacked layers nothing else uses. An
image a container uses (running or kept) is never removed: delete the container
first. Exit status 1 when any REF could not be removed.`,
  options: [{ name: 'force', short: 'f', help: 'do not complain about images that are not in the store' }],
  async run({ options: o, positionals: p }, globals) {
    if (p.length === 0) throw new UsageError('berth rmi needs at least one REF (see berth rmi --help)');
    const { ImageError } = await import('@berth/image');
    const { pruneLayers } = await import('@berth/rootfs');
    const store = await openStore();
    const inUse = await imagesInUse(globals);
    let status = 0;
    for (const ref of p) {
      try {
        const r = await store.remove(ref, { inUse });
        process.stdout.write(`removed ${r.name}\n`);
      } catch (err) {
        if (o['force'] === true && err instanceof ImageError && err.code === 'ENOTFOUND') continue;
        if (!(err instanceof ImageError)) throw err;
        process.stderr.write(`berth: ${err.message}\n`);
        status = 1;
      }
    }
    await pruneLayers(store);
    return status;
  },
};
