import { createRequire } from 'node:module';
import { SysError } from './errors.js';

/**
 * bpf(2), the raw call: the caller lays out `union bpf_attr` in a Buffer (its fields are little-endian on the
 * architectures berth supports) and gets the return value, or a `SysError`. koffi is loaded on first use, so
 * users who never attach a device program never load a native module.
 */

const SYS_BPF: Record<string, number> = { x64: 321, arm64: 280 };

type Fn = (...args: unknown[]) => number | bigint;

interface Native {
  syscall: Fn;
  errno: () => number;
  address: (b: Buffer) => bigint;
}

let native: Native | undefined;

function load(): Native {
  if (native !== undefined) return native;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as {
    load(name: string): { func(sig: string): Fn };
    errno(): number;
    address(b: Buffer): bigint;
  };
  const lib = koffi.load('libc.so.6');
  // variadic in C; a fixed prototype passes int and pointer arguments identically on x86_64 and aarch64 Linux
  native = {
    syscall: lib.func('long syscall(long nr, int cmd, void *attr, unsigned int size)'),
    errno: () => koffi.errno(),
    address: (b) => koffi.address(b),
  };
  return native;
}

/** bpf(cmd, attr, attr.length). `op` and `path` name the call in the error. */
export function bpf(cmd: number, attr: Buffer, op = 'bpf', path?: string): number {
  const n = load();
  const nr = SYS_BPF[process.arch];
  if (nr === undefined) throw new SysError(op, 38, path);
  const r = Number(n.syscall(nr, cmd, attr, attr.length));
  if (r < 0) throw new SysError(op, n.errno(), path);
  return r;
}

/**
 * The address of a Buffer's memory, for the pointer fields of `bpf_attr` (instructions, license, log, ids).
 * The Buffer must stay referenced until the call that uses the address returns.
 */
export function bufferAddress(buf: Buffer): bigint {
  return load().address(buf);
}
