import { constants, openSync } from 'node:fs';
import { CgroupError, errnoOf } from '../errors.js';
import type { LinuxDeviceCgroup } from '../types.js';
import {
  attachDeviceProgram,
  closeFd,
  detachDeviceProgram,
  loadDeviceProgram,
  programFdById,
  queryDevicePrograms,
} from './bpf.js';
import { assembleDeviceProgram, encodeProgram } from './device-program.js';

function openCgroupDir(dir: string): number {
  try {
    return openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    throw new CgroupError({
      code: 'EIO',
      op: 'open',
      path: dir,
      errno: errnoOf(err),
      message: `open cgroup ${dir}: ${errnoOf(err) ?? String(err)}`,
    });
  }
}

/**
 * Replaces the cgroup's device program: the new one is attached before the
 * old ones are detached, so there is no moment without a filter.
 */
export function applyDevicesV2(dir: string, rules: LinuxDeviceCgroup[]): void {
  const insns = encodeProgram(assembleDeviceProgram(rules));
  const cgroupFd = openCgroupDir(dir);
  try {
    const old = queryDevicePrograms(cgroupFd, dir);
    const progFd = loadDeviceProgram(insns);
    try {
      attachDeviceProgram(cgroupFd, progFd, dir);
    } finally {
      // the attachment holds its own reference to the program
      closeFd(progFd);
    }
    for (const id of old) {
      const fd = programFdById(id);
      try {
        detachDeviceProgram(cgroupFd, fd, dir);
      } finally {
        closeFd(fd);
      }
    }
  } finally {
    closeFd(cgroupFd);
  }
}

export function attachedDevicePrograms(dir: string): number[] {
  const fd = openCgroupDir(dir);
  try {
    return queryDevicePrograms(fd, dir);
  } finally {
    closeFd(fd);
  }
}
