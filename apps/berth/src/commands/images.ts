import type { ImageStore } from '@berth/image';
import { UsageError } from '../args.js';
import type { Command, GlobalOptions } from '../command.js';
import { runtime } from './common.js';

/** The image store of the CLI: $BERTH_STORE, else /var/lib/berth (without root: ~/.local/share/berth). */
export async function openStore(): Promise<ImageStore> {
  const { ImageStore } = await import('@berth/image');
  const { storeRoot } = await import('@berth/runtime');
  return ImageStore.open(storeRoot());
}

/**
 * Names and digests of the images containers use: `berth run` records `name@digest`, so a container keeps
 * its image even after the name moved to a newer digest.
 */
export async function imagesInUse(globals: GlobalOptions): Promise<Set<string>> {
  const inUse = new Set<string>();
  for (const c of await (await runtime(globals)).list()) {
    if (!c.image) continue;
    inUse.add(c.image);
    const at = c.image.lastIndexOf('@');
    if (at > 0) {
      inUse.add(c.image.slice(0, at));
      inUse.add(c.image.slice(at + 1));
    }
  }
  return inUse;
}

function age(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  const s = Math.max(0, (Date.now() - t) / 1000);
  const [n, unit] =
    s < 60
      ? [s, 'second']
      : s < 3600
        ? [s / 60, 'minute']
        : s < 86400
          ? [s / 3600, 'hour']
          : s < 86400 * 30
            ? [s / 86400, 'day']
            : s < 86400 * 365
              ? [s / (86400 * 30), 'month']
              : [s / (86400 * 365), 'year'];
  const v = Math.floor(n);
  return `${v} ${unit}${v === 1 ? '' : 's'} ago`;
}

export const command: Command = {
  name: 'images',
  summary: 'list images in the store',
  usage: '[options]',
  description: `
Lists the images of the store ($BERTH_STORE, default /var/lib/berth): name, tag,
the first 12 hex digits of the manifest digest, the compressed size and when
the image was created.`,
  options: [
    { name: 'format', short: 'f', value: 'table|json', help: 'output format (default table)' },
    { name: 'quiet', short: 'q', help: 'print only the short digests' },
  ],
  async run({ options, positionals: p }) {
    if (p.length) throw new UsageError('berth images takes no arguments');
    const format = (options['format'] as string | undefined) ?? 'table';
    if (format !== 'table' && format !== 'json')
      throw new UsageError(`--format must be table or json, not ${JSON.stringify(format)}`);
    const { describeImage, formatBytes } = await import('@berth/image');
    const records = await (await openStore()).list();
    if (options['quiet']) {
      const ids = new Set(records.map((r) => r.digest.slice(7, 19)));
      for (const id of ids) process.stdout.write(`${id}\n`);
    } else if (format === 'json') {
      const out = records.map((r) => ({ ...describeImage(r), name: r.name, platform: r.platform }));
      process.stdout.write(`${JSON.stringify(out)}\n`);
    } else {
      const rows = [['REPOSITORY', 'TAG', 'DIGEST', 'SIZE', 'CREATED']];
      for (const r of records) {
        const d = describeImage(r);
        rows.push([d.repository, d.tag, d.digest.slice(7, 19), formatBytes(d.size), age(d.created)]);
      }
      const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
      for (const r of rows)
        process.stdout.write(
          `${r.map((v, i) => (i < r.length - 1 ? v.padEnd(widths[i]! + 3) : v)).join('')}\n`,
        );
    }
    return 0;
  },
};
