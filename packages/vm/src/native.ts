import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError, launcherSource } from '@berth/sys';
import { envOverride } from './env.js';

let root: string | undefined;

/** This package's directory (its native/), also when bundled into the berth CLI. */
export function vmPackageDir(): string {
  if (root) return root;
  const here = dirname(fileURLToPath(import.meta.url));
  root = existsSync(join(here, '..', 'native', 'agent.c'))
    ? join(here, '..')
    : dirname(createRequire(import.meta.url).resolve('@berth/vm/package.json'));
  return root;
}

/** The guest agent's C source. */
export function agentSource(): string {
  return join(vmPackageDir(), 'native', 'agent.c');
}

export interface GuestBinaries {
  agent: string;
  launcher: string;
  /** The host side: QEMU's parent, whose exit status is the container's (native/vmm.c). */
  vmm: string;
}

/**
 * musl's headers do not include the kernel's (linux/, asm/): a directory of
 * links to the distribution's (linux-libc-dev) lets musl-gcc build the launcher.
 */
function kernelHeaders(dir: string): string {
  const inc = join(dir, 'include');
  if (existsSync(join(inc, 'linux'))) return inc;
  const asm = ['/usr/include/x86_64-linux-gnu/asm', '/usr/include/asm'].find((p) => existsSync(p));
  if (!existsSync('/usr/include/linux') || !asm) {
    throw new BerthError('the VM guest agent needs the kernel headers: apt-get install linux-libc-dev', {
      code: 'EAGENT',
    });
  }
  const tmp = `${inc}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  symlinkSync('/usr/include/linux', join(tmp, 'linux'));
  symlinkSync(asm, join(tmp, 'asm'));
  symlinkSync('/usr/include/asm-generic', join(tmp, 'asm-generic'));
  try {
    renameSync(tmp, inc);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another process made it
  }
  return inc;
}

function build(source: string, name: string, dir: string, cc: string): string {
  // the source and the headers beside it (the launcher includes its own)
  const h = createHash('sha256').update(readFileSync(source));
  for (const f of readdirSync(dirname(source)).sort())
    if (f.endsWith('.h')) h.update(f).update(readFileSync(join(dirname(source), f)));
  const hash = h.digest('hex').slice(0, 16);
  const out = join(dir, `${name}-${hash}`);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  const inc = kernelHeaders(dir);
  const tmp = `${out}.${process.pid}.tmp`;
  const r = spawnSync(cc, ['-static', '-O2', '-Wall', '-isystem', inc, '-o', tmp, source], {
    encoding: 'utf8',
  });
  if (r.status !== 0 || !existsSync(tmp)) {
    const why = r.error ? r.error.message : (r.stderr || '').trim().split('\n').slice(-3).join('; ');
    throw new BerthError(
      `cannot build the VM guest ${name} with ${cc} (apt-get install musl-tools): ${why}`,
      { code: 'EAGENT', path: source },
    );
  }
  renameSync(tmp, out);
  return out;
}

/**
 * The guest's two programs, static with musl (no C library in the guest): the
 * agent (PID 1) and the berth launcher from @berth/sys's source. Built once
 * per source version into `dir`.
 */
export function guestBinaries(dir: string): GuestBinaries {
  const cc = envOverride('BERTH_MUSL_GCC') ?? 'musl-gcc';
  return {
    agent: build(agentSource(), 'agent', dir, cc),
    launcher: build(launcherSource(), 'launcher', dir, cc),
    vmm: vmmBinary(dir),
  };
}

/** berth-vmm (native/vmm.c), the host side of a VM: built once per source version into `dir`. */
export function vmmBinary(dir: string): string {
  return build(
    join(vmPackageDir(), 'native', 'vmm.c'),
    'vmm',
    dir,
    envOverride('BERTH_MUSL_GCC') ?? 'musl-gcc',
  );
}
