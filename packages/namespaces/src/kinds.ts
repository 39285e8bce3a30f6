import {
  CLONE_NEWCGROUP,
  CLONE_NEWIPC,
  CLONE_NEWNET,
  CLONE_NEWNS,
  CLONE_NEWPID,
  CLONE_NEWTIME,
  CLONE_NEWUSER,
  CLONE_NEWUTS,
} from '@berth/sys';

/** The OCI namespace types. */
export type NamespaceKind = 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup' | 'time';

export interface NamespaceInfo {
  /** The clone(2)/setns(2) flag. */
  flag: number;
  /** The name under /proc/PID/ns/. */
  proc: string;
}

export const NAMESPACES: Readonly<Record<NamespaceKind, NamespaceInfo>> = {
  user: { flag: CLONE_NEWUSER, proc: 'user' },
  pid: { flag: CLONE_NEWPID, proc: 'pid' },
  network: { flag: CLONE_NEWNET, proc: 'net' },
  mount: { flag: CLONE_NEWNS, proc: 'mnt' },
  ipc: { flag: CLONE_NEWIPC, proc: 'ipc' },
  uts: { flag: CLONE_NEWUTS, proc: 'uts' },
  cgroup: { flag: CLONE_NEWCGROUP, proc: 'cgroup' },
  time: { flag: CLONE_NEWTIME, proc: 'time' },
};

/**
 * The order in which existing namespaces are joined: the user namespace first
 * (it owns the others), the mount namespace last (joining it changes the paths
 * the other namespace files are found at).
 */
export const JOIN_ORDER: readonly NamespaceKind[] = [
  'user',
  'ipc',
  'uts',
  'network',
  'pid',
  'cgroup',
  'time',
  'mount',
];

export function isNamespaceKind(value: string): value is NamespaceKind {
  return Object.hasOwn(NAMESPACES, value);
}
