import { readlinkSync } from 'node:fs';
import { NAMESPACES, type NamespaceKind } from './kinds.js';

// The links are read synchronously: a readlink of /proc/PID/ns/* is the kernel formatting an
// inode number, microseconds, while a trip through libuv's thread pool (and loading
// node:fs/promises, and starting the pool) cost an `exec` several ms. The API stays async.

/** The identity of a namespace: `net:[4026531840]` → inode 4026531840. */
export interface NamespaceId {
  kind: NamespaceKind;
  inode: number;
}

/** The namespace of `kind` that process `pid` is in (reads /proc/PID/ns/*). */
export async function namespaceOf(pid: number | 'self', kind: NamespaceKind): Promise<NamespaceId> {
  const link = readlinkSync(`/proc/${pid}/ns/${NAMESPACES[kind].proc}`);
  const m = /\[(\d+)\]$/.exec(link);
  if (!m) throw new Error(`unexpected namespace link ${link}`);
  return { kind, inode: Number(m[1]) };
}

/** Every namespace of a process, by kind (kinds the kernel lacks are left out). */
export async function namespacesOf(pid: number | 'self'): Promise<Partial<Record<NamespaceKind, number>>> {
  const out: Partial<Record<NamespaceKind, number>> = {};
  await Promise.all(
    (Object.keys(NAMESPACES) as NamespaceKind[]).map(async (kind) => {
      try {
        out[kind] = (await namespaceOf(pid, kind)).inode;
      } catch {
        // this kernel does not have that namespace type
      }
    }),
  );
  return out;
}

/** The kinds in which `pid` differs from the caller, i.e. the namespaces it was given. */
export async function isolatedKinds(pid: number): Promise<NamespaceKind[]> {
  const [mine, theirs] = await Promise.all([namespacesOf('self'), namespacesOf(pid)]);
  return (Object.keys(theirs) as NamespaceKind[]).filter((k) => theirs[k] !== mine[k]);
}

/** The path used to join the namespace of `kind` of process `pid`. */
export function namespacePath(pid: number, kind: NamespaceKind): string {
  return `/proc/${pid}/ns/${NAMESPACES[kind].proc}`;
}
