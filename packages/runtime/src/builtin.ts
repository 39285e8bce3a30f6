import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { BerthError } from '@berth/sys';

/** The name of the image berth can always run: a busybox rootfs made on this machine. */
export const DEFAULT_IMAGE = 'busybox';

export interface DefaultImage {
  name: string;
  /** The unpacked root filesystem (read-only use: containers get an overlay on top). */
  rootfs: string;
  /** The image config's defaults, as an OCI image config would give them. */
  config: { Env: string[]; Cmd: string[]; WorkingDir: string };
}

const CONFIG: DefaultImage['config'] = {
  Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
  Cmd: ['sh'],
  WorkingDir: '/',
};

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
 * Makes (once) the built-in busybox image from the distribution's static
 * busybox: every applet as a link, /etc/passwd and /etc/group, the usual
 * directories. Made in a temporary directory and renamed into place, so a
 * crash never leaves half an image. Returns where it is.
 */
export function ensureDefaultImage(store = '/var/lib/berth', busybox = '/bin/busybox'): DefaultImage {
  if (!existsSync(busybox)) {
    throw new BerthError(
      `the built-in image needs a static busybox at ${busybox}: apt-get install busybox-static`,
      {
        code: 'ENOTFOUND',
        path: busybox,
      },
    );
  }
  if (isDynamic(busybox)) {
    throw new BerthError(`${busybox} is dynamically linked: the built-in image needs busybox-static`, {
      code: 'EINVAL',
      path: busybox,
    });
  }
  const st = statSync(busybox);
  const tag = createHash('sha256').update(`${st.size}:${st.mtimeMs}:1`).digest('hex').slice(0, 12);
  const dir = join(store, 'builtin', `busybox-${tag}`);
  const rootfs = join(dir, 'rootfs');
  if (existsSync(join(dir, 'ok'))) return { name: DEFAULT_IMAGE, rootfs, config: CONFIG };

  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const r = join(tmp, 'rootfs');
  for (const d of [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'etc',
    'proc',
    'sys',
    'dev',
    'root',
    'home',
    'var/log',
    'run',
    'mnt',
  ]) {
    mkdirSync(join(r, d), { recursive: true, mode: 0o755 });
  }
  mkdirSync(join(r, 'tmp'));
  chmodSync(join(r, 'tmp'), 0o1777);
  chmodSync(join(r, 'root'), 0o700);
  copyFileSync(busybox, join(r, 'bin/busybox'));
  chmodSync(join(r, 'bin/busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const applet of applets) {
    const path = join(r, applet);
    if (applet === 'bin/busybox' || existsSync(path)) continue;
    mkdirSync(dirname(path), { recursive: true });
    symlinkSync('/bin/busybox', path);
  }
  writeFileSync(
    join(r, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n',
  );
  writeFileSync(join(r, 'etc/group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
  writeFileSync(join(r, 'etc/hosts'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  writeFileSync(join(r, 'etc/resolv.conf'), '');
  writeFileSync(join(tmp, 'ok'), `${new Date().toISOString()}\n`);
  mkdirSync(dirname(dir), { recursive: true });
  try {
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    // another berth made it at the same time: theirs is as good as ours
    if (!existsSync(join(dir, 'ok'))) throw e;
  }
  return { name: DEFAULT_IMAGE, rootfs, config: CONFIG };
}
