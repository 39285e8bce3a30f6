import { closeSync } from 'node:fs';
import { bufferAddress, SysError, bpf as sysBpf } from '@berth/sys';
import { CgroupError } from '../errors.js';

/**
 * The cgroup device program calls of bpf(2): the `bpf_attr` layouts live here, the system call itself in
 * @berth/sys (the only package that binds libc).
 */

const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
const BPF_PROG_DETACH = 9;
const BPF_PROG_GET_FD_BY_ID = 13;
const BPF_PROG_QUERY = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
const BPF_CGROUP_DEVICE = 6;
export const BPF_F_ALLOW_MULTI = 2;

function bpf(cmd: number, attr: Buffer, op: string, path?: string, extra = ''): number {
  try {
    return sysBpf(cmd, attr, op, path);
  } catch (err) {
    if (!(err instanceof SysError)) throw err;
    const errno = err.errno ?? `errno ${err.errnoNumber}`;
    throw new CgroupError({
      code: 'EBPF',
      op,
      path,
      errno,
      message: `${op}${path ? ` ${path}` : ''}: ${errno}${extra ? `: ${extra}` : ''}`,
      cause: err,
    });
  }
}

/** Loads a cgroup device program; on verifier rejection the verifier log is part of the error. */
export function loadDeviceProgram(insns: Buffer): number {
  const license = Buffer.from('Apache-2.0\0');
  const log = Buffer.alloc(64 * 1024);
  const attr = Buffer.alloc(128);
  attr.writeUInt32LE(BPF_PROG_TYPE_CGROUP_DEVICE, 0);
  attr.writeUInt32LE(insns.length / 8, 4);
  attr.writeBigUInt64LE(bufferAddress(insns), 8);
  attr.writeBigUInt64LE(bufferAddress(license), 16);
  try {
    return bpf(BPF_PROG_LOAD, attr, 'bpf prog load');
  } catch (err) {
    // retry with the verifier log only on failure: logging slows the happy path
    attr.writeUInt32LE(1, 24);
    attr.writeUInt32LE(log.length, 28);
    attr.writeBigUInt64LE(bufferAddress(log), 32);
    try {
      return bpf(BPF_PROG_LOAD, attr, 'bpf prog load');
    } catch (err2) {
      const text = log
        .toString('utf8', 0, Math.max(0, log.indexOf(0)))
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ');
      if (err2 instanceof CgroupError) {
        throw new CgroupError({
          code: 'EBPF',
          op: err2.op,
          errno: err2.errno,
          message: `${err2.message}${text ? `: verifier: ${text}` : ''}`,
          cause: err,
        });
      }
      throw err2;
    }
  }
}

function attachAttr(cgroupFd: number, progFd: number, flags: number): Buffer {
  const attr = Buffer.alloc(20);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(progFd, 4);
  attr.writeUInt32LE(BPF_CGROUP_DEVICE, 8);
  attr.writeUInt32LE(flags, 12);
  return attr;
}

export function attachDeviceProgram(cgroupFd: number, progFd: number, path: string): void {
  bpf(BPF_PROG_ATTACH, attachAttr(cgroupFd, progFd, BPF_F_ALLOW_MULTI), 'bpf prog attach', path);
}

export function detachDeviceProgram(cgroupFd: number, progFd: number, path: string): void {
  bpf(BPF_PROG_DETACH, attachAttr(cgroupFd, progFd, 0), 'bpf prog detach', path);
}

/** Ids of the device programs attached directly to this cgroup. */
export function queryDevicePrograms(cgroupFd: number, path: string): number[] {
  const ids = Buffer.alloc(64 * 4);
  const attr = Buffer.alloc(40);
  attr.writeUInt32LE(cgroupFd, 0);
  attr.writeUInt32LE(BPF_CGROUP_DEVICE, 4);
  attr.writeBigUInt64LE(bufferAddress(ids), 16);
  attr.writeUInt32LE(64, 24);
  bpf(BPF_PROG_QUERY, attr, 'bpf prog query', path);
  const count = attr.readUInt32LE(24);
  return Array.from({ length: count }, (_, i) => ids.readUInt32LE(i * 4));
}

export function programFdById(id: number): number {
  const attr = Buffer.alloc(12);
  attr.writeUInt32LE(id, 0);
  return bpf(BPF_PROG_GET_FD_BY_ID, attr, 'bpf prog get fd by id');
}

export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed: nothing to release
  }
}
