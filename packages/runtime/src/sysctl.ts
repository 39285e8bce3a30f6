import { statSync } from 'node:fs';
import type { Spec } from '@berth/spec';
import { BerthError, type PlanStep } from '@berth/sys';

/** IPC sysctls (runc's list): namespaced by the IPC namespace. */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

/** A sysctl name: dot- (or slash-) separated words, nothing that could climb out of /proc/sys. */
const COMPONENT = /^[A-Za-z0-9_\-:@+]+$/;

function refuse(key: string, why: string): BerthError {
  return new BerthError(`linux.sysctl.${key}: ${why}`, { code: 'EINVALIDSPEC', path: key });
}

function sameNamespaceAsOurs(path: string, kind: string): boolean {
  try {
    const theirs = statSync(path);
    const ours = statSync(`/proc/self/ns/${kind}`);
    return theirs.ino === ours.ino && theirs.dev === ours.dev;
  } catch {
    return false; // a path that cannot be read fails later, at setns, with its own error
  }
}

/**
 * Plans `linux.sysctl` as writes through the launcher's verified procfs handle.
 * Only sysctls that a namespace of the container's own isolates are accepted,
 * with runc's rules: IPC ones (`kernel.msg*`, `kernel.sem`, `kernel.shm*`,
 * `fs.mqueue.*`) with an IPC namespace, `net.*` with a network namespace that
 * is not the runtime's, `kernel.domainname` with a UTS namespace (and the
 * `domainname` field's value, if it has one: crun's rule; `kernel.hostname`
 * conflicts with the `hostname` field). Anything else would
 * change the host, and is refused with its key named.
 */
export function planSysctls(spec: Spec): PlanStep[] {
  const sysctl = spec.linux?.sysctl ?? {};
  const namespaces = spec.linux?.namespaces ?? [];
  const ns = (type: string) => namespaces.find((n) => n.type === type);
  const steps: PlanStep[] = [];
  for (const [raw, value] of Object.entries(sysctl)) {
    const key = raw.replace(/\//g, '.');
    const parts = key.split('.');
    if (!parts.every((p) => COMPONENT.test(p))) throw refuse(raw, 'is not a sysctl name');
    if (typeof value !== 'string') throw refuse(raw, 'the value must be a string');
    if (IPC_SYSCTLS.has(key) || key.startsWith('fs.mqueue.')) {
      const ipc = ns('ipc');
      if (!ipc || (ipc.path && sameNamespaceAsOurs(ipc.path, 'ipc')))
        throw refuse(raw, "is not allowed in the host's IPC namespace (add an ipc namespace)");
    } else if (key.startsWith('net.')) {
      const net = ns('network');
      if (!net || (net.path && sameNamespaceAsOurs(net.path, 'net')))
        throw refuse(raw, "is not allowed in the host's network namespace (add a network namespace)");
    } else if (key === 'kernel.domainname') {
      const uts = ns('uts');
      if (!uts || (uts.path && sameNamespaceAsOurs(uts.path, 'uts')))
        throw refuse(raw, "is not allowed in the host's UTS namespace (add a uts namespace)");
      // two values for one name: which wins would be an accident of order (crun refuses it too)
      if (spec.domainname !== undefined && spec.domainname !== value)
        throw refuse(
          raw,
          `${JSON.stringify(value)} conflicts with the "domainname" field (${JSON.stringify(spec.domainname)}): set one`,
        );
    } else if (key === 'kernel.hostname') {
      throw refuse(raw, 'is not allowed: it conflicts with the "hostname" field, use that');
    } else {
      throw refuse(raw, 'sysctl is not in a separate kernel namespace: it would change the host');
    }
    steps.push({
      op: 'procWrite',
      path: `sys/${parts.join('/')}`,
      content: value,
      describe: `set sysctl ${raw}`,
    });
  }
  return steps;
}
