import { OCI_VERSION } from './constants.js';
import type { Mount, Spec } from './types.js';

export interface DefaultSpecOptions {
  /** what `runc spec --rootless` writes: a user namespace, no network namespace, no cgroup resources */
  rootless?: boolean;
  /** host uid mapped to root in a rootless spec; defaults to the effective uid of this process */
  hostUid?: number;
  /** host gid mapped to root in a rootless spec; defaults to the effective gid of this process */
  hostGid?: number;
  /**
   * A cgroup namespace: what `runc spec` adds where the host's cgroups are v2 only
   * (`/sys/fs/cgroup` is cgroup2), so the container sees its own cgroup as the root.
   */
  cgroupNamespace?: boolean;
}

// the three capabilities runc grants by default, in runc's order
const DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

function mounts(rootless: boolean): Mount[] {
  const devptsOptions = ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620'];
  // an unprivileged user cannot mount sysfs nor chown pty nodes to the tty group
  if (!rootless) devptsOptions.push('gid=5');
  const sys: Mount = rootless
    ? {
        destination: '/sys',
        type: 'none',
        source: '/sys',
        options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
      }
    : { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] };
  return [
    { destination: '/proc', type: 'proc', source: 'proc' },
    {
      destination: '/dev',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
    },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: devptsOptions },
    {
      destination: '/dev/shm',
      type: 'tmpfs',
      source: 'shm',
      options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
    },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    sys,
    {
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    },
  ];
}

/**
 * The config.json `runc spec` (or `runc spec --rootless`) writes, with our
 * ociVersion. Key order follows runc's output so formatSpec() diffs cleanly
 * against it. A fresh object on every call: callers may mutate it.
 */
export function defaultSpec(opts: DefaultSpecOptions = {}): Spec {
  const rootless = opts.rootless === true;
  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: {
        bounding: [...DEFAULT_CAPS],
        effective: [...DEFAULT_CAPS],
        permitted: [...DEFAULT_CAPS],
        ambient: [...DEFAULT_CAPS],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'runc',
    mounts: mounts(rootless),
    linux: {},
  };
  const linux = spec.linux ?? {};
  if (rootless) {
    const hostUid = opts.hostUid ?? process.geteuid?.() ?? 0;
    const hostGid = opts.hostGid ?? process.getegid?.() ?? 0;
    linux.uidMappings = [{ containerID: 0, hostID: hostUid, size: 1 }];
    linux.gidMappings = [{ containerID: 0, hostID: hostGid, size: 1 }];
    // without privileges a new network namespace would have no usable link, so runc keeps the host's
    linux.namespaces = [
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      ...(opts.cgroupNamespace ? [{ type: 'cgroup' as const }] : []),
      { type: 'user' },
    ];
  } else {
    linux.resources = { devices: [{ allow: false, access: 'rwm' }] };
    linux.namespaces = [
      { type: 'pid' },
      { type: 'network' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      ...(opts.cgroupNamespace ? [{ type: 'cgroup' as const }] : []),
    ];
  }
  linux.maskedPaths = [
    '/proc/acpi',
    '/proc/asound',
    '/proc/kcore',
    '/proc/keys',
    '/proc/latency_stats',
    '/proc/timer_list',
    '/proc/timer_stats',
    '/proc/sched_debug',
    '/sys/firmware',
    '/proc/scsi',
  ];
  linux.readonlyPaths = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
  return spec;
}
