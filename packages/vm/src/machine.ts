import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Accel } from './accel.js';
import type { VmSize } from './resources.js';
import type { RootfsShare } from './share.js';

/** Everything needed to start one microVM. */
export interface MachineConfig {
  /** The qemu-system binary for the host architecture. */
  qemu: string;
  accel: Accel;
  size: VmSize;
  /** The kernel image (`-kernel`) and the initramfs berth wrote (`-initrd`). */
  kernel: string;
  initrd: string;
  /** Kernel command line words. */
  cmdline: string[];
  share: RootfsShare;
  /** More directories shared by 9p (the sources of the bundle's bind mounts), tags `share0`, `share1`, … */
  shares?: Array<{ path: string; readonly: boolean }>;
  /**
   * A directory private to this VM: the control sockets, and the status file and the
   * console and QEMU logs that berth-vmm writes (each bounded: nothing the guest sends
   * reaches a host file unparsed or without a size limit).
   */
  runDir: string;
  /**
   * Where the container's stdio is in QEMU's own fd table: stdin is QEMU's
   * stdin (a `stdio` chardev), stdout and stderr are reopened through /dev/fd.
   */
  stdoutFd: number;
  stderrFd: number;
  /** Which of them are sockets: those QEMU takes over as connected sockets (they cannot be reopened through /dev/fd). */
  socketFds?: number[];
  /** QEMU's seccomp sandbox (on unless the QEMU build lacks it). */
  sandbox: boolean;
  /**
   * A NIC: a virtio-net device on the host tap `tap` (made by berth beforehand,
   * already on the bridge; QEMU attaches to it by name), with the MAC `mac`.
   */
  net?: { tap: string; mac: string };
  /** A virtio-balloon device, so `update --memory` can take memory back (default on). */
  balloon?: boolean;
}

/**
 * microvm's virtio-mmio transports (QEMU's VIRTIO_NUM_TRANSPORTS): the
 * virtio-serial device, the rootfs share, the balloon, the NIC and the extra
 * shares all take one.
 */
export const MMIO_SLOTS = 8;

/**
 * Where QEMU finds the host end of the `berth.status` port and of the guest's
 * serial console: sockets berth-vmm (native/vmm.c, QEMU's parent) made and
 * reads, so that it parses the status lines and bounds the console log.
 */
export const VMM_STATUS_FD = 4;
export const VMM_CONSOLE_FD = 5;

/** The files and sockets of a VM's run directory. */
export function runFiles(runDir: string) {
  return {
    ctl: join(runDir, 'ctl.sock'),
    qmp: join(runDir, 'qmp.sock'),
    /** The guest's state as berth-vmm parsed it from the status port (a few lines, replaced by rename). */
    status: join(runDir, 'status'),
    /** The guest's serial console: at most 256 KiB, then moved to `consoleOld` (berth-vmm). */
    console: join(runDir, 'console.log'),
    consoleOld: join(runDir, 'console.log.1'),
    /** QEMU's stderr: its first 256 KiB (berth-vmm). */
    qemuLog: join(runDir, 'qemu.log'),
    initrd: join(runDir, 'initrd'),
    execIn: join(runDir, 'exec-stdin.sock'),
    execOut: join(runDir, 'exec-stdout.sock'),
    execErr: join(runDir, 'exec-stderr.sock'),
  };
}

/** A QEMU option value: commas are doubled, as QEMU's option parser wants. */
function q(value: string): string {
  return value.replace(/,/g, ',,');
}

function output(id: string, fd: number, sockets: number[] = []): string {
  return sockets.includes(fd) ? `socket,id=${id},fd=${fd}` : `file,id=${id},path=/dev/fd/${fd},append=on`;
}

/** Turns a machine config into QEMU's argv (pure; unit-tested without QEMU). */
export function planQemu(c: MachineConfig): string[] {
  const f = runFiles(c.runDir);
  const port = (id: string, name: string) => ['-device', `virtserialport,chardev=${id},name=${name}`];
  const share = c.share;
  return [
    '-M',
    // microvm: virtio-mmio only; the PIT and RTC keep TCG's timekeeping sane, no PIC
    'microvm,pit=on,pic=off,rtc=on,isa-serial=on',
    '-accel',
    c.accel,
    ...(c.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-smp',
    String(c.size.vcpus),
    '-m',
    `${c.size.memoryMiB}M`,
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    ...(c.sandbox
      ? ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny']
      : []),
    '-kernel',
    c.kernel,
    '-initrd',
    c.initrd,
    '-append',
    c.cmdline.join(' '),
    // QEMU's monitor (QMP) for pause and resume: a socket only berth's run directory holds
    '-qmp',
    `unix:${q(f.qmp)},server=on,wait=off`,
    // the console and the status port go to berth-vmm, which bounds what it keeps of them
    '-chardev',
    `socket,id=con,fd=${VMM_CONSOLE_FD}`,
    '-serial',
    'chardev:con',
    '-device',
    'virtio-serial-device,max_ports=16',
    '-chardev',
    `socket,id=ctl,path=${q(f.ctl)},server=on,wait=off`,
    ...port('ctl', 'berth.ctl'),
    '-chardev',
    `socket,id=status,fd=${VMM_STATUS_FD}`,
    ...port('status', 'berth.status'),
    '-chardev',
    'stdio,id=stdin,signal=off',
    ...port('stdin', 'berth.stdin'),
    '-chardev',
    output('stdout', c.stdoutFd, c.socketFds),
    ...port('stdout', 'berth.stdout'),
    '-chardev',
    output('stderr', c.stderrFd, c.socketFds),
    ...port('stderr', 'berth.stderr'),
    '-chardev',
    `socket,id=xin,path=${q(f.execIn)},server=on,wait=off`,
    ...port('xin', 'berth.exec-stdin'),
    '-chardev',
    `socket,id=xout,path=${q(f.execOut)},server=on,wait=off`,
    ...port('xout', 'berth.exec-stdout'),
    '-chardev',
    `socket,id=xerr,path=${q(f.execErr)},server=on,wait=off`,
    ...port('xerr', 'berth.exec-stderr'),
    '-fsdev',
    `local,id=root,path=${q(share.path)},security_model=${share.securityModel}${share.readonly ? ',readonly=on' : ''}`,
    '-device',
    `virtio-9p-device,fsdev=root,mount_tag=${share.tag}`,
    // a balloon to take memory back at `update --memory` (the guest's virtio_balloon inflates it)
    ...(c.balloon !== false ? ['-device', 'virtio-balloon-device,id=balloon0'] : []),
    // the NIC on berth's bridge: a tap berth made (persistent, on the bridge); QEMU only opens it
    ...(c.net
      ? [
          '-netdev',
          `tap,id=net0,ifname=${q(c.net.tap)},script=no,downscript=no`,
          '-device',
          `virtio-net-device,netdev=net0,mac=${c.net.mac}`,
        ]
      : []),
    ...(c.shares ?? []).flatMap((s, i) => [
      '-fsdev',
      `local,id=share${i},path=${q(s.path)},security_model=passthrough${s.readonly ? ',readonly=on' : ''}`,
      '-device',
      `virtio-9p-device,fsdev=share${i},mount_tag=share${i}`,
    ]),
  ];
}

/** The host's TSC frequency in kHz (from /proc/cpuinfo), for `tsc_early_khz=`: without it TCG guests can hang calibrating. */
export function hostTscKhz(): number | undefined {
  try {
    const mhz = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync('/proc/cpuinfo', 'latin1'))?.[1];
    return mhz ? Math.round(Number(mhz) * 1000) : undefined;
  } catch {
    return undefined;
  }
}

/** The kernel command line of a berth guest. */
export function guestCmdline(accel: Accel, extra: string[] = []): string[] {
  const tsc = accel === 'tcg' ? hostTscKhz() : undefined;
  return [
    'console=ttyS0',
    'quiet',
    'panic=-1',
    'rdinit=/init',
    'i8042.noaux',
    'i8042.nokbd',
    ...(tsc ? [`tsc_early_khz=${tsc}`] : []),
    ...extra,
  ];
}
