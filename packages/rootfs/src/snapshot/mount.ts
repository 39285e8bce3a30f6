import { readFile } from 'node:fs/promises';
import { libc, SysError, strerror } from '@berth/sys';
import { ImageRootfsError } from '../layers/errors.js';

/** mount(2) and umount2(2) through @berth/sys, with the failure named in snapshot terms. */
async function sys(
  op: string,
  path: string,
  call: (s: Awaited<ReturnType<typeof libc>>) => void,
): Promise<void> {
  const s = await libc();
  try {
    call(s);
  } catch (err) {
    const why =
      err instanceof SysError ? `${err.errno} (${strerror(err.errnoNumber)})` : (err as Error).message;
    throw new ImageRootfsError('EMOUNT', `${op} ${path}: ${why}`, {
      op,
      path,
      cause: err,
    });
  }
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points in this mount namespace, from /proc/self/mountinfo (field 5). */
export async function mountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => unescapeOctal(line.split(' ')[4] ?? ''));
}

export async function isMounted(path: string): Promise<boolean> {
  return (await mountPoints()).includes(path);
}

export interface OverlayDirs {
  /** bottom layer first, as images list them */
  lower: string[];
  upper: string;
  work: string;
}

function checkOption(path: string): void {
  // overlayfs splits its options on ',' and lowerdir on ':'; such paths cannot be passed without escaping
  if (/[,:\\]/.test(path)) {
    throw new ImageRootfsError(
      'EMOUNT',
      `overlay path ${path} contains ',', ':' or '\\', which mount options cannot carry`,
      {
        op: 'mount overlay',
        path,
      },
    );
  }
}

export function overlayOptions(dirs: OverlayDirs): string {
  for (const p of [...dirs.lower, dirs.upper, dirs.work]) checkOption(p);
  // overlayfs wants the topmost lower layer first
  const lower = [...dirs.lower].reverse().join(':');
  const opts = `lowerdir=${lower},upperdir=${dirs.upper},workdir=${dirs.work}`;
  if (opts.length > 4000) {
    throw new ImageRootfsError(
      'EMOUNT',
      `overlay options for ${dirs.lower.length} layers exceed the kernel's page-size limit`,
      {
        op: 'mount overlay',
        path: dirs.upper,
      },
    );
  }
  return opts;
}

export async function mountOverlay(target: string, dirs: OverlayDirs): Promise<void> {
  const options = overlayOptions(dirs);
  await sys('mount overlay', target, (s) => s.mount('overlay', target, 'overlay', 0, options));
}

export async function unmount(target: string): Promise<void> {
  await sys('unmount', target, (s) => s.umount(target, 0));
}
