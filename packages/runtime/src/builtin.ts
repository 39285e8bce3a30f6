import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { ImageRecord, ImageStore, TarInput } from '@berth/image';
import { BerthError } from '@berth/sys';
import { storeRoot } from './rootless.js';

/** The short name users type for the image berth can always run. */
export const DEFAULT_IMAGE = 'busybox';
/** Its name in the store: made on this machine, so it lives under the `localhost` registry, as podman's do. */
export const BUILTIN_IMAGE = 'localhost/busybox:latest';
/** Records which busybox binary an image was made from, so an upgraded busybox-static gives a new image. */
const SOURCE_LABEL = 'org.berth.builtin.source';

export interface DefaultImage {
  /** the canonical name: localhost/busybox:latest */
  name: string;
  record: ImageRecord;
  /** the tree the layer was made from (kept for tools that want a plain rootfs directory) */
  rootfs: string;
}

const ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'];

/** Whether an ELF file asks for a dynamic loader (a PT_INTERP program header). */
function isDynamic(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    if (head.toString('latin1', 1, 4) !== 'ELF' || head[4] !== 2) return true; // not a 64-bit ELF: do not trust it
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if (ph.readUInt32LE(i * phentsize) === 3) return true;
    return false;
  } finally {
    closeSync(fd);
  }
}

/**
 * The image's one layer as tar entries, sorted and with fixed times, so the same busybox binary always gives
 * the same layer digest (two machines, or a rebuild after `berth prune -a`, agree).
 */
export function builtinEntries(busybox: string, mtime: number): TarInput[] {
  const entries = new Map<string, TarInput>();
  const dir = (name: string, mode = 0o755) => entries.set(name, { name, type: 'dir', mode, mtime });
  const file = (name: string, body: Buffer, mode = 0o644) =>
    entries.set(name, { name, type: 'file', mode, mtime, body, size: body.length });
  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'home']) dir(d);
  for (const d of ['var', 'var/log', 'run', 'mnt']) dir(d);
  dir('tmp', 0o1777);
  dir('root', 0o700);
  file('bin/busybox', readFileSync(busybox), 0o755);
  const applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const applet of applets) {
    if (entries.has(applet)) continue;
    for (let p = dirname(applet); p !== '.' && !entries.has(p); p = dirname(p)) dir(p);
    entries.set(applet, { name: applet, type: 'symlink', linkname: '/bin/busybox', mode: 0o777, mtime });
  }
  file(
    'etc/passwd',
    Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'),
  );
  file('etc/group', Buffer.from('root:x:0:\ntty:x:5:\nnogroup:x:65534:\n'));
  file('etc/hosts', Buffer.from('127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'));
  file('etc/resolv.conf', Buffer.alloc(0));
  return [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The same entries as a directory: `$BERTH_STORE/builtin/busybox-<tag>/rootfs`, for tools that copy a rootfs. */
function materialize(entries: TarInput[], dir: string): void {
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const root = join(tmp, 'rootfs');
  mkdirSync(root, { recursive: true, mode: 0o755 });
  for (const e of entries) {
    const path = join(root, e.name);
    if (e.type === 'dir') {
      mkdirSync(path, { recursive: true });
      chmodSync(path, e.mode ?? 0o755);
    } else if (e.type === 'file') {
      writeFileSync(path, e.body as Buffer);
      chmodSync(path, e.mode ?? 0o644);
    } else if (e.type === 'symlink') symlinkSync(e.linkname ?? '', path);
  }
  writeFileSync(join(tmp, 'ok'), `${new Date().toISOString()}\n`);
  mkdirSync(dirname(dir), { recursive: true });
  try {
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // another berth made it at the same time: theirs is as good as ours
    if (!existsSync(join(dir, 'ok'))) throw e;
  }
}

async function tarOf(entries: TarInput[]): Promise<Buffer> {
  const { writeTar } = await import('@berth/image');
  const chunks: Buffer[] = [];
  for await (const c of writeTar(entries)) chunks.push(c);
  return Buffer.concat(chunks);
}

/**
 * Makes (once) the built-in image `localhost/busybox:latest` in the store from the distribution's static
 * busybox: one uncompressed layer (every applet a symlink, /etc/passwd and /etc/group, the usual
 * directories), a config with PATH and Cmd ["sh"], and an OCI manifest. It is an ordinary image from then on:
 * `berth images` lists it, `berth save` exports it, `berth rmi` removes it (and the next run makes it again).
 */
export async function ensureDefaultImage(
  store: ImageStore | string = storeRoot(),
  busybox = '/bin/busybox',
): Promise<DefaultImage> {
  const { ImageStore, MediaType, recordImage } = await import('@berth/image');
  const images = typeof store === 'string' ? await ImageStore.open(store) : store;
  if (!existsSync(busybox)) {
    throw new BerthError(
      `the built-in image needs a static busybox at ${busybox}: apt-get install busybox-static`,
      { code: 'ENOTFOUND', op: 'make built-in image', path: busybox },
    );
  }
  if (isDynamic(busybox)) {
    throw new BerthError(`${busybox} is dynamically linked: the built-in image needs busybox-static`, {
      code: 'EINVAL',
      op: 'make built-in image',
      path: busybox,
    });
  }
  const st = statSync(busybox);
  const tag = createHash('sha256').update(`${st.size}:${st.mtimeMs}:2`).digest('hex').slice(0, 12);
  const rootfsDir = join(images.root, 'builtin', `busybox-${tag}`);
  const rootfs = join(rootfsDir, 'rootfs');
  const existing = await images.get(BUILTIN_IMAGE);
  if (existing !== undefined && existsSync(join(rootfsDir, 'ok'))) {
    const config = await images.imageConfig(existing).catch(() => undefined);
    const complete = await Promise.all(existing.layers.map((l) => images.hasBlob(l.digest, l.size)));
    if (config?.config?.Labels?.[SOURCE_LABEL] === tag && complete.every(Boolean)) {
      return { name: BUILTIN_IMAGE, record: existing, rootfs };
    }
  }
  const mtime = Math.floor(st.mtimeMs / 1000);
  const entries = builtinEntries(busybox, mtime);
  if (!existsSync(join(rootfsDir, 'ok'))) materialize(entries, rootfsDir);
  const layer = await tarOf(entries);
  const layerDigest = await images.writeBlob(layer);
  const config = Buffer.from(
    JSON.stringify({
      created: new Date(mtime * 1000).toISOString(),
      architecture: (await import('@berth/image')).hostPlatform().architecture,
      os: 'linux',
      config: { Env: ENV, Cmd: ['sh'], WorkingDir: '/', Labels: { [SOURCE_LABEL]: tag } },
      rootfs: { type: 'layers', diff_ids: [layerDigest] },
      history: [{ created_by: `berth: built-in image from ${busybox}` }],
    }),
  );
  const configDigest = await images.writeBlob(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.ociManifest,
      config: { mediaType: MediaType.ociConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaType.ociLayer, digest: layerDigest, size: layer.length }],
    }),
  );
  const manifestDigest = await images.writeBlob(manifest);
  const record = await recordImage(images, BUILTIN_IMAGE, manifestDigest);
  return { name: BUILTIN_IMAGE, record, rootfs };
}
